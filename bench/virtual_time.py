"""An event loop whose clock jumps to the next timer, but never while a database call is running.

Jumping whenever the loop has nothing ready is wrong for code that awaits aiosqlite: its worker
thread is busy, the loop looks idle, and a 2 s debounce would pass in the middle of a
one-millisecond query. This loop advances only when every worker thread (aiosqlite's and the
default executor's) is waiting for work, so the fidelity model, and tests of the real store in
virtual time, see the order of events a fast machine would.
"""

from __future__ import annotations

import asyncio
import linecache
import selectors
import sys
import threading
import time
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

_T = TypeVar("_T")

_WORKER_LOOPS = frozenset({"_connection_worker_thread", "_worker"})
"""aiosqlite's per-connection thread and concurrent.futures' pool thread: idle in a `.get(`."""
_BUSY_LIMIT = 10.0


def _is_worker(frame: FrameType) -> bool:
    """Whether this thread runs one of the worker loops (judged by its Thread's target)."""
    while frame.f_back is not None:
        frame = frame.f_back
    thread = frame.f_locals.get("self")
    target = getattr(thread, "_target", None)
    return getattr(target, "__name__", None) in _WORKER_LOOPS


def _worker_busy(frame: FrameType) -> bool:
    if not _is_worker(frame):
        return False  # not a thread the loop waits for
    if frame.f_code.co_name not in _WORKER_LOOPS:
        return True  # starting, or running a work item's Python code
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    if ".get(" not in line:
        return True  # running a work item written in C (sqlite3)
    # Waiting in get(), but work may already be queued that it has not taken yet.
    queue = frame.f_locals.get("tx") or frame.f_locals.get("work_queue")
    return queue is not None and not queue.empty()


def _workers_busy() -> bool:
    me = threading.get_ident()
    return any(_worker_busy(frame) for ident, frame in sys._current_frames().items() if ident != me)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0


class _Selector(selectors.BaseSelector):
    def __init__(self, clock: _Clock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

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
        give_up = time.monotonic() + _BUSY_LIMIT
        while _workers_busy():
            ready = self._real.select(0.001)
            if ready:
                return ready
            if time.monotonic() > give_up:
                raise RuntimeError(f"a worker thread stayed busy for {_BUSY_LIMIT} s")
        # A worker posts its result before it waits again: look once more before jumping.
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time stalled: every task waits and no timer is set")
        self._clock.now += max(0.0, timeout)
        return []

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class ThreadAwareVirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(selector=_Selector(self._virtual))

    def time(self) -> float:
        return self._virtual.now


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
