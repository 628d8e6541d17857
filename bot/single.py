"""One `run` per SQLite file: a second process on the same file is refused, naming PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bot.errors import BotError
from bot.store.engine import parse_url


class AlreadyRunning(BotError):
    """Another process runs the bot on this SQLite file."""


@contextlib.contextmanager
def single_process_lock(database_url: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite file for as long as the bot runs.

    SQLite has no leader lease: two bots on one file would both subscribe and both write every
    status. The kernel drops the lock when the process dies, however it dies, so a crash never
    leaves the file locked. PostgreSQL (and an in-memory database) need no lock here.
    """
    url = parse_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    if database.startswith("file:"):
        yield
        return
    path = Path(database).expanduser().resolve()
    lock_path = path.with_name(path.name + ".lock")
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"rcstatus-bot is already running on the SQLite file {path} (process {holder}); "
                "SQLite serves one bot at a time: stop the other, or point DATABASE_URL at "
                "PostgreSQL to run several replicas (README, 'Run several replicas')"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
