"""Whether the bot's HTTP port can be listened on, asked before anything logs in anywhere."""

from __future__ import annotations

import errno
import socket

from bot.errors import BotError


def ensure_port_free(host: str, port: int) -> None:
    """Bind and release `host:port` the way the HTTP server will, or say in one line why not.

    Asked first, so a port another program holds ends the start at once, rather than after a
    RingCentral login (a scarce Auth request) and a subscription that are then thrown away.
    """
    if port == 0:
        return  # any free port will do
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BotError(
            f"HOST {host} is not an address of this machine ({exc.strerror}); set HOST to "
            "0.0.0.0 (every interface) or one of this machine's addresses"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # The same option the server sets, so a port left in TIME_WAIT by a restart passes.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise BotError(port_problem(host, port, exc)) from None


def port_problem(host: str, port: int, exc: OSError) -> str:
    """One line: which port, why it cannot be used, what to do."""
    if isinstance(exc, PermissionError):
        return (
            f"PORT {port} on {host} needs privileges this user lacks; set PORT above 1023 "
            "and put a proxy in front for ports 80 and 443"
        )
    if exc.errno == errno.EADDRINUSE:
        return (
            f"PORT {port} on {host} is already in use (another rcstatus-bot, or another "
            "program); stop it, or set PORT to a free port"
        )
    return f"cannot listen on PORT {port} on {host} ({exc.strerror or exc}); check PORT and HOST"
