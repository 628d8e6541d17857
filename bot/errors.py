"""The bot's own error types: what crosses a boundary is one of these, never an SDK exception."""

from __future__ import annotations

from typing import Final

# sysexits.h's "configuration error", the exit status of every ConfigError: a supervisor
# (systemd's RestartPreventExitStatus) can tell a start only a fix will cure from one worth
# retrying, such as a busy port or RingCentral out of reach (2).
EX_CONFIG: Final = 78


class BotError(Exception):
    """Base of every error the bot raises on purpose; its message is safe to log and show."""


class ConfigError(BotError):
    """The configuration is missing or malformed; the message names each variable and its source."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            # One problem, one line: it already says what is wrong and what to do.
            super().__init__(f"rcstatus cannot start: {self.problems[0]}")
            return
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"rcstatus cannot start; fix the configuration:\n{lines}")
