"""Memory benchmark: resident bytes the hub (coordinator and roster) holds per monitored person."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import RESULTS_DIR, joined, progress, write_result
from bot.coordinator import Coordinator
from bot.ringcentral.feed import PresenceSnapshots
from bot.roster import Roster
from bot.sim.company import build_company
from bot.sim.ringcentral import RingCentralSimulator

PAGE = 1000


class RecordedPages:
    """Account presence pages served from JSON text prepared before the baseline was taken."""

    def __init__(self, pages: list[str]) -> None:
        self._pages = pages

    async def get_records(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        for page in self._pages:
            records: list[dict[str, Any]] = json.loads(page)
            yield records


@dataclass(frozen=True, slots=True)
class Link:
    user_id: str
    extension_id: str


class Links:
    """Links every extension the roster knows to a Slack user of its own, once `everyone` is
    set. The records and their strings are made when asked, as a store's query makes them, so
    the roster's share is counted (and nothing is prepared before the baseline is read)."""

    def __init__(self, roster: Roster) -> None:
        self._roster = roster
        self.everyone = False

    async def links(self, team_id: str) -> list[Link]:
        if not self.everyone:
            return []
        numbers = [int(presence.extension_id) for presence in self._roster.presences()]
        return [Link(f"U{number}", str(number)) for number in numbers]


def recorded_pages(sim: RingCentralSimulator) -> list[str]:
    """Each extension's presence as the simulator renders it, in pages, as JSON text."""
    records = [
        {"extension": {"id": row["id"]}, **row["presence"]}
        for row in sim.extensions()
        if row["type"] == "User"
    ]
    return [json.dumps(records[i : i + PAGE]) for i in range(0, len(records), PAGE)]


def measure_child(people: int) -> dict[str, Any]:
    """Run in a fresh interpreter, so the baseline RSS is not inflated by earlier sizes.

    Two steps, each read after a garbage collection: the snapshot applied (presence only, as
    the previous coordinator held it), then every extension linked to a person (the roster's
    links, which the hub now owns too)."""
    process = psutil.Process()
    # The simulator stays alive to the end: memory it freed would otherwise be reused by the
    # roster and hide its growth from RSS.
    sim = RingCentralSimulator(build_company(people, seed=7))
    pages = recorded_pages(sim)
    gc.collect()
    baseline = process.memory_info().rss
    tracemalloc.start()
    roster = Roster()
    links = Links(roster)
    coordinator = Coordinator(
        team_id="T1",
        roster=roster,
        snapshots=PresenceSnapshots(RecordedPages(pages)),
        links=links,
    )
    applied = asyncio.run(coordinator.snapshot())
    gc.collect()
    traced, _peak = tracemalloc.get_traced_memory()
    after = process.memory_info().rss
    links.everyone = True
    asyncio.run(coordinator.reload_links())
    gc.collect()
    traced_linked, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after_linked = process.memory_info().rss
    del sim
    presences = max(1, roster.extensions_known)
    linked = max(1, roster.people_linked)
    return {
        "people": people,
        "presences": roster.extensions_known,
        "applied": applied,
        "linked": roster.people_linked,
        "baseline_rss_bytes": baseline,
        "rss_bytes": after,
        "delta_bytes": after - baseline,
        "bytes_per_person": round((after - baseline) / presences),
        "python_heap_bytes": traced,
        "python_heap_bytes_per_person": round(traced / presences),
        "linked_rss_bytes": after_linked,
        "linked_delta_bytes": after_linked - baseline,
        "linked_bytes_per_person": round((after_linked - baseline) / linked),
        "linked_python_heap_bytes": traced_linked,
        "linked_python_heap_bytes_per_person": round(traced_linked / linked),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def measure(people: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", "--child", str(people)]
    # Our own interpreter and module with fixed arguments: nothing untrusted reaches the command.
    done = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=True, timeout=600
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(sizes: tuple[int, ...] = (1_000, 10_000, 50_000)) -> dict[str, Any]:
    rows = []
    for people in sizes:
        progress(f"memory: {people:,} people (fresh interpreter)")
        rows.append(measure(people))
    return {
        "method": (
            "a fresh interpreter per size renders every User extension's presence as the "
            "simulator would serve it (JSON text, kept alive); baseline = process RSS after "
            "that, before the Coordinator (and its Roster) exists; the snapshot is then applied "
            "through PresenceSnapshots (parse_presence_record) and the coordinator, and RSS is "
            "read again after a garbage collection (python_heap_bytes, bytes_per_person: "
            "presence only, like for like with the previous PresenceCoordinator). Then every "
            "extension is linked to a Slack user of its own through reload_links, as in a "
            "company where everyone has connected, and both are read again (linked_*). RSS "
            "moves in allocator arenas, so small sizes are noisy; the heap figures (tracemalloc, "
            "live Python allocations made while building and filling the hub) are the precise "
            "ones"
        ),
        "sizes": rows,
    }


def summarise(result: dict[str, Any]) -> str:
    return joined(
        f"{row['people']:,} people: +{row['delta_bytes'] / 2**20:.1f} MiB over "
        f"{row['baseline_rss_bytes'] / 2**20:.0f} MiB baseline RSS, "
        f"{row['bytes_per_person']:,} B/person RSS, "
        f"{row['python_heap_bytes_per_person']:,} B/person heap "
        f"({row['linked_python_heap_bytes_per_person']:,} with everyone linked)"
        for row in result["sizes"]
    )


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--people", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure_child(args.child)))
        return {}
    result = run(tuple(args.people))
    summary = summarise(result)
    write_result("memory", result, summary=summary, directory=directory)
    progress(f"memory: {summary}")
    return result


if __name__ == "__main__":
    main()
