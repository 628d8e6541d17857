"""Console entry point: hands the command line to the CLI and returns its exit status."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from bot.cli import run_cli

        return run_cli(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        # Ctrl-C before the command installed its own handler (while importing, say).
        return 130


if __name__ == "__main__":
    sys.exit(main())
