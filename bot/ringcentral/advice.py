"""What to do about a failed RingCentral login, in words an operator can act on (run, doctor)."""

from __future__ import annotations

from bot.config import RC_CONSOLE
from bot.ringcentral.client import (
    ClientCredentialsRefused,
    JwtFlowNotAllowed,
    JwtRefused,
    RingCentralError,
    RingCentralUnavailable,
)


def login_advice(exc: RingCentralError, server: str) -> tuple[str, str]:
    """What stopped the login, naming the setting, and where to fix it."""
    where = f"the app's Credentials page in {RC_CONSOLE}"
    match exc:
        case RingCentralUnavailable():
            return (
                f"cannot reach RingCentral at {server.rstrip('/')}",
                "check RC_SERVER_URL (normally https://platform.ringcentral.com) and this "
                "machine's network or proxy",
            )
        case ClientCredentialsRefused():
            return (
                "RC_CLIENT_SECRET is wrong: RingCentral refused the app's credentials "
                "(OAU-123 invalid_client)",
                f"copy RC_CLIENT_SECRET, and RC_CLIENT_ID with it, from {where}",
            )
        case JwtFlowNotAllowed():
            return (
                "the RingCentral app does not allow the JWT auth flow "
                "(OAU-112 unauthorized_client)",
                f"choose 'JWT auth flow' under the app's Settings → Auth in {RC_CONSOLE}",
            )
        case JwtRefused():
            return (
                "RC_JWT was refused (invalid_grant): it is expired, revoked, or made for "
                "another app",
                "create a JWT for an administrator under Credentials → JWT credentials in "
                f"{RC_CONSOLE}, allowed for this app, and put it in RC_JWT",
            )
        case _:
            return (
                f"RingCentral refused the login ({detail(exc)})",
                f"check RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT against {where}",
            )


def detail(exc: RingCentralError) -> str:
    """What RingCentral answered, by status and code, never by message: a message may quote."""
    shown = " ".join(str(part) for part in (exc.status, exc.error_code) if part)
    return shown or type(exc).__name__
