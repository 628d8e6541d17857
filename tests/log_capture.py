"""Logging as the CLI sets it up, into a buffer, with the process's logging restored afterwards."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from bot.logs import SDK_LOGGERS, configure_logging


@contextlib.contextmanager
def cli_logging(level: str = "DEBUG", *, sdk_debug: bool = False) -> Iterator[io.StringIO]:
    """`configure_logging` exactly as `rcstatus-bot --log-level …` calls it, writing to a buffer.

    Everything it changes (the root's handlers and level, the record factory, the SDK loggers'
    levels) is put back, so pytest's own capture and later tests see logging as they left it.
    """
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    factory = logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    buffer = io.StringIO()
    try:
        configure_logging(level, sdk_debug=sdk_debug, stream=buffer)
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        logging.setLogRecordFactory(factory)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)
