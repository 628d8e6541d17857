"""The public address check: PUBLIC_URL is https and reaches the bot, in every mode.

Each person's Connect opens /slack/install and /slack/oauth_redirect in their own browser, so the
bot needs a public https address even in Socket Mode; in HTTP mode Slack's requests come there too.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import aiohttp

from bot.config import Settings
from bot.doctor.report import Finding, Section

SECTION: Final = "Public URL"
PROBE_TIMEOUT: Final = 5.0
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
# Every answer the bot's /healthz gives: up, or still connecting.
BOT_HEALTH_STATUSES: Final = frozenset({200, 503})


async def check_public_url(settings: Settings) -> list[Finding]:
    """PUBLIC_URL is set, https (or local, for testing), and /healthz answers there."""
    section = Section(SECTION)
    if settings.socket_mode:
        why = "each person's Connect page needs a public https address, in Socket Mode too"
        needs = "the app's redirect URL (manifest.yml)"
    else:
        why = "each person's Connect page and Slack's requests (HTTP mode) need public https"
        needs = "the app's redirect URL and Request URLs (https://<host>/slack/events)"
    if settings.public_url is None:
        section.warning(
            f"PUBLIC_URL is not set: the Connect link points at {settings.connect_url}, which "
            f"only this machine can open: {why}",
            f"set PUBLIC_URL=https://<host>, where people's browsers reach the bot, and use "
            f"the same host in {needs}",
        )
        return section.findings
    parts = urlsplit(settings.public_url)
    host = (parts.hostname or "").lower()
    local = host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")
    if parts.scheme == "https":
        section.ok(f"PUBLIC_URL is https ({settings.public_url})")
    elif local:
        section.ok(f"PUBLIC_URL {settings.public_url} is local: fine for testing only")
    else:
        section.warning(
            f"PUBLIC_URL uses http on {host}, but {why}",
            f"serve the bot behind https (a proxy or load balancer that ends TLS) and set "
            f"PUBLIC_URL=https://{parts.netloc}",
        )
        return section.findings
    await _probe(section, settings.public_url)
    return section.findings


async def _probe(section: Section, public_url: str) -> None:
    """Ask /healthz through the public address: any answer of the bot's shows the way works."""
    url = public_url.rstrip("/") + "/healthz"
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        section.warning(
            f"nothing answered at {url} ({type(exc).__name__}), so nobody can open the Connect "
            "page",
            "start the bot (`rcstatus-bot run`) and run doctor again; if it is running, check "
            "DNS, the TLS certificate and that the proxy forwards to the bot's PORT",
        )
        return
    if status in BOT_HEALTH_STATUSES:
        section.ok(f"the bot answers at {url} (HTTP {status})")
        return
    section.warning(
        f"{url} answered HTTP {status}, which the bot never does: the address does not lead to it",
        "point the proxy at the bot's PORT for every path (/slack/install, "
        "/slack/oauth_redirect, /slack/events, /healthz)",
    )
