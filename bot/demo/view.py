"""What `rcstatus-bot demo` shows: the live terminal view, the closing summary and its JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

# Wide (two-cell) emoji for the shortcodes the bot and the demo use, so columns stay aligned;
# anything else is shown as its :shortcode:.
EMOJI: Final = MappingProxyType(
    {
        ":telephone_receiver:": "📞",
        ":spiral_calendar_pad:": "📅",
        ":calendar:": "📅",
        ":sandwich:": "🥪",
        ":headphones:": "🎧",
        ":palm_tree:": "🌴",
        ":bus:": "🚌",
        ":face_with_thermometer:": "🤒",
        ":coffee:": "☕",
        ":handshake:": "🤝",
        ":house_with_garden:": "🏡",
    }
)
FEED_LINES: Final = 8
NARROW: Final = 76
"""Below this width the people are listed in one column instead of two."""
# Header, progress, counters (3, or 5 when narrow), the people table's header, the line of
# people left out and the feed's title.
_FIXED_LINES: Final = 8


def emoji(shortcode: str) -> str:
    """The character for a Slack emoji shortcode, or the shortcode itself."""
    return EMOJI.get(shortcode, shortcode)


def short_names(names: Sequence[tuple[str, str]]) -> list[str]:
    """Short names such as "Alice S.", with more of the last name where two would collide."""
    letters = [1] * len(names)
    while True:
        shown = [_short(first, last, n) for (first, last), n in zip(names, letters, strict=True)]
        seen: dict[str, list[int]] = {}
        for index, name in enumerate(shown):
            seen.setdefault(name, []).append(index)
        clashes = [i for same in seen.values() if len(same) > 1 for i in same]
        growable = [i for i in clashes if letters[i] < len(names[i][1])]
        if not growable:
            break
        for index in growable:
            letters[index] += 1
    counts: dict[str, int] = {}
    unique = []
    for name in shown:
        # Namesakes with the same full name get a number.
        counts[name] = counts.get(name, 0) + 1
        unique.append(name if counts[name] == 1 else f"{name}{counts[name]}")
    return unique


def _short(first: str, last: str, letters: int) -> str:
    if not last:
        return first
    return f"{first} {last}" if letters >= len(last) else f"{first} {last[:letters]}."


@dataclass(frozen=True, slots=True)
class PersonRow:
    """One person's line: their phone beside their Slack status."""

    name: str
    phone: str
    phone_style: str
    slack: str
    slack_style: str
    busy: bool
    """Shown first when not everyone fits on the screen."""


@dataclass(frozen=True, slots=True)
class FeedLine:
    at: float
    """Wall-clock seconds."""
    text: str
    style: str = ""


@dataclass(frozen=True, slots=True)
class Counters:
    presence_events: int = 0
    status_writes: int = 0
    restores: int = 0
    slack_429: int = 0
    dms_sent: int = 0
    commands: int = 0
    pending_writes: int = 0
    latency_p50: float | None = None
    """Seconds from a call connecting to the Slack write that shows it."""
    webhooks_delivered: int = 0
    """Deliveries the demo's receiver got with a good signature."""
    webhook_p95_ms: int | None = None
    """Milliseconds from a change to its delivery at the receiver (95th percentile)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one frame of the live view shows."""

    users: int
    time_scale: float
    phase: str
    """One of: starting, running, settling, stopping."""
    note: str
    elapsed: float
    seconds: float | None
    rows: Sequence[PersonRow]
    feed: Sequence[FeedLine]
    counters: Counters


class LiveView:
    """A rich renderable that lays one snapshot out to the terminal's size."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shot = self.snapshot
        width = options.max_width
        height = options.height or console.size.height
        yield _header(shot)
        if shot.seconds:
            yield _progress(shot, width)
        else:
            yield Text(shot.note or "Ctrl-C ends the demo and prints a summary.", style="dim")
        two_columns = width >= NARROW
        feed_lines = min(FEED_LINES, max(3, height // 4))
        room = max(3, height - _FIXED_LINES - feed_lines - (0 if two_columns else 2))
        yield _people(shot.rows, room * (2 if two_columns else 1), two_columns)
        yield _counters(shot.counters, columns=4 if two_columns else 2)
        yield Text("latest", style="bold")
        for line in list(shot.feed)[-feed_lines:]:
            stamp = time.strftime("%H:%M:%S", time.localtime(line.at))
            text = Text(f"{stamp} ", style="dim")
            text.append(line.text, style=line.style)
            text.no_wrap = True
            text.overflow = "ellipsis"
            yield text


def _header(shot: Snapshot) -> Text:
    text = Text("rcstatus demo", style="bold")
    text.append(f" · {shot.users} people · time ×{shot.time_scale:g}", style="")
    text.append(" · the real bot between both simulators", style="dim")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _progress(shot: Snapshot, width: int) -> RenderableType:
    total = shot.seconds or 1.0
    done = min(shot.elapsed, total)
    label = f" {_clock(done)} / {_clock(total)}" if shot.phase == "running" else f" {shot.note}"
    grid = Table.grid(padding=(0, 0))
    grid.add_column(width=max(10, min(40, width - len(label) - 1)))
    grid.add_column(no_wrap=True, overflow="ellipsis")
    grid.add_row(ProgressBar(total=total, completed=done), Text(label, style="dim"))
    return grid


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _people(rows: Sequence[PersonRow], room: int, two_columns: bool) -> RenderableType:
    shown = list(rows)
    hidden: list[PersonRow] = []
    if len(shown) > room:
        # Busy people are what the demo is about; idle ones are left out first.
        keep = {id(row) for row in sorted(shown, key=lambda r: not r.busy)[: room - 1]}
        hidden = [row for row in shown if id(row) not in keep]
        shown = [row for row in shown if id(row) in keep]
    halves = [shown]
    if two_columns:
        middle = (len(shown) + 1) // 2
        halves = [shown[:middle], shown[middle:]]
    grid = Table.grid(padding=(0, 2))
    tables = [_person_table(half) for half in halves]
    for _ in tables:
        grid.add_column()
    grid.add_row(*tables)
    if not hidden:
        return grid
    idle = "" if any(row.busy for row in hidden) else ", all free"
    return Group(grid, Text(f"… and {len(hidden)} more{idle}", style="dim"))


def _person_table(rows: Sequence[PersonRow]) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("person", width=12, no_wrap=True, overflow="ellipsis", style="bold")
    table.add_column("phone", width=9, no_wrap=True, overflow="ellipsis")
    table.add_column("Slack status", width=14, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(
            row.name, Text(row.phone, style=row.phone_style), Text(row.slack, style=row.slack_style)
        )
    return table


def _counters(counters: Counters, columns: int) -> Table:
    latency = "–" if counters.latency_p50 is None else f"{counters.latency_p50:.1f} s"
    cells = [
        f"presence events {counters.presence_events}",
        f"status writes {counters.status_writes}",
        f"restores {counters.restores}",
        f"Slack 429s {counters.slack_429}",
        f"/rcstatus {counters.commands}",
        f"DMs {counters.dms_sent}",
        f"writes queued {counters.pending_writes}",
        f"call→Slack p50 {latency}",
        f"webhooks {counters.webhooks_delivered}",
        f"webhook p95 {_ms(counters.webhook_p95_ms)}",
    ]
    grid = Table.grid(padding=(0, 2))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    for start in range(0, len(cells), columns):
        grid.add_row(*cells[start : start + columns])
    return grid


def _ms(value: int | None) -> str:
    return "–" if value is None else f"{value} ms"


def plain_line(shot: Snapshot) -> str:
    """One line of progress for a log or a pipe, where a live view cannot redraw."""
    if shot.phase != "running":
        return f"rcstatus demo: {shot.note}"
    counters = shot.counters
    busy = sum(1 for row in shot.rows if row.phone.startswith(("call", "hold")))
    return (
        f"rcstatus demo {_clock(shot.elapsed)}: {busy} on a call, "
        f"{counters.presence_events} presence events, {counters.status_writes} status writes, "
        f"{counters.slack_429} Slack 429s, {counters.commands} /rcstatus, {counters.dms_sent} DMs, "
        f"{counters.webhooks_delivered} webhooks (Ctrl-C ends the demo)"
    )


# ---------------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds from a call connecting (RingCentral) to "On a call" being written (Slack)."""

    p50: int | None = None
    p95: int | None = None
    p99: int | None = None
    samples: int = 0

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls()
        ordered = sorted(seconds)

        def rank(share: float) -> int:
            # Nearest rank: the smallest sample with at least `share` of them at or below it.
            index = max(0, math.ceil(share * len(ordered)) - 1)
            return round(ordered[index] * 1000)

        return cls(rank(0.50), rank(0.95), rank(0.99), len(ordered))

    def as_json(self) -> dict[str, int | None]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@dataclass(frozen=True, slots=True)
class Report:
    """The demo's outcome; `as_json()` is what `--json` prints."""

    users: int
    presence_events: int
    status_writes: int
    restores: int
    dms_sent: int
    commands: int
    unanswered: int
    """Commands the bot gave no reply to within a few seconds (not in the JSON)."""
    slack_429: int
    mismatches_at_end: int
    stuck_statuses: int
    latency: Latency
    ran_for: float
    time_scale: float
    call_debounce: float
    checked_people: int
    settled: bool
    """False when a second Ctrl-C (or the deadline) cut the wait for the last writes short."""
    problems: Sequence[str] = field(default=())
    """Who mismatched or was stuck, in words."""
    webhooks_delivered: int = 0
    """Deliveries the demo's receiver got, each signature verified."""
    webhook_latency: Latency = field(default_factory=Latency)
    """From each change (the payload's timestamp) to its arrival at the receiver."""
    webhooks_refused: int = 0
    """Deliveries whose signature did not verify (should be none)."""
    call_types: Sequence[str] = field(default=())
    """What the opening act's two calls showed, worded by call type."""

    def as_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "presence_events": self.presence_events,
            "status_writes": self.status_writes,
            "restores": self.restores,
            "dms_sent": self.dms_sent,
            "commands": self.commands,
            "slack_429": self.slack_429,
            "mismatches_at_end": self.mismatches_at_end,
            "stuck_statuses": self.stuck_statuses,
            "latency_ms": self.latency.as_json(),
            "webhooks_delivered": self.webhooks_delivered,
            "webhook_p95_ms": self.webhook_latency.p95,
        }

    def json_line(self) -> str:
        return json.dumps(self.as_json())


def summary(report: Report) -> RenderableType:
    """The closing summary, in words."""
    table = Table(box=None, show_header=False, padding=(0, 2), pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(style="dim")
    table.add_row("presence events", str(report.presence_events), "changes RingCentral sent")
    table.add_row(
        "status writes", str(report.status_writes), f"users.profile.set, {report.restores} restores"
    )
    table.add_row("Slack 429s", str(report.slack_429), "rate-limit refusals from Slack")
    table.add_row("DMs sent", str(report.dms_sent), "'is free now' notices and others")
    answered = "all answered" if not report.unanswered else f"{report.unanswered} unanswered"
    table.add_row("/rcstatus commands", str(report.commands), f"sent by people, {answered}")
    checked = f"of {report.checked_people} connected people"
    mismatch_style = "green" if report.mismatches_at_end == 0 else "bold red"
    stuck_style = "green" if report.stuck_statuses == 0 else "bold red"
    table.add_row(
        "mismatches at end", Text(str(report.mismatches_at_end), style=mismatch_style), checked
    )
    table.add_row(
        "stuck statuses", Text(str(report.stuck_statuses), style=stuck_style), "'On a call' on idle"
    )
    hooks = report.webhook_latency
    arrival = "" if hooks.p95 is None else f", p95 {hooks.p95} ms after the change"
    table.add_row(
        "webhooks delivered", str(report.webhooks_delivered), f"signature verified{arrival}"
    )
    if report.webhooks_refused:
        table.add_row(
            "webhooks refused",
            Text(str(report.webhooks_refused), style="bold red"),
            "bad signature",
        )
    title = Text("rcstatus demo summary", style="bold")
    title.append(
        f" · {report.users} people · {report.ran_for:.0f} s · time ×{report.time_scale:g}",
        style="",
    )
    parts: list[RenderableType] = [title, table]
    if not report.settled:
        parts.append(
            Text(
                "The end was checked before the last writes landed, so writes still on their "
                "way may count as mismatches.",
                style="yellow",
            )
        )
    latency = report.latency
    if latency.samples:
        parts.append(
            Text(
                f"call connected → 'On a call' in Slack: p50 {latency.p50} ms · "
                f"p95 {latency.p95} ms · p99 {latency.p99} ms ({latency.samples} calls). "
                f"Raw figures: they include the {report.call_debounce:g} s the bot waits on "
                "purpose (CALL_DEBOUNCE_SECONDS) so that rings and very short calls never "
                "write a status."
            )
        )
    else:
        parts.append(
            Text(
                "No call was shown in Slack: the bot writes 'On a call' only once a call has "
                f"lasted {report.call_debounce:g} s (CALL_DEBOUNCE_SECONDS).",
                style="dim",
            )
        )
    if report.call_types:
        parts.append(Text("wording by call type: " + " · ".join(report.call_types)))
    for problem in report.problems[:10]:
        parts.append(Text(f"  {problem}", style="red"))
    return Group(*parts)
