"""The status writer: owns what each profile shows and our claim on it — save, show, restore.

It is a peer under the coordinator: told when a person's availability or link changes, it reads
their presence from the roster at the moment it decides, asks the policy what to do, and hands
the *when* to the rate-budget scheduler. Every decision is taken again, from current state, at
the moment it is acted on (when the scheduler's turn comes, and again after each `await` before
the profile is touched), so nothing decided before a pause is acted on after it. The claim is
persisted before every first write, so a bot killed between the two still knows what to put
back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from bot.policy import (
    EMPTY_STATUS,
    CallType,
    Claim,
    Decision,
    Drop,
    Leave,
    Release,
    Show,
    SlackStatus,
    StatusPreferences,
    decide,
)
from bot.presence import Availability
from bot.roster import PersonChange, RosterView, busy_since
from bot.slack.preferences import combine, effective_preferences, everyone_effective
from bot.slack.profiles import ProfileWriter
from bot.slack.scheduler import Desire, SchedulerStats, SendOutcome, StatusScheduler
from bot.store import Preferences, Store, WorkspaceDefaults

log = logging.getLogger(__name__)

NOT_CONNECTED = "not connected"
RESPECTING = "respecting the status you set yourself"
NOT_LINKED = "not linked to a RingCentral extension"
_SHOWN_AS_BUSY = frozenset({Availability.ON_CALL, Availability.IN_MEETING})


class DisconnectNotice(Protocol):
    async def token_lost(self, user_id: str) -> None: ...
    async def reconnected(self, user_id: str) -> None: ...


class KnownStatuses(Protocol):
    """The statuses Slack reported at start (users.list), for people the writer meets later."""

    def status_of(self, user_id: str) -> SlackStatus | None: ...


@dataclass(slots=True)
class _Profile:
    """One person's profile as the writer knows it; the writer is the only owner of this."""

    user_id: str
    prefs: StatusPreferences
    shown: SlackStatus = EMPTY_STATUS
    """What the profile shows, with its expiration, as last read, reported or written by us."""
    claim: Claim | None = None
    """Ours while we show our status, and only once Slack has accepted the write."""
    in_flight: SlackStatus | None = None
    """A write of ours Slack has not answered yet; decisions wait for its answer."""
    changed_during_write: bool = False
    """A status that is not ours arrived while our write was in flight: the person's hand."""
    recheck: bool = False
    """Something changed while a write was in flight: decide again when it ends."""
    disowned: SlackStatus | None = None
    """Our status whose claim a manual change ended while it was being written: if Slack shows
    it after all, it landed after theirs and theirs is put back."""
    declined_busy_since: float | None = None
    """The start of the call during which they cleared or replaced our status by hand."""
    blocked_reason: str | None = None
    written_lately: list[tuple[SlackStatus, float]] = field(default_factory=list)
    """Our last few statuses that landed, with when (wall clock): their echoes may arrive
    after a later write of ours, most of all relayed from another replica."""


@dataclass(slots=True)
class WriterStats:
    changes: int = 0
    writes_ok: int = 0
    restores: int = 0
    manual_changes: int = 0
    tokens_lost: int = 0
    not_connected: int = 0


class StatusWriter:
    """Consumes each person's changes and keeps their Slack status in step; one per workspace."""

    def __init__(
        self,
        *,
        team_id: str,
        store: Store,
        roster: RosterView,
        profiles: ProfileWriter,
        scheduler: StatusScheduler,
        notice: DisconnectNotice,
        known_statuses: KnownStatuses,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.team_id = team_id
        self._store = store
        self._roster = roster
        self._profiles = profiles
        self._scheduler = scheduler
        self._notice = notice
        self._known = known_statuses
        self._wall = wall_clock
        self._people: dict[str, _Profile] = {}
        # Read once at start so that meeting someone new never waits on the database.
        self._stored_prefs: dict[str, StatusPreferences] = {}
        self._defaults: WorkspaceDefaults | None = None
        self.stats = WriterStats()

    # ----------------------------------------------------------------------------- loading

    async def load(self) -> None:
        """Everyone's preferences, and the claims a previous run held, before any change."""
        self._stored_prefs, self._defaults = await everyone_effective(self._store, self.team_id)
        for stored in await self._store.claims(self.team_id):
            if stored.active:
                person = await self._person(stored.user_id)
                person.claim = Claim(saved=stored.saved, written=stored.written)

    async def run(self) -> None:
        """The scheduler's loop, with this writer making each write it chooses."""
        await self._scheduler.run(self)

    async def _person(self, user_id: str) -> _Profile:
        person = self._people.get(user_id)
        if person is None:
            prefs = self._loaded_preferences(user_id)
            if prefs is None:
                prefs = await effective_preferences(self._store, self.team_id, user_id)
            # Another change may have met them during that await.
            person = self._people.get(user_id)
            if person is None:
                shown = self._known.status_of(user_id) or EMPTY_STATUS
                person = self._people[user_id] = _Profile(user_id, prefs, shown)
        return person

    def _loaded_preferences(self, user_id: str) -> StatusPreferences | None:
        """From what `load` read: theirs, or the defaults for someone who never chose any."""
        if self._defaults is None:
            return None
        stored = self._stored_prefs.pop(user_id, None)
        if stored is not None:
            return stored
        return combine(Preferences(self.team_id, user_id), self._defaults)

    # ----------------------------------------------------------------------------- inputs

    async def on_person_change(self, change: PersonChange) -> None:
        self.stats.changes += 1
        await self._evaluate(await self._person(change.user_id))

    async def on_resync(self) -> None:
        """Everyone again, after every presence snapshot."""
        for user_id in self._roster.linked_people():
            await self._person(user_id)
        for person in list(self._people.values()):
            await self._evaluate(person)

    async def on_status_changed(self, user_id: str, status: SlackStatus) -> None:
        """A `user_status_changed` event: our own write echoing back, or the person's hand."""
        person = self._people.get(user_id)
        if person is None:
            return
        if person.in_flight is not None:
            if not status.same_as(person.in_flight) and not status.same_as(person.shown):
                person.changed_during_write = True
                person.recheck = True
            person.shown = status
            return
        if status.same_as(person.shown) and status.expiration == person.shown.expiration:
            return  # an echo of what we already know
        if _late_echo(person, status, self._wall()):
            return  # an earlier write of ours, reported after a later one
        log.debug("%s's profile now shows %r", user_id, status)
        theirs, person.shown = person.shown, status
        if person.claim is None and person.disowned is not None and status.same_as(person.disowned):
            await self._readopt(person, theirs.shown_at(self._wall()), status)
        await self._evaluate(person)

    async def preferences_changed(self, user_id: str) -> None:
        person = await self._person(user_id)
        person.prefs = await effective_preferences(self._store, self.team_id, user_id)
        await self._evaluate(person)

    async def defaults_changed(self) -> None:
        """The workspace's defaults changed: everyone takes them in again, from two reads."""
        self._stored_prefs, self._defaults = await everyone_effective(self._store, self.team_id)
        for person in list(self._people.values()):
            loaded = self._loaded_preferences(person.user_id)
            if loaded is not None:
                person.prefs = loaded
            await self._evaluate(person)

    async def token_revoked(self, user_id: str) -> None:
        person = await self._person(user_id)
        self._profiles.forget(user_id)
        person.blocked_reason = NOT_CONNECTED
        self._scheduler.cancel(user_id)
        self.stats.tokens_lost += 1
        await self._notice.token_lost(user_id)

    async def connected(self, user_id: str) -> None:
        """The person just authorized the app: their token works now."""
        person = await self._person(user_id)
        self._profiles.forget(user_id)
        # Read their new token now, so that their next presence change need not wait for it.
        await self._profiles.can_write(user_id)
        person.blocked_reason = None
        await self._notice.reconnected(user_id)
        await self._evaluate(person)

    # ----------------------------------------------------------------------------- deciding

    def _decide(self, person: _Profile) -> tuple[Decision, float | None]:
        """What to do now, from the roster and this profile as they are at this moment."""
        presence = self._roster.presence_of(person.user_id)
        if presence is None:
            if self._roster.extension_of(person.user_id) is not None:
                return Leave(), None  # linked, but RingCentral has not reported yet
            # Not linked (any more): whatever of ours is shown must go.
            availability, began = Availability.AVAILABLE, None
        else:
            availability, began = presence.availability, busy_since(presence).timestamp()
        call = None if presence is None else CallType(presence.call_direction, presence.call_party)
        declined = began is not None and person.declined_busy_since == began
        decision = decide(
            availability,
            person.prefs,
            person.shown,
            person.claim,
            self._wall(),
            declined=declined,
            call=call,
        )
        return decision, began

    async def _evaluate(self, person: _Profile) -> None:
        if person.in_flight is not None:
            person.recheck = True
            return
        decision, began = self._decide(person)
        if isinstance(decision, Show | Release):
            # Whether their token works is the token store's to say (it caches the answer).
            connected = await self._profiles.can_write(person.user_id)
            if person.in_flight is not None:
                person.recheck = True
                return
            # The lookup may have paused us: decide again from what holds now.
            decision, began = self._decide(person)
            if isinstance(decision, Show | Release) and not connected:
                self._not_connected(person)
                return
        await self._act(person, decision, began)

    async def _act(self, person: _Profile, decision: Decision, began: float | None) -> None:
        """Act on a decision taken just now; nothing here awaits before the scheduler is told."""
        user_id = person.user_id
        if isinstance(decision, Leave):
            presence = self._roster.presence_of(user_id)
            on_call = presence is not None and presence.availability is Availability.ON_CALL
            if presence is not None and presence.availability in _SHOWN_AS_BUSY:
                self._scheduler.cancel(user_id)  # the call goes on; we just write nothing
            else:
                self._scheduler.end(user_id)
            if (
                person.claim is None
                and on_call
                and not person.shown.shown_at(self._wall()).is_empty()
            ):
                person.blocked_reason = RESPECTING
            return
        if isinstance(decision, Drop):
            if decision.reason == "expired":
                self._scheduler.end(user_id)
            else:
                self._scheduler.cancel(user_id)
            if person.claim is not None:
                if decision.reason == "manual_change":
                    # Their choice holds for the rest of this call, even if they clear it.
                    person.declined_busy_since = began
                    self.stats.manual_changes += 1
                    log.info("%s changed their status by hand; ours is released", user_id)
                person.claim = None
                await self._store.release(self.team_id, user_id)
            return
        person.blocked_reason = None
        shown = self._ours_shown(person)
        if isinstance(decision, Show):
            restore = person.claim.saved if person.claim else (decision.save or EMPTY_STATUS)
            self._scheduler.submit(
                Desire(
                    key=user_id,
                    action="show",
                    status=decision.status,
                    busy_since=began,
                    shown=shown,
                    restore_is_empty=restore.shown_at(self._wall()).is_empty(),
                    kind=decision.kind,
                )
            )
        elif isinstance(decision, Release):
            self._scheduler.submit(
                Desire(
                    key=user_id,
                    action="release",
                    status=decision.restore,
                    shown=shown,
                    restore_is_empty=decision.restore.is_empty(),
                )
            )

    def _not_connected(self, person: _Profile) -> None:
        self._scheduler.cancel(person.user_id)
        if person.blocked_reason != NOT_CONNECTED:
            person.blocked_reason = NOT_CONNECTED
            self.stats.not_connected += 1
            log.info(
                "%s is linked but has not connected their Slack status; nothing is written",
                person.user_id,
            )

    @staticmethod
    def _ours_shown(person: _Profile) -> SlackStatus | None:
        claim = person.claim
        if claim is not None and person.shown.same_as(claim.written):
            return person.shown
        return None

    async def _readopt(self, person: _Profile, theirs: SlackStatus, ours: SlackStatus) -> None:
        """Our write landed after their manual change: claim it again, to put theirs back.

        The call stays declined, so the policy's answer to this claim is to release it.
        """
        person.disowned = None
        person.claim = Claim(saved=theirs, written=ours)
        await self._store.claim(self.team_id, person.user_id, saved=theirs, written=ours)

    def explain(self, user_id: str) -> str | None:
        """Why nothing is being written for this person, if something stops it (for App Home)."""
        if self._roster.extension_of(user_id) is None:
            return NOT_LINKED
        person = self._people.get(user_id)
        return person.blocked_reason if person is not None else None

    # ----------------------------------------------------------------------------- writing

    async def send(self, desire: Desire, expiration: int) -> SendOutcome:
        """The scheduler's turn for `desire`: decide again, then write if it still holds."""
        person = await self._person(desire.key)
        if person.in_flight is not None:
            return SendOutcome.SKIPPED
        if not await self._profiles.can_write(person.user_id) or person.in_flight is not None:
            await self._evaluate(person)
            return SendOutcome.SKIPPED
        decision, began = self._decide(person)
        if desire.action == "show":
            if not (isinstance(decision, Show) and decision.status.same_as(desire.status)):
                await self._act(person, decision, began)
                return SendOutcome.SKIPPED
            return await self._show(person, desire.status.with_expiration(expiration), began)
        if not isinstance(decision, Release):
            await self._act(person, decision, began)
            return SendOutcome.SKIPPED
        return await self._release(person, decision.restore)

    async def _show(
        self, person: _Profile, status: SlackStatus, began: float | None
    ) -> SendOutcome:
        before = person.claim
        saved = before.saved if before is not None else person.shown.shown_at(self._wall())
        person.in_flight = status
        person.disowned = None
        try:
            # Saved before the write, so a bot killed in between still knows what to put back.
            if before is None:
                await self._store.claim(self.team_id, person.user_id, saved=saved, written=status)
            else:
                await self._store.update_written(self.team_id, person.user_id, status)
            if person.changed_during_write or self._decide_as_before(person, before, status):
                # The person or the phone moved while the claim was saved: nothing is written.
                return await self._finish(person, before, None, SendOutcome.SKIPPED)
            result = await self._profiles.set_status(person.user_id, status)
        except BaseException:
            person.in_flight = None
            person.changed_during_write = False
            person.claim = before
            raise
        if result.outcome.kind is SendOutcome.OK.kind:
            self.stats.writes_ok += 1
            claim = Claim(saved=saved, written=status)
        else:
            claim = None
        if result.token_lost:
            await self._token_lost(person)
        return await self._finish(person, before, claim, result.outcome)

    def _decide_as_before(
        self, person: _Profile, before: Claim | None, status: SlackStatus
    ) -> bool:
        """Whether, judged as it stood before this write began, the show no longer holds."""
        decision, _began = self._decide(person)
        return not (isinstance(decision, Show) and decision.status.same_as(status))

    async def _release(self, person: _Profile, restore: SlackStatus) -> SendOutcome:
        before = person.claim
        person.in_flight = restore
        try:
            # Not a write the store could refuse afterwards: a restore that lands while the
            # database is away would leave a claim the next leader takes for a manual change.
            await self._store.confirm_leading()
            result = await self._profiles.set_status(person.user_id, restore)
        except BaseException:
            person.in_flight = None
            person.changed_during_write = False
            raise
        if result.outcome.kind is SendOutcome.OK.kind:
            self.stats.writes_ok += 1
            self.stats.restores += 1
        if result.token_lost:
            await self._token_lost(person)
        return await self._finish(person, before, None, result.outcome)

    async def _finish(
        self,
        person: _Profile,
        before: Claim | None,
        claim: Claim | None,
        outcome: SendOutcome,
    ) -> SendOutcome:
        """After a write: what the profile shows now, who owns it, and what follows."""
        written = person.in_flight
        manual = person.changed_during_write
        recheck = person.recheck
        person.in_flight = None
        person.changed_during_write = False
        person.recheck = False
        ok = outcome.kind is SendOutcome.OK.kind
        if ok and written is not None:
            _remember_write(person, written, self._wall())
            if before is not None and claim is None:
                # A release landed: our claim is over.
                person.claim = None
                await self._store.release(self.team_id, person.user_id)
            else:
                person.claim = claim
            if manual:
                # Their change reached us during our write: theirs is the later one we know of.
                person.disowned = written if claim is not None else None
            else:
                person.shown = written
        elif before is None and claim is None and written is not None and not ok:
            # The first write of a claim did not land: the claim saved for it holds nothing.
            person.claim = None
            await self._store.release(self.team_id, person.user_id)
        else:
            person.claim = before
        if ok or recheck or manual or outcome.kind is SendOutcome.SKIPPED.kind:
            # The scheduler keeps no copy of what is shown: it is told again after every write.
            await self._evaluate(person)
        return outcome

    async def _token_lost(self, person: _Profile) -> None:
        self.stats.tokens_lost += 1
        person.blocked_reason = NOT_CONNECTED
        await self._notice.token_lost(person.user_id)

    # ----------------------------------------------------------------------------- upkeep

    async def sweep(self) -> None:
        """Claims whose status Slack already expired are over: nothing is left to restore."""
        now = self._wall()
        for person in list(self._people.values()):
            claim = person.claim
            if claim is None or person.in_flight is not None:
                continue
            presence = self._roster.presence_of(person.user_id)
            if presence is not None and presence.availability is Availability.ON_CALL:
                continue
            expired = 0 < claim.written.expiration <= now
            if expired and claim.saved.shown_at(now).is_empty():
                person.claim = None
                await self._store.release(self.team_id, person.user_id)
                if person.shown.same_as(claim.written):
                    person.shown = EMPTY_STATUS

    @property
    def pending(self) -> int:
        """People with a status write still to make."""
        return self._scheduler.pending()

    async def drain(self) -> None:
        """Wait until every queued write is made or dropped (`run()` must be running)."""
        await self._scheduler.drain()

    def scheduler_stats(self) -> SchedulerStats:
        return dataclasses.replace(self._scheduler.stats)


__all__ = ["NOT_CONNECTED", "NOT_LINKED", "RESPECTING", "StatusWriter", "WriterStats"]


ECHO_WINDOW: Final = 30.0
"""Seconds an echo of one of our writes may take to arrive, relayed or not."""
WRITES_REMEMBERED: Final = 4


def _remember_write(person: _Profile, written: SlackStatus, now: float) -> None:
    person.written_lately.append((written, now))
    del person.written_lately[:-WRITES_REMEMBERED]


def _late_echo(person: _Profile, status: SlackStatus, now: float) -> bool:
    """A status we wrote lately, reported now that a later write of ours has landed.

    Only a status of ours that carries an expiration is recognised: every one we write as a
    claim has one, and a person setting by hand exactly our words, emoji and expiry second is
    not a case to plan for. A cleared profile could be either, so it is taken as reported."""
    if not status.expiration:
        return False
    if not person.written_lately:
        return False
    *earlier, (latest, _at) = person.written_lately
    if latest == status:
        return False
    return any(written == status and now - at <= ECHO_WINDOW for written, at in earlier)
