"""Fencing of the leader's writes: the term a task leads under, and the check its transactions make.

A context variable carries the term because the same store serves the leader's tasks and
every replica's request handlers (which are not fenced: they act for a person, not as the
leader), and tasks inherit it from the task that started them. `bot/leader.py` explains the
lease this fences.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.records import StoreError

LEASE_NAME: Final = "leader"


@dataclass(frozen=True, slots=True)
class Term:
    """One replica's time as leader."""

    epoch: int
    since: datetime
    holder: str


class LeadershipLost(StoreError):
    """This replica no longer holds the lease (or is no longer sure it does): stop leading."""


class LeaseCheck(Protocol):
    def check(self) -> None:
        """Raise LeadershipLost unless this replica is sure it still leads."""
        ...


_LEADING: contextvars.ContextVar[tuple[Term, LeaseCheck] | None] = contextvars.ContextVar(
    "rcstatus_leading", default=None
)


def current_term() -> Term | None:
    """The term the running task leads under, or None outside the leader's tasks."""
    leading = _LEADING.get()
    return leading[0] if leading is not None else None


@contextlib.contextmanager
def fenced(term: Term, lease: LeaseCheck) -> Iterator[None]:
    """Run the block, and every task it starts, as the leader of `term` under `lease`."""
    token = _LEADING.set((term, lease))
    try:
        yield
    finally:
        _LEADING.reset(token)


def ensure_leading() -> None:
    """Before a write the receiver cannot fence (Slack, a webhook receiver, RingCentral): refuse
    it once the lease is no longer certain. Does nothing outside the leader's tasks, and in a
    single process, which leads without a lease."""
    leading = _LEADING.get()
    if leading is not None:
        leading[1].check()


async def check_fence(conn: AsyncConnection) -> None:
    """Refuse this transaction if the running task leads under an epoch no longer current.

    The key-share lock on the lease row lasts until the transaction ends, so a takeover (which
    locks the row FOR UPDATE) waits for it: a write that passed this check lands before the
    next epoch begins. A renewal does not wait for it (see bot/leader.py)."""
    term = current_term()
    if term is None or conn.dialect.name != "postgresql":
        return
    epoch = (
        await conn.execute(
            text("SELECT epoch FROM rcstatus_leader_lease WHERE name = :name FOR KEY SHARE"),
            {"name": LEASE_NAME},
        )
    ).scalar_one_or_none()
    if epoch != term.epoch:
        raise LeadershipLost(f"refused a write of epoch {term.epoch}: epoch {epoch} leads now")
