"""The scripted office day: the people, their roles, their pace, and every step they take."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, assert_never

from bot.demo.view import emoji, short_names
from bot.sim.company import Company, Person
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

log = logging.getLogger(__name__)

# The workload's own pace, in real seconds (the simulators' time scale does not apply).
IDLE_MEAN: Final = 12.0
"""Mean pause between one person's activities."""
CALL_SHORTEST, CALL_LONGEST = 3.0, 20.0
BLIP_SHARE: Final = 0.1
"""Calls that end before CALL_DEBOUNCE_SECONDS: they must never reach Slack."""
COMMAND_MEAN: Final = 1.0
"""Mean pause between two /rcstatus commands, anyone to anyone."""
COMMANDS_IN_FLIGHT: Final = 3
COMMAND_WAIT: Final = 3.0
# What an idle person does next: a call, a meeting, Do Not Disturb, else their own status.
CALL_SHARE, MEETING_SHARE, DND_SHARE = 0.72, 0.12, 0.08
OUTBOUND_SHARE: Final = 0.3
MISSED_SHARE: Final = 0.15
HOLD_SHARE: Final = 0.25
OVERRIDE_SHARE: Final = 0.1
UNCONNECTED_SHARE: Final = 0.1
MANUAL_SHARE: Final = 0.1
MANUAL_STATUSES: Final = (
    ("Lunch", ":sandwich:"),
    ("Focus time", ":headphones:"),
    ("Vacationing", ":palm_tree:"),
    ("Commuting", ":bus:"),
    ("Out sick", ":face_with_thermometer:"),
    ("Coffee break", ":coffee:"),
    ("Working from home", ":house_with_garden:"),
)
OVERRIDE_STATUS: Final = ("With a customer", ":handshake:")
"""What someone on a call sets by hand over the bot's status; the bot must then keep off it."""

TICK: Final = 0.05
"""How often a waiting loop of the demo looks again (the day's steps, the wind-down)."""

Activity = Literal["idle", "ringing", "call", "hold", "meeting", "dnd"]
Step = Literal[
    "ring", "dial", "answer", "hold", "resume", "hang_up", "override",
    "meet", "leave", "dnd_on", "dnd_off", "own_status",
]  # fmt: skip


# ------------------------------------------------------------------------------------ the cast


@dataclass(slots=True, eq=False)
class Actor:
    """One person on both sides, and what the workload has them doing."""

    person: Person
    extension_id: int
    slack_id: str
    handle: str
    name: str
    connected: bool = False
    manual: tuple[str, str] | None = None
    """A status they set by hand and keep; the end check leaves them out while they do."""
    activity: Activity = "idle"
    call_id: str | None = None
    script: deque[tuple[float, Step]] = field(default_factory=deque)
    """The steps still to come, each (seconds after the previous one, what happens)."""
    next_at: float = 0.0


def cast(company: Company, slack: SlackSimulator) -> list[Actor]:
    """Everyone with an enabled extension and a Slack account."""
    people = [
        person
        for person in company.people
        if person.slack_id is not None
        and person.extension_id is not None
        and person.extension_status == "Enabled"
    ]
    names = short_names([(person.first_name, person.last_name) for person in people])
    actors = []
    for person, name in zip(people, names, strict=True):
        assert person.slack_id is not None
        assert person.extension_id is not None
        handle = str(slack.user(person.slack_id)["name"])
        actors.append(Actor(person, person.extension_id, person.slack_id, handle, name))
    return actors


def pick_roles(actors: list[Actor], rng: random.Random) -> tuple[list[Actor], list[Actor]]:
    """Who never connects and who keeps a status of their own; everyone else connects."""
    shuffled = list(actors)
    rng.shuffle(shuffled)
    at_least = 1 if len(actors) >= 5 else 0
    unconnected = max(at_least, round(len(actors) * UNCONNECTED_SHARE))
    manual = max(at_least, round(len(actors) * MANUAL_SHARE))
    return shuffled[:unconnected], shuffled[unconnected : unconnected + manual]


def cast_roles(slack: SlackSimulator, actors: list[Actor], rng: random.Random) -> list[Actor]:
    """A few never connect, a few keep a status of their own; returns who will connect."""
    unconnected, manual = pick_roles(actors, rng)
    for actor in manual:
        status = rng.choice(MANUAL_STATUSES)
        slack.set_status(actor.slack_id, *status)
        actor.manual = status
    skipped = {id(actor) for actor in unconnected}
    return [actor for actor in actors if id(actor) not in skipped]


class Pace:
    """At most `limit` starts in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._starts: deque[float] = deque()

    async def wait(self) -> None:
        while True:
            now = time.monotonic()
            while self._starts and self._starts[0] <= now - self._window:
                self._starts.popleft()
            if len(self._starts) < self._limit:
                self._starts.append(now)
                return
            await asyncio.sleep(self._starts[0] + self._window - now)


# ------------------------------------------------------------------------------------ playing


class Watcher(Protocol):
    """Whoever watches the day: told what people did, asked what the bot shows for a call."""

    call: tuple[str, str]
    """The status the bot writes for a call: a person overrides only that one."""
    commands: int
    commands_unanswered: int

    def note(self, text: str, style: str = "") -> None: ...

    def readable(self, text: str) -> str: ...


class Workload:
    """An office day, sped up: calls, holds, meetings, DND, statuses set by hand, /rcstatus."""

    def __init__(
        self,
        rc: RingCentralSimulator,
        slack: SlackSimulator,
        actors: list[Actor],
        observer: Watcher,
        rng: random.Random,
        call_debounce: float,
    ) -> None:
        self._rc = rc
        self._slack = slack
        self._actors = actors
        self._observer = observer
        self._rng = rng
        self._debounce = call_debounce
        self._commands_in_flight = 0

    async def play(self, until: asyncio.Event) -> None:
        """Run the day until `until` is set; commands in flight are awaited before returning."""
        now = time.monotonic()
        for actor in self._actors:
            actor.next_at = now + self._rng.uniform(0.2, IDLE_MEAN / 2)
        async with asyncio.TaskGroup() as commands:
            next_command = now + self._rng.expovariate(1 / COMMAND_MEAN)
            while not until.is_set():
                now = time.monotonic()
                for actor in self._actors:
                    if actor.next_at <= now:
                        self._step(actor, now)
                if now >= next_command:
                    next_command = now + self._rng.expovariate(1 / COMMAND_MEAN)
                    if self._commands_in_flight < COMMANDS_IN_FLIGHT:
                        commands.create_task(self._command())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), TICK)

    def finish(self) -> None:
        """Every call ended, every meeting left, DND off: the end state the check is made on."""
        for actor in self._actors:
            actor.script.clear()
            if actor.activity in ("ringing", "call", "hold"):
                self._do(actor, "hang_up")
            elif actor.activity == "meeting":
                self._do(actor, "leave")
            elif actor.activity == "dnd":
                self._do(actor, "dnd_off")

    # -- people -------------------------------------------------------------------------------

    def _step(self, actor: Actor, now: float) -> None:
        if not actor.script:
            self._plan(actor)
        if actor.script:
            _delay, step = actor.script.popleft()
            self._do(actor, step)
        if actor.script:
            actor.next_at = now + actor.script[0][0]
        else:
            actor.next_at = now + max(1.0, self._rng.expovariate(1 / IDLE_MEAN))

    def _plan(self, actor: Actor) -> None:
        """What this person does next, as a script of steps."""
        rng = self._rng
        roll = rng.random()
        script = actor.script
        if roll < CALL_SHARE:
            self._plan_call(actor)
        elif roll < CALL_SHARE + MEETING_SHARE:
            script.append((0.0, "meet"))
            script.append((rng.uniform(8.0, 25.0), "leave"))
        elif roll < CALL_SHARE + MEETING_SHARE + DND_SHARE:
            script.append((0.0, "dnd_on"))
            script.append((rng.uniform(5.0, 15.0), "dnd_off"))
        elif actor.connected:
            script.append((0.0, "own_status"))

    def _plan_call(self, actor: Actor) -> None:
        """Inbound (rings first, may be missed) or outbound; maybe a hold, maybe a status by
        hand; 3 to 20 s of talk, or a blip too short for the bot to show."""
        rng, script = self._rng, actor.script
        if rng.random() < BLIP_SHARE:
            length = rng.uniform(0.3, max(0.4, self._debounce * 0.6))
        else:
            length = math.exp(rng.uniform(math.log(CALL_SHORTEST), math.log(CALL_LONGEST)))
        if rng.random() < OUTBOUND_SHARE:
            script.append((0.0, "dial"))
        else:
            script.append((0.0, "ring"))
            if rng.random() < MISSED_SHARE:
                script.append((rng.uniform(2.0, 5.0), "hang_up"))
                return
            script.append((rng.uniform(1.0, 4.0), "answer"))
        if length > 6.0 and rng.random() < HOLD_SHARE:
            talk = length * rng.uniform(0.3, 0.7)
            script.append((talk, "hold"))
            script.append((rng.uniform(2.0, 5.0), "resume"))
            length -= talk
        may_override = actor.connected and actor.manual is None
        if length > 6.0 and may_override and rng.random() < OVERRIDE_SHARE:
            talk = length * rng.uniform(0.4, 0.7)
            script.append((talk, "override"))
            length -= talk
        script.append((length, "hang_up"))

    def _do(self, actor: Actor, step: Step) -> None:
        rc, ext = self._rc, actor.extension_id
        match step:
            case "ring":
                actor.call_id = rc.call(ext, "ringing", direction="Inbound")
                actor.activity = "ringing"
            case "dial":
                actor.call_id = rc.call(ext, "connected", direction="Outbound")
                actor.activity = "call"
            case "answer" | "resume":
                rc.call(ext, "connected", call_id=actor.call_id)
                actor.activity = "call"
            case "hold":
                rc.call(ext, "hold", call_id=actor.call_id)
                actor.activity = "hold"
            case "hang_up":
                rc.call(ext, "ended", call_id=actor.call_id)
                actor.call_id = None
                actor.activity = "idle"
            case "meet":
                rc.set_presence(ext, meetingStatus="Connected")
                actor.activity = "meeting"
            case "leave":
                rc.set_presence(ext, meetingStatus="Disconnected")
                actor.activity = "idle"
            case "dnd_on":
                rc.set_presence(ext, dndStatus="DoNotAcceptAnyCalls")
                actor.activity = "dnd"
            case "dnd_off":
                rc.set_presence(ext, dndStatus="TakeAllCalls")
                actor.activity = "idle"
            case "override":
                self._override(actor)
            case "own_status":
                self._own_status(actor)
            case _:
                assert_never(step)

    def _override(self, actor: Actor) -> None:
        """Mid-call, the person types a status of their own over the bot's."""
        user = self._slack.user(actor.slack_id)
        if (user["status_text"], user["status_emoji"]) != self._observer.call:
            return
        self._set_own(actor, OVERRIDE_STATUS)

    def _own_status(self, actor: Actor) -> None:
        if actor.manual is None:
            self._set_own(actor, self._rng.choice(MANUAL_STATUSES))
            return
        self._slack.set_status(actor.slack_id, "", "")
        actor.manual = None
        self._observer.note(f"{actor.name} cleared their own status", "cyan")

    def _set_own(self, actor: Actor, status: tuple[str, str]) -> None:
        text, code = status
        self._slack.set_status(actor.slack_id, text, code)
        actor.manual = status
        self._observer.note(f"{actor.name} set their own status: {emoji(code)} {text}", "cyan")

    # -- commands -----------------------------------------------------------------------------

    async def _command(self) -> None:
        rng = self._rng
        asker = rng.choice(self._actors)
        others = [actor for actor in self._actors if actor is not asker]
        if not others:
            return
        busy = [actor for actor in others if actor.activity in ("call", "hold", "meeting")]
        target = rng.choice(busy) if busy and rng.random() < 0.6 else rng.choice(others)
        if target.activity in ("call", "hold", "meeting") and rng.random() < 0.5:
            text = f"notify @{target.handle}"
        elif rng.random() < 0.1:
            text = ""
        else:
            text = f"@{target.handle}"
        typed = f"/rcstatus {text}".strip().replace(f"@{target.handle}", f"@{target.name}")
        self._commands_in_flight += 1
        self._observer.commands += 1
        try:
            outcome = await self._slack.send_command(
                asker.slack_id, "/rcstatus", text, wait=COMMAND_WAIT, expect_responses=1
            )
        except Exception as exc:
            # One failed delivery is worth a line on screen, not the end of the demo.
            outcome = {}
            log.warning("%s could not be delivered: %s", typed, exc)
        finally:
            self._commands_in_flight -= 1
        responses = outcome.get("responses") or []
        if not responses:
            self._observer.commands_unanswered += 1
            self._observer.note(f"{asker.name}: {typed} got no answer", "yellow")
            return
        reply = self._observer.readable(" ".join(str(responses[-1].get("text") or "").split()))
        self._observer.note(f"{asker.name}: {typed} → {reply}", "")
