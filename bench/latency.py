"""Latency benchmark: RingCentral presence event to coordinator transition, loaded vs a trickle."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    RESULTS_DIR,
    Rig,
    fmt,
    joined,
    percentile,
    progress,
    running_pipeline,
    wait_until,
    write_result,
)
from bot.presence import Availability, Transition


class CallDriver:
    """Starts and ends calls on the simulator, one per extension at a time; times transitions."""

    def __init__(self, rig: Rig) -> None:
        self._rig = rig
        book = rig.pipeline.coordinator.book
        available = [
            str(person.extension_id)
            for person in rig.company.rc_users
            if person.extension_status == "Enabled"
            and (known := book.get(str(person.extension_id))) is not None
            and known.availability is Availability.AVAILABLE
        ]
        self._idle: deque[str] = deque(available)
        self._calls: dict[str, str] = {}
        self.pending: dict[str, float] = {}
        self.latencies: list[float] = []
        self.unexpected = 0
        rig.clock.listeners.append(self._on_transition)

    @property
    def extensions(self) -> int:
        return len(self._idle) + len(self.pending)

    def _on_transition(self, at: float, transition: Transition) -> None:
        sent = self.pending.pop(transition.extension_id, None)
        if sent is None:
            self.unexpected += 1
            return
        self.latencies.append(at - sent)
        self._idle.append(transition.extension_id)

    def fire(self) -> bool:
        """Start a call for the next idle extension, or end its call; False if none is idle."""
        if not self._idle:
            return False
        extension_id = self._idle.popleft()
        self.pending[extension_id] = time.monotonic()
        call_id = self._calls.pop(extension_id, None)
        if call_id is None:
            self._calls[extension_id] = self._rig.sim.call(int(extension_id), "connected")
        else:
            self._rig.sim.call(int(extension_id), "ended", call_id=call_id)
        return True

    def reset(self) -> None:
        self.latencies = []
        self.unexpected = 0


async def run_phase(driver: CallDriver, rate: float, duration: float) -> dict[str, Any]:
    process = psutil.Process()
    events = max(1, round(rate * duration))
    driver.reset()
    cpu_before = process.cpu_times()
    started = time.monotonic()
    sent = starved = 0
    for index in range(events):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif index % 25 == 0:
            await asyncio.sleep(0)  # behind schedule: still let the bot read its socket
        if driver.fire():
            sent += 1
        else:
            starved += 1
    sending_took = time.monotonic() - started
    try:
        await wait_until(lambda: not driver.pending, within=60.0, what="every transition")
    except TimeoutError:
        progress(f"latency: {len(driver.pending)} transitions never arrived at {rate:g}/s")
    finished = time.monotonic()
    cpu_after = process.cpu_times()
    cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    samples = driver.latencies
    return {
        "target_rate_per_second": rate,
        "achieved_rate_per_second": round(sent / sending_took, 1) if sending_took else None,
        "events_sent": sent,
        "events_skipped_no_idle_extension": starved,
        "transitions_timed": len(samples),
        "transitions_missing": len(driver.pending),
        "transitions_unexpected": driver.unexpected,
        "p50_ms": round(percentile(samples, 0.50) * 1000, 2),
        "p95_ms": round(percentile(samples, 0.95) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
        "max_ms": round(max(samples, default=float("nan")) * 1000, 2),
        "cpu_percent_of_one_core": round(100 * cpu_seconds / (finished - started), 1),
        "rss_mib": round(process.memory_info().rss / 2**20, 1),
    }


async def run(
    people: int = 10_000,
    rates: tuple[float, ...] = (50.0, 500.0),
    baseline_rate: float = 5.0,
    duration: float = 10.0,
    scale: float = 60.0,
) -> dict[str, Any]:
    progress(f"latency: starting the simulator and pipeline with {people:,} people")
    async with running_pipeline(people, scale=scale) as rig:
        driver = CallDriver(rig)
        progress(f"latency: baseline {baseline_rate:g} events/s for {duration:g} s")
        baseline = await run_phase(driver, baseline_rate, duration)
        loads = []
        for rate in rates:
            progress(f"latency: {rate:g} events/s for {duration:g} s")
            loads.append(await run_phase(driver, rate, duration))
        monitored = len(rig.pipeline.coordinator.book)
    return {
        "people": people,
        "presences_monitored": monitored,
        "time_scale": scale,
        "measured": (
            "from the simulator changing an extension's presence (start or end of a call) to the "
            "pipeline's transition consumer receiving the transition, through the real WebSocket, "
            "subscriber, parser, PresenceBook and coordinator"
        ),
        "process_note": (
            "the simulator, the event generator and the bot share one process and one event "
            "loop, so CPU and RSS include the simulator; latency includes the loop contention"
        ),
        "not_measured": "event to Slack write (the status scheduler adds its own debounce)",
        "baseline": baseline,
        "loads": loads,
        "ratio_p95": {
            f"{load['target_rate_per_second']:g}/s": round(load["p95_ms"] / baseline["p95_ms"], 3)
            for load in loads
        },
    }


def summarise(result: dict[str, Any]) -> str:
    base = result["baseline"]
    parts = [f"{result['people']:,} people"]
    for load in result["loads"]:
        rate = f"{load['target_rate_per_second']:g}/s"
        parts.append(
            f"{rate}: p50/p95/p99 {fmt(load['p50_ms'])}/{fmt(load['p95_ms'])}/"
            f"{fmt(load['p99_ms'])} ms, CPU {fmt(load['cpu_percent_of_one_core'], 0)}%,"
            f" RSS {fmt(load['rss_mib'], 0)} MiB, p95 x{result['ratio_p95'][rate]:.2f}"
        )
    parts.append(f"baseline {base['target_rate_per_second']:g}/s: p95 {fmt(base['p95_ms'])} ms")
    return joined(parts)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 500.0])
    parser.add_argument("--baseline-rate", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--scale", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.people, tuple(args.rates), args.baseline_rate, args.duration, args.scale)
    )
    summary = summarise(result)
    write_result("latency", result, summary=summary, directory=directory)
    progress(f"latency: {summary}")
    return result


if __name__ == "__main__":
    main()
