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


def run_seed(people: int, span: float, seed: int) -> dict[str, dict[str, float]]:
    workload = Workload(people=people, span=span, seed=seed)
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
    by_size = []
    for people in sizes:
        runs = []
        for seed in seeds:
            progress(f"fidelity: {people:,} people, seed {seed}, {span:g} simulated seconds")
            runs.append(run_seed(people, span, seed))
        mean = _mean(runs)
        by_size.append(
            {
                "people": people,
                "mean": mean,
                "per_seed": dict(zip((str(s) for s in seeds), runs, strict=True)),
                "ratio_error_ours_to_naive": round(
                    mean["ours"]["error_ratio"] / mean["naive"]["error_ratio"], 3
                ),
            }
        )
    return {
        "model": "bench/fidelity_model.py (virtual time; real StatusScheduler, fake Slack)",
        "simulated_seconds": span,
        "seeds": list(seeds),
        "bridges": {
            "ours": "StatusScheduler with its defaults (2 s call debounce, 2 s gap hold)",
            "ours_no_holds": "StatusScheduler with call_debounce=0 and gap_hold=0",
            "naive": "one write per call start/end, in order, 429s waited out and retried",
            "bound": "oracle: one write per call expiring at its true end (not reachable)",
        },
        "sizes": by_size,
    }


def summarise(result: dict[str, Any]) -> str:
    parts = []
    for size in result["sizes"]:
        mean = size["mean"]
        errors = "/".join(f"{mean[b]['error_ratio']:.3f}" for b in BRIDGES)
        writes = "/".join(f"{mean[b]['writes']:.0f}" for b in BRIDGES)
        parts.append(
            f"{size['people']:,} people: error ours/no-holds/naive/bound {errors}, "
            f"writes {writes}, error x{size['ratio_error_ours_to_naive']:.2f} of naive"
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
