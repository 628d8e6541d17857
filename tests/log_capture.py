"""Logging as the CLI sets it up, into a buffer, with the process's logging restored afterwards."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from bot.logs import SDK_LOGGERS, configure_logging


@contextlib.contextmanager
def cli_logging(
    level: str = "DEBUG", *, sdk_debug: bool = False, log_format: str = "text"
) -> Iterator[io.StringIO]:
    """`configure_logging` exactly as `rcstatus-bot --log-level …` calls it (with LOG_FORMAT),
    writing to a buffer.

    Everything it changes (the root's handlers and level, the record factory, the SDK loggers'
    levels) is put back, so pytest's own capture and later tests see logging as they left it.
    """
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    factory = logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    buffer = io.StringIO()
    try:
        configure_logging(level, sdk_debug=sdk_debug, stream=buffer, log_format=log_format)
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        logging.setLogRecordFactory(factory)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


class LogRecords(logging.Handler):
    """Every record at INFO and above, formatted as the bot's own handler would."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "".join(self.format(record) + "\n" for record in self.records)

    def ignored(self, what: str) -> int:
        """How many 'ignored a …' lines (bot/slack/payload.py) name `what`."""
        return sum(1 for r in self.records if r.getMessage().startswith(f"ignored a {what}"))


@contextlib.contextmanager
def every_log_record() -> Iterator[LogRecords]:
    """What any logger says at INFO and above while the block runs."""
    root = logging.getLogger()
    handler = LogRecords()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
