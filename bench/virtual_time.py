"""An event loop whose clock jumps to the next timer, but never while a database call is running.

Jumping whenever the loop has nothing ready is wrong for code that awaits aiosqlite: its worker
thread is busy, the loop looks idle, and a 2 s debounce would pass in the middle of a
one-millisecond query. This loop keeps every future whose result another thread will post
(aiosqlite's calls and `run_in_executor`'s) and advances only while none of them is pending, so
the fidelity model, and tests of the real store in virtual time, see the order of events a fast
machine would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
import sys
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

_THREAD_POSTED_BY = ("aiosqlite", "sqlalchemy.dialects.sqlite.aiosqlite")
"""Modules whose futures are completed from aiosqlite's thread (SQLAlchemy's adapter hands that
thread work of its own, to set the isolation level)."""
_OUTSIDE_LIMIT = 10.0
"""Real seconds a thread may take before the loop gives up on it."""


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0


class _Selector(selectors.BaseSelector):
    def __init__(self, clock: _Clock, outside: weakref.WeakSet[asyncio.Future[Any]]) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._outside = outside

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if any(not future.done() for future in self._outside):
            # A thread is working for us: wait, in real time, for it to post its result.
            ready = self._real.select(_OUTSIDE_LIMIT)
            if not ready:
                raise RuntimeError(f"a worker thread took more than {_OUTSIDE_LIMIT} s")
            return ready
        if timeout is None:
            raise RuntimeError(
                "virtual time stalled: every task waits and no timer is set\n" + _waits()
            )
        self._clock.now += max(0.0, timeout)
        return []

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


def _waits() -> str:
    """Where each task waits, for a stall's message."""
    lines = []
    for task in asyncio.all_tasks():
        awaiting: Any = task.get_coro()
        where = "?"
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            if frame is not None:
                where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
        lines.append(f"task {task.get_name()} waits at {where}")
    return "\n".join(lines)


class ThreadAwareVirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _Clock()
        self._outside: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()
        super().__init__(selector=_Selector(self._virtual, self._outside))

    def time(self) -> float:
        return self._virtual.now

    def create_future(self) -> asyncio.Future[Any]:
        future = super().create_future()
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith(_THREAD_POSTED_BY):
            self._outside.add(future)
        return future

    def run_in_executor(  # type: ignore[override]
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[..., _T],
        *args: Any,
    ) -> asyncio.Future[_T]:
        future = super().run_in_executor(executor, func, *args)
        self._outside.add(future)
        return future


def run_in_virtual_time(main: Coroutine[Any, Any, _T]) -> _T:
    """Run `main` on a fresh thread-aware virtual loop, then close everything it left."""
    loop = ThreadAwareVirtualLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
