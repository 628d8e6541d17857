"""RingCentralClient's login, permission and logout calls against the simulator, through the SDK."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Collection

import pytest

from bot.config import Secret
from bot.presence import PresenceStatus
from bot.ringcentral.client import (
    ClientCredentialsRefused,
    JwtRefused,
    Response,
    RingCentralAuthError,
    RingCentralClient,
    RingCentralError,
    RingCentralPermissionError,
    RingCentralRateLimited,
    RingCentralUnavailable,
)
from bot.ringcentral.permissions import (
    READ_ACCOUNTS,
    READ_PRESENCE,
    WEBSOCKET_SUBSCRIPTIONS,
)
from bot.ringcentral.user_status import UserStatusWriter
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.ringcentral.auth import APP_PERMISSIONS

SCALE = TimeScale(60)
ACCOUNT_PRESENCE = "/restapi/v1.0/account/~/presence"
REVOKE = "POST /restapi/oauth/revoke"


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


def revoke_requests(sim: RingCentralSimulator) -> int:
    return int(sim.stats()["requests"].get(REVOKE, 0))


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


# ------------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(
    "permissions",
    [APP_PERMISSIONS, ("ReadAccounts", "SubscriptionWebSocket"), ("ReadPresence",)],
)
async def test_granted_permissions_are_the_tokens_scope(permissions: tuple[str, ...]) -> None:
    async with simulator(app_permissions=permissions) as sim:
        client = client_for(sim)
        before = client.granted_permissions()
        await client.login()
        granted = client.granted_permissions()
        await client.logout()

    assert before is None
    assert granted == frozenset(permissions)


async def test_a_granted_permission_is_proved_by_the_calls_answer() -> None:
    async with simulator() as sim:
        client = client_for(sim)

        async def presence() -> Response:
            return await client.get(ACCOUNT_PRESENCE, {"perPage": 1})

        answer = await client.probe_permission(READ_PRESENCE, presence)
        await client.logout()

    assert answer.status == 200


async def test_a_missing_permission_refused_with_403_is_a_permission_error() -> None:
    async with simulator(app_permissions=("ReadAccounts", "SubscriptionWebSocket")) as sim:
        client = client_for(sim)

        async def presence() -> Response:
            return await client.get(ACCOUNT_PRESENCE, {"perPage": 1})

        with pytest.raises(RingCentralPermissionError) as raised:
            await client.probe_permission(READ_PRESENCE, presence)
        await client.logout()

    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        (("ReadAccounts", "ReadPresence"), RingCentralPermissionError),
        (APP_PERMISSIONS, RingCentralUnavailable),
    ],
)
async def test_another_failure_is_blamed_on_the_permission_only_if_the_scope_lacks_it(
    permissions: tuple[str, ...], expected: type[RingCentralError]
) -> None:
    async with simulator(app_permissions=permissions) as sim:
        client = client_for(sim)
        await client.login()
        sim.add_fault("/restapi/oauth/wstoken", 503)
        with pytest.raises(RingCentralError) as raised:
            await client.probe_permission(WEBSOCKET_SUBSCRIPTIONS, client.ws_token)
        await client.logout()

    assert type(raised.value) is expected
    assert raised.value.status == 503


async def test_a_probe_passes_failures_through_when_the_token_does_not_say() -> None:
    """Before a login there is no scope to blame, so the call's own error stands."""
    async with simulator() as sim:
        client = client_for(sim, jwt=WRONG_JWT)

        async def users() -> Response:
            return await client.get("/restapi/v1.0/account/~/extension")

        with pytest.raises(JwtRefused):
            await client.probe_permission(READ_ACCOUNTS, users)


# ------------------------------------------------------------------------------- logout


async def test_logout_ends_the_session_and_the_next_request_logs_in_again() -> None:
    async with simulator() as sim:
        client = client_for(sim)
        await client.login()
        await client.logout()
        live_after_logout = sim.revoke_sessions()
        revokes = revoke_requests(sim)
        granted = client.granted_permissions()
        await client.get(ACCOUNT_PRESENCE, {"perPage": 1})
        await client.logout()

    assert live_after_logout == 0
    assert revokes == 1
    assert granted is None
    assert client.stats.logins == 2


async def test_logout_without_a_session_sends_nothing() -> None:
    async with simulator() as sim:
        client = client_for(sim)
        await client.logout()
        revokes = revoke_requests(sim)

    assert revokes == 0


async def test_a_failed_logout_is_tried_once_and_the_session_stays_usable() -> None:
    async with simulator() as sim:
        client = client_for(sim, max_attempts=3)
        await client.login()
        sim.add_fault("/restapi/oauth/revoke", 503)
        with pytest.raises(RingCentralUnavailable):
            await client.logout()
        revokes = revoke_requests(sim)
        answer = await client.get(ACCOUNT_PRESENCE, {"perPage": 1})
        live = sim.revoke_sessions()

    assert revokes == 1
    assert answer.status == 200
    assert client.stats.logins == 1
    assert live == 1


async def test_logout_is_not_sent_into_a_closed_auth_group() -> None:
    async with simulator() as sim:
        client = client_for(sim)
        await client.login()
        sim.add_fault("/restapi/oauth/wstoken", 429, retry_after=30)
        with pytest.raises(RingCentralRateLimited):
            await client.ws_token()
        with pytest.raises(RingCentralRateLimited):
            await client.logout()
        revokes = revoke_requests(sim)

    assert revokes == 0


async def test_presence_update_needs_edit_presence_and_reaches_subscribers_as_a_change() -> None:
    # Reference docs/controls.md: PUT .../extension/{id}/presence, Medium group, EditPresence.
    without = tuple(p for p in APP_PERMISSIONS if p != "EditPresence")
    async with simulator(app_permissions=without) as sim:
        client = client_for(sim)
        await client.login()
        person = next(p for p in build_company(6, seed=11).people if p.extension_id is not None)
        assert person.extension_id is not None
        with pytest.raises(RingCentralPermissionError):
            await UserStatusWriter(client).set_user_status(
                str(person.extension_id), PresenceStatus.BUSY
            )
        assert sim.presence(person.extension_id)["userStatus"] == "Available"
        await client.logout()

    async with simulator() as sim:
        client = client_for(sim)
        await client.login()
        person = next(
            p
            for p in build_company(6, seed=11).people
            if p.extension_id is not None
            and sim.presence(p.extension_id).get("userStatus") == "Available"
        )
        assert person.extension_id is not None
        before = len(sim.events(extension_id=person.extension_id))
        answered = await UserStatusWriter(client).set_user_status(
            str(person.extension_id), PresenceStatus.BUSY
        )
        assert answered is PresenceStatus.BUSY
        assert sim.presence(person.extension_id)["userStatus"] == "Busy"
        assert sim.presence(person.extension_id)["presenceStatus"] == "Busy"
        events = sim.events(extension_id=person.extension_id)
        assert len(events) == before + 1
        assert events[-1]["fields"]["userStatus"] == "Busy"
        await client.logout()
