"""Learned call-length distribution, and what it says about when a status write is worth making."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Final

_SHORTEST: Final = 1.0
"""Seconds at the first log-spaced grid point; shorter durations share the first bin."""
_HEAVY_TAIL: Final = 0.005
"""Share of the distribution spread log-uniformly over the grid, whatever was observed.

It keeps "how much longer?" sensible for a call far longer than anything seen so far, where a
pure histogram would have no data and a pure lognormal would answer "it ends any second"."""
_HORIZON_QUANTILES: Final = (0.5, 0.7, 0.85, 0.95)
"""The expirations a plan may choose, as quantiles of the remaining call, besides "open"."""
OPEN: Final = math.inf
"""A horizon that lasts until the call ends: the status is released by a write."""
PRICE_LEVELS: Final = (
    0.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0,
    192.0, 256.0, 384.0, 512.0, 768.0, 1024.0, 1536.0, 2048.0, 4096.0,
)  # fmt: skip
"""Write prices (status-seconds a write must buy) at which the plan is solved."""


@dataclass(frozen=True, slots=True)
class _Tables:
    """S(y) = P(duration > y) and I(y) = ∫₀ʸ S at the grid points."""

    survival: list[float]
    integral: list[float]
    negative_survival: list[float]
    """-S, ascending, for bisection when inverting S."""
    write_value: list[float]
    """Per grid point: `write_value` of a call of that age."""


@dataclass(frozen=True, slots=True)
class _Plan:
    choice: list[list[int]]
    """Per price level, per grid point: the horizon (index into _HORIZON_QUANTILES, or
    len(_HORIZON_QUANTILES) for OPEN) a write made at that price should use."""
    writes: list[list[float]]
    """Per price level, per grid point: the writes a call of that age still costs, following
    the plan at that price."""


class CallLengthModel:
    """A histogram of observed durations over a log-spaced grid, blended with a lognormal prior.

    It answers questions about the *remaining* duration R of a call that has already lasted e
    seconds, whose survival is S(e + t) / S(e): quantiles of R, E[min(R, h)], and what a status
    write is worth:

    - `write_value(e)`: call time covered minus ended-call time shown by the best single write
      (expiring at the median of R). Calls have heavy tails, so after its first minute or two a
      call's value grows with its age: it will probably last a good while longer.
    - `plan_horizon(e, price)` and `writes_per_call(price)`: for a scheduler that must make
      every write buy at least `price` status-seconds, the expiration a write should carry (a
      quantile of R, or `OPEN`: until the call ends, then a release) and the writes a call
      costs on average. Both come from a small dynamic program over the grid, solved at each of
      `PRICE_LEVELS`: its state is the call's age, its choices "wait" or "write with horizon
      h", its cost unshown call time + ended-call time shown + price * writes.

    Observations are weighted so that the last `half_life` of them count for half of what is
    learned (the mix of calls changes over a day); the prior counts as `prior_weight`
    observations, and is soon outweighed.
    """

    def __init__(
        self,
        *,
        prior_mean: float = 240.0,
        prior_sigma: float = 1.0,
        prior_weight: float = 20.0,
        half_life: float = 500.0,
        longest: float = 86_400.0,
        grid_points: int = 160,
    ) -> None:
        if prior_mean <= 0 or prior_sigma <= 0 or prior_weight <= 0:
            raise ValueError("the prior needs a positive mean, sigma and weight")
        if half_life <= 0 or longest <= _SHORTEST or grid_points < 8:
            raise ValueError("invalid grid or half-life")
        self._ratio_log = math.log(longest / _SHORTEST) / (grid_points - 1)
        self._grid = [0.0] + [_SHORTEST * math.exp(k * self._ratio_log) for k in range(grid_points)]
        mu = math.log(prior_mean) - prior_sigma**2 / 2
        prior_cdf = [_lognormal_cdf(y, mu, prior_sigma) for y in self._grid]
        # Bin k holds durations in (grid[k], grid[k + 1]]; the last bin also holds anything longer.
        self._counts = [
            prior_weight * (prior_cdf[k + 1] - prior_cdf[k]) for k in range(len(self._grid) - 1)
        ]
        self._counts[-1] += prior_weight * (1.0 - prior_cdf[-1])
        self._tail = [
            0.0 if k == 0 else 1.0 / (len(self._grid) - 2) for k in range(len(self._grid) - 1)
        ]
        self._increment = 1.0
        self._growth = 2.0 ** (1.0 / half_life)
        self._observations = 0
        self._since_tables = 0
        self._since_plan = 0
        self._tables: _Tables | None = None
        self._plan: _Plan | None = None
        self._owned = False

    # ------------------------------------------------------------------------ learning

    def observe(self, duration: float) -> None:
        """Learn from one finished call (seconds from connect to hang-up)."""
        if not math.isfinite(duration) or duration < 0:
            return
        self._counts[self._bin(duration)] += self._increment
        # Newer observations weigh more instead of older ones weighing less: same effect, O(1).
        self._increment *= self._growth
        if self._increment > 1e12:
            self._counts = [count / self._increment for count in self._counts]
            self._increment = 1.0
        self._observations += 1
        self._since_tables += 1
        self._since_plan += 1

    @property
    def observations(self) -> int:
        return self._observations

    # ------------------------------------------------------------------------ questions

    def survival(self, elapsed: float, remaining: float) -> float:
        """P(R > remaining) for a call that has lasted `elapsed`."""
        tables = self._current()
        elapsed = self._clamp(elapsed)
        base = self._survival_at(tables, elapsed)
        if base <= 0:
            return 1.0
        return min(1.0, self._survival_at(tables, elapsed + max(0.0, remaining)) / base)

    def remaining_quantile(self, elapsed: float, q: float) -> float:
        """The q-quantile of the remaining duration of a call that has lasted `elapsed`."""
        if not 0.0 < q < 1.0:
            raise ValueError("q must be strictly between 0 and 1")
        return self._quantile(self._current(), self._clamp(elapsed), q)

    def median_remaining(self, elapsed: float) -> float:
        return self.remaining_quantile(elapsed, 0.5)

    def covered(self, elapsed: float, horizon: float) -> float:
        """E[min(R, horizon)]: the call seconds a status expiring `horizon` from now covers."""
        tables = self._current()
        elapsed = self._clamp(elapsed)
        base = self._survival_at(tables, elapsed)
        if base <= 0 or horizon <= 0:
            return 0.0
        gained = self._integral_at(tables, elapsed + horizon) - self._integral_at(tables, elapsed)
        return min(horizon, gained / base)

    def write_value(self, elapsed: float) -> float:
        """What the best single write can buy for a call of this age, in status-seconds.

        The call time a status covers minus the time it shows a call that has ended, for the
        expiration that makes this largest: the median of the remaining call.
        """
        tables = self._current()
        k, fraction = self._locate(self._clamp(elapsed))
        values = tables.write_value
        return values[k] + (values[k + 1] - values[k]) * fraction

    def extension_value(self, elapsed: float, slack: float) -> float:
        """What moving an expiration `slack` seconds away out to the median buys (or 0)."""
        if slack <= 0:
            return self.write_value(elapsed)
        tables = self._current()
        elapsed = self._clamp(elapsed)
        if slack >= self._quantile(tables, elapsed, 0.5):
            return 0.0
        return max(0.0, self.write_value(elapsed) - self._net(tables, elapsed, slack))

    def plan_horizon(self, elapsed: float, price: float) -> float:
        """Seconds from now the status of a write made now at `price` should expire, or OPEN."""
        plan = self._current_plan()
        elapsed = self._clamp(elapsed)
        level = max(0, bisect_right(PRICE_LEVELS, price) - 1)
        k, fraction = self._locate(elapsed)
        choice = plan.choice[level][k + 1 if fraction >= 0.5 else k]
        if choice >= len(_HORIZON_QUANTILES):
            return OPEN
        return self._quantile(self._current(), elapsed, _HORIZON_QUANTILES[choice])

    def writes_per_call(self, price: float, age: float = 0.0) -> float:
        """The writes a call of `age` costs from now on when every write must buy `price`."""
        plan = self._current_plan()
        level = max(0, bisect_right(PRICE_LEVELS, price) - 1)
        k, fraction = self._locate(self._clamp(age))
        row = plan.writes[level]
        return row[k] + (row[k + 1] - row[k]) * fraction

    # ------------------------------------------------------------------------ internals

    def _bin(self, duration: float) -> int:
        if duration <= _SHORTEST:
            return 0
        k = 1 + int(math.log(duration / _SHORTEST) / self._ratio_log)
        return min(k, len(self._counts) - 1)

    def _clamp(self, elapsed: float) -> float:
        # Beyond the grid the model has nothing to say; answer as for the last bin.
        return min(max(0.0, elapsed), self._grid[-2])

    def _current(self) -> _Tables:
        # A rebuild is one pass over the grid: do it every few observations, more often while
        # little is known.
        if self._tables is None or self._since_tables >= min(32, 1 + self._observations // 20):
            self._tables = self._build_tables()
            self._since_tables = 0
        return self._tables

    def _current_plan(self) -> _Plan:
        if self._plan is None or (self._since_plan >= self._plan_due_after() and not self._owned):
            self._plan = self._build_plan(self._current())
            self._since_plan = 0
        return self._plan

    def _plan_due_after(self) -> int:
        # The plan costs a few dozen passes: solve it again after a quarter more observations,
        # and at least every 512 so that a drifting mix of calls is followed.
        return min(512, max(16, self._observations // 4))

    @property
    def plan_due(self) -> bool:
        """Enough was learnt since the plan was solved that it should be solved again."""
        return self._plan is not None and self._since_plan >= self._plan_due_after()

    def solve_in_steps(self) -> Iterator[None]:
        """Solve the plan again a little at a time, for an owner that runs other work between
        the steps (the scheduler: a whole solve holds its loop for about 20 ms). The old plan
        serves until the new one is installed, when the iteration ends. From the first call
        on, the model no longer solves a due plan on its own."""
        self._owned = True
        tables = self._current()
        learnt = self._since_plan
        plan = yield from self._solve_plan(tables)
        self._plan = plan
        self._since_plan -= learnt

    def _build_tables(self) -> _Tables:
        total = sum(self._counts)
        grid = self._grid
        survival = [0.0] * len(grid)
        above_count = total
        above_tail = 1.0
        for k in range(len(grid)):
            survival[k] = (1 - _HEAVY_TAIL) * above_count / total + _HEAVY_TAIL * above_tail
            if k < len(self._counts):
                above_count = max(0.0, above_count - self._counts[k])
                above_tail = max(0.0, above_tail - self._tail[k])
        survival[-1] = 0.0
        integral = [0.0] * len(grid)
        for k in range(1, len(grid)):
            integral[k] = (
                integral[k - 1] + (grid[k] - grid[k - 1]) * (survival[k] + survival[k - 1]) / 2
            )
        tables = _Tables(survival, integral, [-s for s in survival], [])
        for point in grid:
            age = self._clamp(point)
            median = self._quantile(tables, age, 0.5)
            tables.write_value.append(max(0.0, self._net(tables, age, median)))
        return tables

    def _net(self, tables: _Tables, elapsed: float, horizon: float) -> float:
        """2·E[min(R, h)] - h: call time covered minus ended-call time shown, expiring at h."""
        base = self._survival_at(tables, elapsed)
        if base <= 0 or horizon <= 0:
            return -max(0.0, horizon)
        gained = self._integral_at(tables, elapsed + horizon) - self._integral_at(tables, elapsed)
        return 2 * min(horizon, gained / base) - horizon

    def _build_plan(self, tables: _Tables) -> _Plan:
        """The plan solved in one go."""
        steps = self._solve_plan(tables)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                plan: _Plan = done.value
                return plan

    def _solve_plan(self, tables: _Tables) -> Generator[None, None, _Plan]:
        """Solve the wait-or-write program at every price level; see the class docstring.
        Yields between parts of the work (a few milliseconds each).

        J(e) is the expected cost from a call of age e that shows nothing of ours. Waiting one
        grid step costs the unshown time and leaves J(next age) if the call goes on. Writing
        with horizon h costs the price, then at the end min(price, time until expiry) (release
        or let it expire, whichever is cheaper), and J(e + h) if the call outlasts h. OPEN
        costs the price twice: the write and its release.
        """
        grid = self._grid
        last = len(grid) - 1
        open_choice = len(_HORIZON_QUANTILES)
        ages = [self._clamp(e) for e in grid]
        bases = [self._survival_at(tables, e) for e in ages]
        # What does not depend on the price: the wait step and each horizon's geometry.
        wait_unshown = [0.0] * len(grid)
        wait_survives = [0.0] * len(grid)
        options: list[list[tuple[int, float, float, float, int, float]]] = [[] for _ in grid]
        for k in range(last):
            if k % 32 == 31:
                yield
            e, base = ages[k], bases[k]
            if base <= 0:
                continue
            step = grid[k + 1] - grid[k]
            at_e = self._integral_at(tables, e)
            wait_unshown[k] = (self._integral_at(tables, e + step) - at_e) / base
            wait_survives[k] = self._survival_at(tables, e + step) / base
            for choice, q in enumerate(_HORIZON_QUANTILES):
                horizon = self._quantile(tables, e, q)
                if horizon <= 0:
                    continue
                outlasts = self._survival_at(tables, e + horizon) / base
                then_k, then_fraction = self._locate(e + horizon)
                options[k].append(
                    (choice, horizon, outlasts, self._integral_at(tables, e + horizon), then_k,
                     then_fraction)
                )  # fmt: skip
        choices: list[list[int]] = []
        writes_by_level: list[list[float]] = []
        for price in PRICE_LEVELS:
            yield
            cost = [0.0] * len(grid)
            cost[last] = price
            writes = [0.0] * len(grid)
            writes[last] = 1.0
            choice_row = [open_choice] * len(grid)
            for k in range(last - 1, -1, -1):
                e, base = ages[k], bases[k]
                if base <= 0:
                    cost[k], writes[k] = price, 1.0
                    continue
                wait = wait_unshown[k] + wait_survives[k] * cost[k + 1]
                best, best_choice, best_writes = 2 * price, open_choice, 2.0
                for choice, horizon, outlasts, at_end, then_k, then_fraction in options[k]:
                    start = max(0.0, horizon - price)
                    ended_shown = (horizon - start) - (
                        at_end - self._integral_at(tables, e + start)
                    ) / base
                    # The program runs from old to young ages, so only older ages are solved.
                    lower = max(then_k, k + 1)
                    upper = min(lower + 1, last)
                    weight = then_fraction if then_k > k else 0.0
                    later = cost[lower] + (cost[upper] - cost[lower]) * weight
                    total = price + ended_shown + outlasts * later
                    if total < best:
                        released = 1.0 - self._survival_at(tables, e + start) / base
                        later_writes = writes[lower] + (writes[upper] - writes[lower]) * weight
                        best, best_choice = total, choice
                        best_writes = 1.0 + (released if start > 0 else 0.0)
                        best_writes += outlasts * later_writes
                if wait < best:
                    cost[k], writes[k] = wait, wait_survives[k] * writes[k + 1]
                else:
                    cost[k], writes[k] = best, best_writes
                choice_row[k] = best_choice
            choices.append(choice_row)
            writes_by_level.append(writes)
        return _Plan(choices, writes_by_level)

    def _locate(self, y: float) -> tuple[int, float]:
        """Segment k with grid[k] <= y < grid[k + 1], and y's fraction along it."""
        grid = self._grid
        if y <= 0:
            return 0, 0.0
        if y < _SHORTEST:
            return 0, y / _SHORTEST
        if y >= grid[-1]:
            return len(grid) - 2, 1.0
        k = 1 + int(math.log(y / _SHORTEST) / self._ratio_log)
        k = min(max(k, 1), len(grid) - 2)
        # Floating point can put y a hair outside the computed segment.
        while k > 1 and y < grid[k]:
            k -= 1
        while k < len(grid) - 2 and y >= grid[k + 1]:
            k += 1
        return k, (y - grid[k]) / (grid[k + 1] - grid[k])

    def _survival_at(self, tables: _Tables, y: float) -> float:
        k, fraction = self._locate(y)
        s = tables.survival
        return s[k] + (s[k + 1] - s[k]) * fraction

    def _integral_at(self, tables: _Tables, y: float) -> float:
        if y >= self._grid[-1]:
            return tables.integral[-1]
        k, fraction = self._locate(y)
        s = tables.survival
        width = (self._grid[k + 1] - self._grid[k]) * fraction
        here = s[k] + (s[k + 1] - s[k]) * fraction
        return tables.integral[k] + width * (s[k] + here) / 2

    def _quantile(self, tables: _Tables, elapsed: float, q: float) -> float:
        base = self._survival_at(tables, elapsed)
        return max(0.0, self._inverse_survival(tables, (1.0 - q) * base) - elapsed)

    def _inverse_survival(self, tables: _Tables, target: float) -> float:
        """The duration y with S(y) = target (S is piecewise linear and non-increasing)."""
        s = tables.survival
        if target >= s[0]:
            return 0.0
        k = bisect_left(tables.negative_survival, -target)
        # s[k - 1] > target >= s[k]
        k = min(max(k, 1), len(s) - 1)
        upper, lower = s[k - 1], s[k]
        if upper == lower:
            return self._grid[k]
        fraction = (upper - target) / (upper - lower)
        return self._grid[k - 1] + (self._grid[k] - self._grid[k - 1]) * fraction


def _lognormal_cdf(y: float, mu: float, sigma: float) -> float:
    if y <= 0:
        return 0.0
    return 0.5 * math.erfc(-(math.log(y) - mu) / (sigma * math.sqrt(2)))
