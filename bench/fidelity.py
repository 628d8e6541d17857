"""Fidelity benchmark: our scheduler vs a naive bridge vs the one-write-per-call bound, 3 seeds."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, joined, progress, write_result
from bench.fidelity_model import (
    Fidelity,
    Workload,
    generate_calls,
    run_ideal,
    run_naive,
    run_ours,
    run_virtual,
)

NO_HOLDS: dict[str, float] = {"call_debounce": 0.0, "gap_hold": 0.0}
BRIDGES = ("ours", "ours_no_holds", "naive", "bound")


def _figures(fidelity: Fidelity) -> dict[str, float]:
    return {
        "coverage": fidelity.coverage,
        "false_busy": fidelity.false_busy,
        "error_ratio": fidelity.error_ratio,
        "writes": float(fidelity.writes),
        "rate_limited_429": float(fidelity.refused),
    }


WORKLOADS = {
    "calls": "each call is a start and an end (the issue's workload as written)",
    "ringcentral": (
        "the same calls as RingCentral's presence feed reports them: a ring before each answered "
        "call (mean 6 s), one hold in 25% of calls of a minute or more (mean 30 s), and 0.5 "
        "unanswered 20 s rings per person-hour; assumed rates, not measured ones"
    ),
}


def run_seed(
    people: int, span: float, seed: int, *, ringing: bool = False
) -> dict[str, dict[str, float]]:
    workload = Workload(people=people, span=span, seed=seed, ringing=ringing)
    calls = generate_calls(workload)
    ours, _ = run_virtual(run_ours(workload, calls))
    no_holds, _ = run_virtual(run_ours(workload, calls, **NO_HOLDS))
    naive = run_virtual(run_naive(workload, calls))
    bound = run_ideal(workload, calls)
    figures = (ours, no_holds, naive, bound)
    return {name: _figures(fidelity) for name, fidelity in zip(BRIDGES, figures, strict=True)}


def _mean(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        bridge: {
            measure: round(statistics.fmean(run[bridge][measure] for run in runs), 4)
            for measure in runs[0][bridge]
        }
        for bridge in BRIDGES
    }


def run(
    sizes: tuple[int, ...] = (500, 2000), seeds: tuple[int, ...] = (1, 2, 3), span: float = 3600.0
) -> dict[str, Any]:
    workloads: dict[str, list[dict[str, Any]]] = {}
    for name in WORKLOADS:
        by_size = workloads[name] = []
        for people in sizes:
            runs = []
            for seed in seeds:
                progress(
                    f"fidelity: {name} workload, {people:,} people, seed {seed},"
                    f" {span:g} simulated seconds"
                )
                runs.append(run_seed(people, span, seed, ringing=name == "ringcentral"))
            mean = _mean(runs)
            by_size.append(
                {
                    "people": people,
                    "mean": mean,
                    "per_seed": dict(zip((str(s) for s in seeds), runs, strict=True)),
                    "ratio_error_ours_to_naive": round(
                        mean["ours"]["error_ratio"] / max(mean["naive"]["error_ratio"], 1e-4), 3
                    ),
                }
            )
    return {
        "model": "bench/fidelity_model.py (virtual time; real StatusScheduler, fake Slack)",
        "simulated_seconds": span,
        "seeds": list(seeds),
        "workloads": WORKLOADS,
        "bridges": {
            "ours": "StatusScheduler with its defaults (2 s call debounce, 2 s gap hold)",
            "ours_no_holds": "StatusScheduler with call_debounce=0 and gap_hold=0",
            "naive": (
                "one write per telephony event, in order, 429s waited out and retried; a ring "
                "or hang-up clears, connected or on hold shows the call"
            ),
            "bound": "oracle: one write per call expiring at its true end (not reachable)",
        },
        "results": workloads,
    }


def summarise(result: dict[str, Any]) -> str:
    """Per size: ours, then naive under each workload, then the bound (mean error ratio)."""
    calls, ringcentral = result["results"]["calls"], result["results"]["ringcentral"]
    parts = []
    for plain, rung in zip(calls, ringcentral, strict=True):
        ours, bound = plain["mean"]["ours"], plain["mean"]["bound"]
        naive_plain, naive_rung = plain["mean"]["naive"], rung["mean"]["naive"]
        parts.append(
            f"{plain['people']:,} people: error ratio ours {ours['error_ratio']:.3f}"
            f" ({ours['writes']:.0f} writes, {ours['rate_limited_429']:.0f} 429s),"
            f" naive {naive_plain['error_ratio']:.3f} on bare calls /"
            f" {naive_rung['error_ratio']:.3f} on RingCentral's events"
            f" ({naive_rung['rate_limited_429']:.0f} 429s), bound {bound['error_ratio']:.3f}"
        )
    return joined(parts)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity")
    parser.add_argument("--people", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--span", type=float, default=3600.0)
    args = parser.parse_args(argv)
    result = run(tuple(args.people), tuple(args.seeds), args.span)
    summary = summarise(result)
    write_result("fidelity", result, summary=summary, directory=directory)
    progress(f"fidelity: {summary}")
    return result


if __name__ == "__main__":
    main()
