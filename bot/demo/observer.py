"""Watches both simulators as a person would: the event feed, the counters, the end check."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from bot.demo.view import Counters, FeedLine, Latency, PersonRow, emoji
from bot.demo.workload import Actor
from bot.policy import DEFAULT_PREFERENCES, call_status, meeting_status
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

ON_CALL: Final = frozenset({"CallConnected", "OnHold"})


class Observer:
    """Reads both simulators as a person would see them: the feed, the counters, the end check."""

    def __init__(
        self,
        rc: RingCentralSimulator,
        slack: SlackSimulator,
        actors: list[Actor],
        pending_writes: Callable[[], int],
    ) -> None:
        self._rc = rc
        self._slack = slack
        self._actors = actors
        self._by_extension = {actor.extension_id: actor for actor in actors}
        self._by_slack = {actor.slack_id: actor for actor in actors}
        self._pending_writes = pending_writes
        # What the bot writes for someone who never changed their settings (nobody here does).
        call, meeting = call_status(DEFAULT_PREFERENCES), meeting_status(DEFAULT_PREFERENCES)
        self.call = (call.text, call.emoji)
        self.meeting = (meeting.text, meeting.emoji)
        self.feed: deque[FeedLine] = deque(maxlen=64)
        self._rc_cursor = 0
        self._writes_since = 0.0
        self._writes_at_edge: set[tuple[str, float]] = set()
        self._dms_seen = 0
        self._telephony: dict[int, str] = {}
        self._on_call_since: dict[int, float] = {}
        self._stretch_written: set[int] = set()
        self._shown: dict[str, tuple[str, str]] = {}
        self.latencies: list[float] = []
        self.presence_events = 0
        self.status_writes = 0
        self.restores = 0
        self.commands = 0
        self.commands_unanswered = 0

    def note(self, text: str, style: str = "") -> None:
        self.feed.append(FeedLine(time.time(), text, style))

    # -- polling ------------------------------------------------------------------------------

    def poll(self) -> None:
        """Take in every change both simulators logged since the last poll, in time order."""
        events = self._rc.events(after=self._rc_cursor)
        if events:
            self._rc_cursor = int(events[-1]["id"])
        self.presence_events += len(events)
        writes = [
            write
            for write in self._slack.profile_writes(since=self._writes_since)
            if (write["user"], write["at"]) not in self._writes_at_edge
        ]
        if writes:
            latest = max(float(write["at"]) for write in writes)
            if latest > self._writes_since:
                self._writes_at_edge = set()
                self._writes_since = latest
            self._writes_at_edge |= {
                (write["user"], write["at"]) for write in writes if write["at"] == latest
            }
        merged: list[tuple[float, int, dict[str, Any]]] = [
            (float(event["time"]), 0, event) for event in events
        ] + [(float(write["at"]), 1, write) for write in writes]
        merged.sort(key=lambda item: (item[0], item[1]))
        for _at, kind, entry in merged:
            if kind == 0:
                self._presence_event(entry)
            else:
                self._profile_write(entry)
        dms = self._slack.messages(kind="dm")
        for dm in dms[self._dms_seen :]:
            who = self._by_slack.get(str(dm.get("user") or dm.get("channel")))
            text = self.readable(str(dm.get("text", "")))
            self.note(f"DM to {who.name if who else 'someone'}: {text}", "cyan")
        self._dms_seen = len(dms)

    def _presence_event(self, event: dict[str, Any]) -> None:
        extension_id = int(event["extension_id"])
        actor = self._by_extension.get(extension_id)
        fields: dict[str, Any] = event["fields"]
        at = float(event["time"])
        if "telephonyStatus" in fields:
            before = self._telephony.get(extension_id, "NoCall")
            after = str(fields["telephonyStatus"])
            self._telephony[extension_id] = after
            if after in ON_CALL and before not in ON_CALL:
                self._on_call_since[extension_id] = at
                self._stretch_written.discard(extension_id)
            elif after not in ON_CALL:
                self._on_call_since.pop(extension_id, None)
            if actor is not None:
                self._tell_call(actor, before, after)
        if actor is None:
            return
        if fields.get("meetingStatus") == "Connected":
            self.note(f"{actor.name} joined a meeting", "blue")
        elif fields.get("meetingStatus") == "Disconnected":
            self.note(f"{actor.name} left the meeting", "blue")
        if fields.get("dndStatus") == "DoNotAcceptAnyCalls":
            self.note(f"{actor.name} turned on Do Not Disturb", "dark_orange")
        elif fields.get("dndStatus") == "TakeAllCalls":
            self.note(f"{actor.name} turned Do Not Disturb off", "dark_orange")

    def _tell_call(self, actor: Actor, before: str, after: str) -> None:
        if after == "Ringing":
            self.note(f"{actor.name}'s phone rings", "yellow")
        elif after == "CallConnected" and before == "OnHold":
            self.note(f"{actor.name} resumed the call", "red")
        elif after == "CallConnected":
            verb = "answered" if before == "Ringing" else "placed a call"
            self.note(f"{actor.name} {verb}", "red")
        elif after == "OnHold":
            self.note(f"{actor.name} put the call on hold", "magenta")
        elif after == "NoCall" and before == "Ringing":
            self.note(f"{actor.name} missed a call", "dim")
        elif after == "NoCall":
            self.note(f"{actor.name} hung up", "dim")

    def _profile_write(self, write: dict[str, Any]) -> None:
        self.status_writes += 1
        user = str(write["user"])
        actor = self._by_slack.get(user)
        shown = (str(write["text"]), str(write["emoji"]))
        before = self._shown.get(user)
        self._shown[user] = shown
        ours = shown in (self.call, self.meeting)
        if not ours:
            self.restores += 1
        if actor is None:
            return
        name, extension_id = actor.name, actor.extension_id
        since = self._on_call_since.get(extension_id)
        if shown == self.call and since is not None and extension_id not in self._stretch_written:
            # The first "On a call" of this stretch on the phone: what the latency measures.
            self._stretch_written.add(extension_id)
            latency = float(write["at"]) - since
            self.latencies.append(latency)
            self.note(
                f"Slack: {name} → {emoji(shown[1])} {shown[0]}, "
                f"{latency:.1f} s after the call connected",
                "bold red",
            )
        elif ours and before == shown:
            self.note(f"Slack: {name}'s {shown[0]!r} renewed", "dim")
        elif ours:
            self.note(f"Slack: {name} → {emoji(shown[1])} {shown[0]}", "bold blue")
        elif shown == ("", ""):
            self.note(f"Slack: {name}'s status cleared", "green")
        else:
            self.note(f"Slack: {name}'s own status put back: {shown[0]}", "green")

    def readable(self, text: str) -> str:
        """Slack's <@U…> mentions as the names the view shows."""

        def name(match: re.Match[str]) -> str:
            actor = self._by_slack.get(match.group(1))
            return actor.name if actor else match.group(0)

        return re.sub(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", name, text)

    # -- what the view shows ------------------------------------------------------------------

    def rows(self) -> list[PersonRow]:
        now = time.time()
        return [self._row(actor, now) for actor in self._actors]

    def _row(self, actor: Actor, now: float) -> PersonRow:
        presence = self._rc.presence(actor.extension_id)
        telephony = presence.get("telephonyStatus", "NoCall")
        since = self._on_call_since.get(actor.extension_id)
        length = "" if since is None else f" {int(now - since) // 60}:{int(now - since) % 60:02d}"
        busy = True
        if telephony == "CallConnected":
            phone, phone_style = "call" + length, "bold red"
        elif telephony == "OnHold":
            phone, phone_style = "hold" + length, "magenta"
        elif telephony == "Ringing":
            phone, phone_style = "ringing", "yellow"
        elif presence.get("meetingStatus") == "Connected":
            phone, phone_style = "meeting", "blue"
        elif presence.get("dndStatus") == "DoNotAcceptAnyCalls":
            phone, phone_style = "DND", "dark_orange"
        elif presence.get("presenceStatus") == "Offline":
            phone, phone_style, busy = "offline", "dim", False
        elif presence.get("presenceStatus") == "Busy":
            phone, phone_style, busy = "busy", "dark_orange", False
        else:
            phone, phone_style, busy = "free", "green", False
        user = self._slack.user(actor.slack_id)
        text, code = str(user["status_text"]), str(user["status_emoji"])
        if not actor.connected:
            slack, slack_style = "not connected", "dim"
        elif not text and not code:
            slack, slack_style = "–", "dim"
        elif (text, code) == self.call:
            slack, slack_style = f"{emoji(code)} {text}", "bold red"
        elif (text, code) == self.meeting:
            slack, slack_style = f"{emoji(code)} {text}", "bold blue"
        else:
            slack, slack_style = f"{emoji(code)} {text}", "italic cyan"
        busy = busy or bool(text or code)
        return PersonRow(actor.name, phone, phone_style, slack, slack_style, busy)

    def counters(self) -> Counters:
        latency = Latency.of(self.latencies)
        return Counters(
            presence_events=self.presence_events,
            status_writes=self.status_writes,
            restores=self.restores,
            slack_429=self.slack_429(),
            dms_sent=self._dms_seen,
            commands=self.commands,
            pending_writes=self._pending_writes(),
            latency_p50=None if latency.p50 is None else latency.p50 / 1000,
        )

    def slack_429(self) -> int:
        return sum(int(count) for count in self._slack.stats()["rate_limited"].values())

    # -- the end check ------------------------------------------------------------------------

    def checked(self) -> list[Actor]:
        return [actor for actor in self._actors if actor.connected and actor.manual is None]

    def end_check(self) -> tuple[int, int, list[str]]:
        """(mismatches, stuck statuses, who and what) for connected people without their own."""
        mismatches = stuck = 0
        problems = []
        ours = (self.call, self.meeting)
        for actor in self.checked():
            presence = self._rc.presence(actor.extension_id)
            on_call = presence.get("telephonyStatus") in ON_CALL
            idle = not on_call and presence.get("meetingStatus") != "Connected"
            user = self._slack.user(actor.slack_id)
            shown = (str(user["status_text"]), str(user["status_emoji"]))
            shows_call = shown == self.call
            if on_call != shows_call:
                mismatches += 1
                phone = "on a call" if on_call else "not on a call"
                problems.append(f"{actor.name}: phone {phone}, Slack shows {shown[0]!r}")
            if idle and shown in ours:
                stuck += 1
                problems.append(f"{actor.name}: phone idle, Slack still shows {shown[0]!r}")
        return mismatches, stuck, problems
