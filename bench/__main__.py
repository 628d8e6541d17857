"""`python -m bench` (`make bench`): run every benchmark and write bench/results/.

Each benchmark runs in a fresh interpreter (`python -m bench.<name>`, its own defaults): memory an
earlier benchmark allocated and freed stays in this process's arenas, and the latency benchmark
reports the RSS of the process it runs in as the bot's."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import RESULTS_DIR, progress

BENCHMARKS = (
    "bootstrap",
    "latency",
    "intake",
    "burst",
    "fidelity",
    "memory",
    "webhooks",
    "failover",
)


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
        # Each benchmark's own defaults are the published sizes; no flags pass through. One
        # broken benchmark must not cost the others their results.
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)  # noqa: S603
        if done.returncode != 0:
            failed.append(name)
        progress(f"== {name} took {time.monotonic() - began:.0f} s")
    progress(f"all done in {time.monotonic() - started:.0f} s; table in {RESULTS_DIR}/README.md")
    if failed:
        progress(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
