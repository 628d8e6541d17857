"""`python -m bench` (`make bench`): run every benchmark and write bench/results/."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import bootstrap, burst, fidelity, latency, memory
from bench.common import RESULTS_DIR, progress

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "bootstrap": bootstrap.main,
    "latency": latency.main,
    "burst": burst.main,
    "fidelity": fidelity.main,
    "memory": memory.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    failed = []
    started = time.monotonic()
    for name in names:
        began = time.monotonic()
        progress(f"== {name}")
        try:
            # Each benchmark's own defaults are the published sizes; no flags pass through.
            BENCHMARKS[name]([])
        except Exception:
            # One broken benchmark must not cost the others their results.
            traceback.print_exc()
            failed.append(name)
        progress(f"== {name} took {time.monotonic() - began:.0f} s")
    progress(f"all done in {time.monotonic() - started:.0f} s; table in {RESULTS_DIR}/README.md")
    if failed:
        progress(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
