"""Runs the bot's long-lived tasks: restarts a crashed one with backoff, stops them all at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.store.fence import LeadershipLost

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class TaskHealth:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    started_at: float = 0.0


@dataclass(slots=True)
class _Supervised:
    name: str
    factory: TaskFactory
    stop: Callable[[], Awaitable[None]] | None
    health: TaskHealth
    task: asyncio.Task[None] | None = None
    crashes: list[float] = field(default_factory=list)


class Supervisor:
    """Owns every background task. A task that returns is done; one that raises is restarted."""

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        healthy_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._healthy_after = healthy_after
        self._clock = clock
        self._tasks: dict[str, _Supervised] = {}
        self._stopping = asyncio.Event()

    def start(
        self,
        name: str,
        factory: TaskFactory,
        *,
        stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run `factory()` under supervision; `stop` asks it to finish before it is cancelled."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        entry = _Supervised(name, factory, stop, TaskHealth(name))
        entry.task = asyncio.create_task(self._keep_running(entry), name=f"supervised:{name}")
        self._tasks[name] = entry

    def health(self) -> dict[str, TaskHealth]:
        return {name: entry.health for name, entry in self._tasks.items()}

    async def _keep_running(self, entry: _Supervised) -> None:
        failures = 0
        while not self._stopping.is_set():
            entry.health.running = True
            entry.health.started_at = self._clock()
            try:
                await entry.factory()
                entry.health.running = False
                return
            except asyncio.CancelledError:
                entry.health.running = False
                raise
            except LeadershipLost as exc:
                # Not a crash: the replica is stepping down, and this task must not run again.
                entry.health.running = False
                log.info("task %s stopped: %s", entry.name, exc)
                return
            except Exception as exc:
                entry.health.running = False
                entry.health.restarts += 1
                entry.health.last_error = f"{type(exc).__name__}: {exc}"
                ran_for = self._clock() - entry.health.started_at
                failures = 1 if ran_for > self._healthy_after else failures + 1
                delay = min(self._backoff_cap, self._backoff_base * 2.0 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)
                log.exception("task %s crashed; restarting in %.1fs", entry.name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self, grace: float = 5.0) -> None:
        """Ask every task to stop, cancel what is still running, and await them all."""
        self._stopping.set()
        entries = list(self._tasks.values())
        polite = [entry.stop() for entry in entries if entry.stop is not None]
        if polite:
            results = await asyncio.gather(*polite, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("a task's stop hook failed: %s", result)
        # Tasks with a stop hook get the grace period to finish; the rest are cancelled now.
        polite_tasks = [e.task for e in entries if e.task is not None and e.stop is not None]
        for entry in entries:
            if entry.task is not None and entry.stop is None:
                entry.task.cancel()
        if polite_tasks:
            _done, pending = await asyncio.wait(polite_tasks, timeout=grace / 2)
            for task in pending:
                task.cancel()
        tasks = [entry.task for entry in entries if entry.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace / 2)
        for entry in entries:
            finished = entry.task
            if finished is None or not finished.done() or finished.cancelled():
                continue
            error = finished.exception()
            if error is not None:
                log.warning("task %s ended with %s", entry.name, error)
