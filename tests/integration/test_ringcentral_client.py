"""RingCentralClient's login failures against the simulator, through the unmodified SDK."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Collection

import pytest

from bot.config import Secret
from bot.ringcentral.client import (
    ClientCredentialsRefused,
    JwtRefused,
    RingCentralAuthError,
    RingCentralClient,
    RingCentralRateLimited,
    RingCentralUnavailable,
)
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.rc_auth import APP_PERMISSIONS
from bot.sim.ringcentral import RingCentralSimulator

SCALE = TimeScale(60)


@contextlib.asynccontextmanager
async def simulator(
    app_permissions: Collection[str] = APP_PERMISSIONS,
) -> AsyncIterator[RingCentralSimulator]:
    sim = RingCentralSimulator(
        build_company(6, seed=11), time_scale=SCALE, app_permissions=app_permissions
    )
    async with sim:
        yield sim


def client_for(
    sim: RingCentralSimulator,
    *,
    server_url: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    jwt: str | None = None,
    max_attempts: int = 1,
) -> RingCentralClient:
    """A client as the bot builds it, by default trying each request once."""
    return RingCentralClient(
        server_url=server_url or sim.url,
        client_id=client_id or sim.client_id,
        client_secret=Secret(client_secret or sim.client_secret),
        jwt=Secret(jwt or sim.jwt),
        rate_window=SCALE.seconds(60),
        max_attempts=max_attempts,
    )


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ------------------------------------------------------------------------------- login


WRONG_SECRET = "wrong-client-secret-0123456789"
WRONG_JWT = "eyJhbGciOiJSUzI1NiJ9.e30.a-signature-the-simulator-never-issued"


@pytest.mark.parametrize(
    ("credentials", "refusal", "status", "code"),
    [
        ({"client_secret": WRONG_SECRET}, ClientCredentialsRefused, 401, "OAU-123"),
        ({"client_id": "an-app-nobody-registered"}, ClientCredentialsRefused, 401, "OAU-123"),
        ({"jwt": WRONG_JWT}, JwtRefused, 400, "OAU-140"),
    ],
)
async def test_a_refused_login_names_its_cause_and_quotes_no_credential(
    caplog: pytest.LogCaptureFixture,
    credentials: dict[str, str],
    refusal: type[RingCentralAuthError],
    status: int,
    code: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with simulator() as sim:
        client = client_for(sim, **credentials)
        with pytest.raises(RingCentralAuthError) as raised:
            await client.login()
        secrets = {*sim.issued_secrets(), sim.client_id, *credentials.values()}

    assert type(raised.value) is refusal
    assert (raised.value.status, raised.value.error_code) == (status, code)
    shown = f"{raised.value}\n{caplog.text}"
    assert [secret for secret in secrets if secret in shown] == []


async def test_a_refusal_without_a_known_cause_stays_a_plain_auth_error() -> None:
    async with simulator() as sim:
        sim.add_fault("/restapi/oauth/token", 400)
        with pytest.raises(RingCentralAuthError) as raised:
            await client_for(sim).login()

    assert type(raised.value) is RingCentralAuthError
    assert (raised.value.status, raised.value.error_code) == (400, "CMN-101")


async def test_a_rate_limited_login_closes_the_auth_group() -> None:
    async with simulator() as sim:
        sim.add_fault("/restapi/oauth/token", 429, retry_after=30)
        client = client_for(sim)
        with pytest.raises(RingCentralRateLimited) as raised:
            await client.login()

    assert raised.value.status == 429
    assert client.penalty_remaining("auth") > 0


async def test_an_unreachable_server_is_unavailable_not_refused() -> None:
    async with simulator() as sim:
        client = client_for(sim, server_url=f"http://127.0.0.1:{unused_port()}")
        with pytest.raises(RingCentralUnavailable) as raised:
            await client.login()

    assert raised.value.status is None
