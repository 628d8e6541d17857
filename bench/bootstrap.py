"""Bootstrap benchmark: requests and time until every presence is known, vs per-extension GETs."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    fmt,
    joined,
    pipeline_settings,
    progress,
    running_pipeline,
    write_result,
)
from bot.app import ringcentral_client
from bot.presence import PresenceBook
from bot.ringcentral.client import DEFAULT_LIMITS
from bot.ringcentral.directory import Directory
from bot.ringcentral.events import parse_presence_record
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator

PER_EXTENSION_PATH = "/restapi/v1.0/account/~/extension/{}/presence"


def floor_minutes(groups: dict[str, int]) -> float:
    """Real-service minutes the per-minute limits force: a group's first `limit` requests are free,
    each further `limit` costs one more window; the slowest group decides."""
    worst = 0
    for group, count in groups.items():
        limit = DEFAULT_LIMITS.get(group)  # type: ignore[call-overload]
        if limit and count > 0:
            worst = max(worst, math.ceil(count / limit) - 1)
    return float(worst)


async def measure_ours(people: int, scale: float) -> dict[str, Any]:
    progress(f"bootstrap: ours (account presence pages), {people:,} people, time scale {scale:g}")
    async with running_pipeline(people, scale=scale) as rig:
        stats = rig.sim.stats()
        known = rig.pipeline.roster.extensions_known
        wall = rig.settled_at - rig.started_at
    requests = sum(n for key, n in stats["requests"].items() if key.split()[1] != "/ws")
    groups = {g: n for g, n in stats["groups"].items() if n}
    return {
        "approach": (
            "PresencePipeline: login, extension list pages, subscription, presence pages; "
            "every extension linked, so the hub tells a consumer each person's change"
        ),
        "presences_known": known,
        "requests": requests,
        "requests_note": "REST requests; the WebSocket upgrade (GET /ws) is not counted",
        "requests_by_endpoint": stats["requests"],
        "requests_by_group": groups,
        "rate_limited_429": stats["rate_limited"],
        "wall_seconds_scaled": round(wall, 3),
        "rate_limit_floor_real_minutes": floor_minutes(groups),
    }


async def measure_per_extension(people: int, sample: int, scale: float) -> dict[str, Any]:
    """The article's approach: list extensions, then one presence GET per extension."""
    progress(f"bootstrap: baseline (one GET per extension), sample {sample:,} of {people:,}")
    time_scale = TimeScale(scale)
    async with RingCentralSimulator(build_company(people, seed=7), time_scale=time_scale) as sim:
        # The very client the pipeline builds from these settings.
        client = ringcentral_client(pipeline_settings(sim, time_scale))
        directory = Directory(client)
        book = PresenceBook()
        started = time.monotonic()
        await client.login()
        await directory.refresh()
        listed = time.monotonic()
        extension_ids = [extension.id for extension in directory][:sample]
        for index, extension_id in enumerate(extension_ids, 1):
            response = await client.get(PER_EXTENSION_PATH.format(extension_id))
            update = parse_presence_record(
                response.body, received_at=datetime.now(UTC), extension_id=extension_id
            )
            book.apply(update)
            if index % 100 == 0:
                progress(f"bootstrap: baseline {index:,}/{len(extension_ids):,}")
        finished = time.monotonic()
        total_extensions = len(directory)
        stats = sim.stats()
    sampled = len(extension_ids)
    per_request = (finished - listed) / sampled if sampled else math.nan
    extrapolated_wall = (listed - started) + per_request * total_extensions
    measured_groups = {g: n for g, n in stats["groups"].items() if n}
    full_groups = dict(measured_groups)
    full_groups["light"] = full_groups.get("light", 0) - sampled + total_extensions
    rest_requests = sum(n for key, n in stats["requests"].items() if key.split()[1] != "/ws")
    full_requests = rest_requests - sampled + total_extensions
    return {
        "approach": "one GET .../extension/{id}/presence per extension, same RingCentralClient",
        "extrapolated": sampled < total_extensions,
        "extrapolation": (
            f"measured {sampled} per-extension GETs after the directory listing, then scaled "
            f"the per-GET wall time and request count to all {total_extensions} extensions"
        ),
        "sample": sampled,
        "presences_known": total_extensions,
        "sample_presences_known": len(book),
        "requests": full_requests,
        "requests_by_group": full_groups,
        "measured_requests_by_group": measured_groups,
        "rate_limited_429": stats["rate_limited"],
        "measured_wall_seconds_scaled": round(finished - started, 3),
        "wall_seconds_scaled": round(extrapolated_wall, 3),
        "rate_limit_floor_real_minutes": floor_minutes(full_groups),
    }


async def run(people: int = 10_000, sample: int = 500, scale: float = 60.0) -> dict[str, Any]:
    ours = await measure_ours(people, scale)
    baseline = await measure_per_extension(people, sample, scale)
    return {
        "people": people,
        "time_scale": scale,
        "ours": ours,
        "baseline": baseline,
        "ratio_requests": round(ours["requests"] / baseline["requests"], 5),
        "ratio_wall": round(ours["wall_seconds_scaled"] / baseline["wall_seconds_scaled"], 5),
        "note": (
            "Wall times are measured with every RingCentral duration divided by the time scale; "
            "floors are in real-service minutes (limits per minute: "
            + ", ".join(f"{g} {n}" for g, n in DEFAULT_LIMITS.items())
            + ")."
        ),
    }


def summarise(result: dict[str, Any]) -> str:
    ours, base = result["ours"], result["baseline"]
    return joined(
        [
            f"{result['people']:,} people at scale {result['time_scale']:g}",
            f"requests {ours['requests']} vs {base['requests']:,}"
            f" (x{result['ratio_requests']:.4f})",
            f"wall {fmt(ours['wall_seconds_scaled'])} s vs {fmt(base['wall_seconds_scaled'])} s"
            f"{' (extrapolated)' if base['extrapolated'] else ''} (x{result['ratio_wall']:.3f})",
            f"rate-limit floor {ours['rate_limit_floor_real_minutes']:g} vs "
            f"{base['rate_limit_floor_real_minutes']:g} real minutes",
        ]
    )


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bootstrap")
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--scale", type=float, default=60.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.people, args.sample, args.scale))
    summary = summarise(result)
    write_result("bootstrap", result, summary=summary, directory=directory)
    progress(f"bootstrap: {summary}")
    return result


if __name__ == "__main__":
    main()
