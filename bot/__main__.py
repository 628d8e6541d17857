"""Console entry point: hands the command line to the CLI and returns its exit status."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from bot.cli import run_cli
        from bot.logs import log_uncaught

        # Only for the process itself (never a test calling run_cli): a crash is a log record.
        sys.excepthook = log_uncaught

        return run_cli(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        # Ctrl-C before the command installed its own handler (while importing, say).
        return 130


if __name__ == "__main__":
    sys.exit(main())
