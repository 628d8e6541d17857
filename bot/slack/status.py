"""The status writer: turns availability into Slack statuses — save, show, restore.

It keeps, per person, what their profile shows and the claim we hold on it, asks the policy what
to do, and hands the *when* to the rate-budget scheduler. The claim is persisted before every
first write, so a bot killed between the two still knows what to put back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import (
    Claim,
    Drop,
    Leave,
    Release,
    Show,
    SlackStatus,
    StatusPolicy,
    StatusPreferences,
    decide,
)
from bot.presence import Availability, Transition
from bot.slack.scheduler import Desire, SendOutcome, StatusScheduler
from bot.store import Store

log = logging.getLogger(__name__)

# Errors after which this person's token will never work again until they reconnect.
TOKEN_GONE: Final = frozenset(
    {"token_revoked", "invalid_auth", "account_inactive", "token_expired", "not_authed"}
)
# Errors retrying cannot fix; the person's pending write is dropped and logged.
PERMANENT: Final = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "too_long",
        "invalid_profile",
        "invalid_emoji_not_allowed",
        "profile_set_failed",
        "cannot_update_admin_user",
        "not_admin",
        "user_not_found",
        "is_bot",
    }
)


class TokenSource(Protocol):
    async def user_token(self, user_id: str) -> str | None: ...
    def forget(self, user_id: str) -> None: ...


AvailabilityListener = Callable[[str, Availability, float], Awaitable[None]]


class DisconnectNotice(Protocol):
    async def token_lost(self, user_id: str) -> None: ...
    async def reconnected(self, user_id: str) -> None: ...


async def effective_preferences(store: Store, team_id: str, user_id: str) -> StatusPreferences:
    """A person's choices with the workspace's wording, then the bot's, filling the gaps."""
    stored = await store.preferences(team_id, user_id)
    defaults = await store.workspace_defaults(team_id)
    base = StatusPreferences()
    return StatusPreferences(
        sync_enabled=stored.sync_enabled,
        paused=stored.paused,
        policy=StatusPolicy(stored.policy),
        call_text=stored.call_text or defaults.call_text or base.call_text,
        call_emoji=stored.call_emoji or defaults.call_emoji or base.call_emoji,
        meeting_text=stored.meeting_text or defaults.meeting_text or base.meeting_text,
        meeting_emoji=stored.meeting_emoji or defaults.meeting_emoji or base.meeting_emoji,
    )


@dataclass(slots=True)
class PersonState:
    """What the writer knows of one linked person."""

    user_id: str
    extension_id: str | None = None
    availability: Availability | None = None
    busy_since: float | None = None
    live: SlackStatus = field(default_factory=SlackStatus)
    claim: Claim | None = None
    prefs: StatusPreferences = field(default_factory=StatusPreferences)
    connected: bool | None = None
    writing: SlackStatus | None = None
    declined_call: float | None = None
    """busy_since of a call during which they cleared or replaced our status by hand."""
    pending_save: SlackStatus | None = None
    blocked_reason: str | None = None


@dataclass(slots=True)
class WriterStats:
    transitions: int = 0
    writes_ok: int = 0
    restores: int = 0
    manual_changes: int = 0
    tokens_lost: int = 0
    not_connected: int = 0


class StatusWriter:
    """Consumes availability transitions; one instance per workspace."""

    def __init__(
        self,
        *,
        team_id: str,
        store: Store,
        client: AsyncWebClient,
        tokens: TokenSource,
        scheduler_factory: Callable[
            [Callable[[Desire, int], Awaitable[SendOutcome]]], StatusScheduler
        ],
        notice: DisconnectNotice | None = None,
        admin_token: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.team_id = team_id
        self._store = store
        self._client = client
        self._tokens = tokens
        self._notice = notice
        self._admin_token = admin_token
        self._wall = wall_clock
        self.scheduler = scheduler_factory(self._send)
        self._people: dict[str, PersonState] = {}
        self._by_extension: dict[str, str] = {}
        self._availability_listeners: list[AvailabilityListener] = []
        self.stats = WriterStats()

    def add_availability_listener(self, listener: AvailabilityListener) -> None:
        """Told each linked person's availability (by Slack id) when it changes."""
        self._availability_listeners.append(listener)

    async def _tell(self, person: PersonState, since: float) -> None:
        if person.availability is None:
            return
        for listener in self._availability_listeners:
            try:
                await listener(person.user_id, person.availability, since)
            except Exception:
                log.exception("an availability listener failed; continuing")

    # ----------------------------------------------------------------------------- loading

    async def load(
        self,
        links: Iterable[tuple[str, str]],
        live_statuses: dict[str, SlackStatus],
        presences: dict[str, tuple[Availability, float | None]],
    ) -> None:
        """Rebuild everything from the store, Slack's profiles and the last known presence.

        `links` pairs Slack user ids with extension ids. Pending work is derived, not stored: each
        person is evaluated, so a restart re-submits whatever was in flight.
        """
        claims = {c.user_id: c for c in await self._store.claims(self.team_id) if c.active}
        self._by_extension = {}
        for user_id, extension_id in links:
            person = self._person(user_id)
            person.extension_id = extension_id
            self._by_extension[extension_id] = user_id
        for user_id, claim in claims.items():
            self._person(user_id).claim = Claim(saved=claim.saved, written=claim.written)
        for user_id, person in self._people.items():
            if user_id in live_statuses:
                person.live = live_statuses[user_id]
            person.prefs = await self._preferences(user_id)
            if person.extension_id in presences:
                person.availability, person.busy_since = presences[person.extension_id]
                await self._tell(person, person.busy_since or self._wall())
        await self.reconcile()

    async def set_links(self, links: Iterable[tuple[str, str]]) -> None:
        """New mapping: people who lost their link get our status taken back."""
        wanted = dict(links)
        for user_id, person in list(self._people.items()):
            if user_id not in wanted and person.extension_id is not None:
                person.extension_id = None
                person.availability = Availability.AVAILABLE
        self._by_extension = {}
        for user_id, extension_id in wanted.items():
            person = self._person(user_id)
            if person.extension_id != extension_id:
                person.prefs = await self._preferences(user_id)
            person.extension_id = extension_id
            self._by_extension[extension_id] = user_id
        await self.reconcile()

    def _person(self, user_id: str) -> PersonState:
        person = self._people.get(user_id)
        if person is None:
            person = self._people[user_id] = PersonState(user_id)
        return person

    async def _preferences(self, user_id: str) -> StatusPreferences:
        return await effective_preferences(self._store, self.team_id, user_id)

    async def preferences_changed(self, user_id: str) -> None:
        person = self._person(user_id)
        person.prefs = await self._preferences(user_id)
        await self._evaluate(person)

    # ----------------------------------------------------------------------------- inputs

    async def on_transition(self, transition: Transition) -> None:
        user_id = self._by_extension.get(transition.extension_id)
        if user_id is None:
            return
        self.stats.transitions += 1
        person = self._people[user_id]
        presence = transition.presence
        if (
            transition.old is Availability.ON_CALL
            and transition.new is not Availability.ON_CALL
            and person.busy_since is not None
        ):
            self.scheduler.observe(max(0.0, transition.since.timestamp() - person.busy_since))
        person.availability = transition.new
        busy_from = presence.on_call_since or transition.since
        person.busy_since = busy_from.timestamp()
        await self._evaluate(person)
        await self._tell(person, transition.since.timestamp())

    async def on_status_changed(self, user_id: str, status: SlackStatus) -> None:
        """A `user_status_changed` event: our own write echoing back, or the person's hand."""
        person = self._people.get(user_id)
        if person is None:
            return
        if person.writing is not None and status.same_as(person.writing):
            person.live = status
            return
        log.debug("%s's profile now shows %r", user_id, status)
        person.live = status
        await self._evaluate(person)

    async def reconcile(self) -> None:
        """Everyone again: after start and after every presence snapshot."""
        for person in list(self._people.values()):
            await self._evaluate(person)

    async def on_snapshot(self, presences: object) -> None:
        await self.reconcile()

    async def token_revoked(self, user_id: str) -> None:
        person = self._person(user_id)
        self._tokens.forget(user_id)
        person.connected = False
        person.blocked_reason = "not connected"
        self.scheduler.cancel(user_id)
        self.stats.tokens_lost += 1
        if self._notice is not None:
            await self._notice.token_lost(user_id)

    async def connected(self, user_id: str) -> None:
        """The person just authorized the app: their token works now."""
        person = self._person(user_id)
        self._tokens.forget(user_id)
        person.connected = None
        person.blocked_reason = None
        if self._notice is not None:
            await self._notice.reconnected(user_id)
        await self._evaluate(person)

    # ----------------------------------------------------------------------------- deciding

    async def _evaluate(self, person: PersonState) -> None:
        if person.availability is None:
            return
        now = self._wall()
        # While a write is in flight the profile is about to show it; judging by the old
        # status would mistake our own write for a manual change.
        live = person.writing if person.writing is not None else person.live
        decision = decide(person.availability, person.prefs, live, person.claim, now)
        if isinstance(decision, Leave):
            self.scheduler.cancel(person.user_id)
            if (
                person.claim is None
                and person.availability is Availability.ON_CALL
                and not person.live.shown_at(now).is_empty()
            ):
                person.blocked_reason = "respecting the status you set yourself"
            return
        if isinstance(decision, Drop):
            self.scheduler.cancel(person.user_id)
            if person.claim is not None:
                if decision.reason == "manual_change":
                    # Their choice holds for the rest of this call, even if they clear it.
                    person.declined_call = person.busy_since
                    self.stats.manual_changes += 1
                    log.info("%s changed their status by hand; ours is released", person.user_id)
                person.claim = None
                await self._store.release(self.team_id, person.user_id)
            return
        if not await self._can_write(person):
            return
        if isinstance(decision, Show):
            if person.claim is None and person.declined_call == person.busy_since:
                self.scheduler.cancel(person.user_id)
                return
            if person.claim is None:
                person.pending_save = decision.save
            shown_ours = person.claim is not None and person.live.same_as(person.claim.written)
            restore = person.claim.saved if person.claim else (decision.save or SlackStatus())
            self.scheduler.submit(
                Desire(
                    key=person.user_id,
                    action="show",
                    status=decision.status,
                    busy_since=person.busy_since,
                    shown_expiration=(
                        person.claim.written.expiration
                        if person.claim is not None and shown_ours
                        else 0
                    ),
                    restore_is_empty=restore.shown_at(now).is_empty(),
                    kind=decision.kind,
                )
            )
        elif isinstance(decision, Release):
            assert person.claim is not None
            self.scheduler.submit(
                Desire(
                    key=person.user_id,
                    action="release",
                    status=decision.restore,
                    shown_expiration=person.claim.written.expiration,
                    restore_is_empty=decision.restore.is_empty(),
                )
            )

    async def _can_write(self, person: PersonState) -> bool:
        if self._admin_token is not None:
            return True
        if person.connected is None:
            person.connected = await self._tokens.user_token(person.user_id) is not None
        if not person.connected:
            if person.blocked_reason != "not connected":
                person.blocked_reason = "not connected"
                self.stats.not_connected += 1
                log.info(
                    "%s is linked but has not connected their Slack status; nothing is written",
                    person.user_id,
                )
            return False
        person.blocked_reason = None
        return True

    def explain(self, user_id: str) -> str | None:
        """Why nothing is being written for this person, if something stops it (for App Home)."""
        person = self._people.get(user_id)
        if person is None:
            return "not linked to a RingCentral extension"
        return person.blocked_reason

    # ----------------------------------------------------------------------------- writing

    async def _send(self, desire: Desire, expiration: int) -> SendOutcome:
        person = self._person(desire.key)
        if desire.action == "show":
            status = desire.status.with_expiration(expiration)
            if person.claim is None:
                saved = person.pending_save or person.live.shown_at(self._wall())
                # Ours before the store has it: a hang-up taken in while the claim is saved
                # must find a claim to release, or this write would land with no one owning it.
                person.claim = Claim(saved=saved, written=status)
                person.writing = status
                try:
                    await self._store.claim(
                        self.team_id, person.user_id, saved=saved, written=status
                    )
                except BaseException:
                    person.claim = None
                    person.writing = None
                    raise
            else:
                person.claim = Claim(saved=person.claim.saved, written=status)
                await self._store.update_written(self.team_id, person.user_id, status)
            outcome = await self._write(person, status)
            return outcome
        if person.claim is None:
            return SendOutcome.OK
        if not person.live.shown_at(self._wall()).same_as(person.claim.written) and not (
            person.live.shown_at(self._wall()).is_empty()
        ):
            # Changed by hand since the release was queued: theirs stays, our claim ends.
            person.claim = None
            await self._store.release(self.team_id, person.user_id)
            return SendOutcome.OK
        outcome = await self._write(person, desire.status)
        if outcome.kind is SendOutcome.OK.kind:
            self.stats.restores += 1
            person.claim = None
            await self._store.release(self.team_id, person.user_id)
        return outcome

    async def _write(self, person: PersonState, status: SlackStatus) -> SendOutcome:
        token = self._admin_token or await self._tokens.user_token(person.user_id)
        if token is None:
            person.connected = False
            return SendOutcome.GONE
        profile = {
            "status_text": status.text,
            "status_emoji": status.emoji,
            "status_expiration": status.expiration,
        }
        extra = {"user": person.user_id} if self._admin_token else {}
        person.writing = status
        try:
            await self._client.users_profile_set(token=token, profile=profile, **extra)
        except SlackApiError as exc:
            return await self._failed(person, exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("users.profile.set for %s: %s; will retry", person.user_id, type(exc).__name__)
            return SendOutcome.RETRY
        finally:
            person.writing = None
        person.live = status
        self.stats.writes_ok += 1
        return SendOutcome.OK

    async def _failed(self, person: PersonState, exc: SlackApiError) -> SendOutcome:
        status = exc.response.status_code
        error = str(exc.response.get("error") or "")
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
            return SendOutcome.rate_limited(retry_after)
        if status >= 500:
            return SendOutcome.RETRY
        if error in TOKEN_GONE:
            self.stats.tokens_lost += 1
            log.warning("%s's Slack token no longer works (%s)", person.user_id, error)
            self._tokens.forget(person.user_id)
            person.connected = False
            person.blocked_reason = "not connected"
            if self._notice is not None:
                await self._notice.token_lost(person.user_id)
            return SendOutcome.GONE
        log.warning("users.profile.set for %s refused: %s", person.user_id, error or status)
        if error in PERMANENT:
            return SendOutcome.GONE
        return SendOutcome.RETRY

    # ----------------------------------------------------------------------------- upkeep

    async def sweep(self) -> None:
        """Claims whose status Slack already expired are over: nothing is left to restore."""
        now = self._wall()
        for person in list(self._people.values()):
            claim = person.claim
            if claim is None or person.availability is Availability.ON_CALL:
                continue
            expired = 0 < claim.written.expiration <= now
            if expired and claim.saved.shown_at(now).is_empty():
                person.claim = None
                await self._store.release(self.team_id, person.user_id)
                if person.live.same_as(claim.written):
                    person.live = SlackStatus()

    def person(self, user_id: str) -> PersonState | None:
        return self._people.get(user_id)

    def extension_of(self, user_id: str) -> str | None:
        person = self._people.get(user_id)
        return person.extension_id if person else None
