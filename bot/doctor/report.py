"""The doctor's findings and report, the sections checks fill in, and the report as text."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

Severity = Literal["ok", "warning", "error", "skipped"]

SYMBOLS: Final[Mapping[Severity, str]] = {"ok": "✓", "warning": "!", "error": "✗", "skipped": "-"}
WIDTH: Final = 80
NAMED_AT_MOST: Final = 5
_GLUE: Final = "\x00"


@dataclass(frozen=True, slots=True)
class Finding:
    """One outcome of one check: what was found and, when something is wrong, how to fix it."""

    section: str
    severity: Severity
    what: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "severity": self.severity,
            "what": self.what,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding in the order the checks ran, and the verdict they add up to."""

    findings: tuple[Finding, ...]
    source: str

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    @property
    def exit_code(self) -> int:
        """1 when the bot cannot work; warnings alone do not fail."""
        return 1 if self.errors else 0

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def as_json(self) -> str:
        return json.dumps(
            {
                "ok": self.exit_code == 0,
                "errors": self.errors,
                "warnings": self.warnings,
                "source": self.source,
                "findings": [f.as_dict() for f in self.findings],
            },
            ensure_ascii=False,
            indent=2,
        )


class Section:
    """Collects one section's findings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.findings: list[Finding] = []

    def ok(self, what: str) -> None:
        self._add(Finding(self.name, "ok", what))

    def warning(self, what: str, fix: str) -> None:
        self._add(Finding(self.name, "warning", what, fix))

    def error(self, what: str, fix: str) -> None:
        self._add(Finding(self.name, "error", what, fix))

    def skipped(self, what: str) -> None:
        self._add(Finding(self.name, "skipped", what))

    def _add(self, finding: Finding) -> None:
        # Several checks can hit the same root cause (a wrong URL); it is reported once.
        if finding not in self.findings:
            self.findings.append(finding)


def names(items: Iterable[str]) -> str:
    """At most a few, then how many more: a report names examples, not the whole company."""
    listed = list(items)
    shown = ", ".join(listed[:NAMED_AT_MOST])
    more = len(listed) - NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


def count(number: int, singular: str, plural: str | None = None) -> str:
    """The number and its noun, singular or plural to match: "1 warning", "2 warnings"."""
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"


def render(report: Report, width: int = WIDTH) -> str:
    """The report for a terminal: sections, one symbol per finding, its fix, a verdict."""
    lines = _wrap(f"rcstatus doctor: settings from {report.source}", "", width)
    current = None
    for finding in report.findings:
        if finding.section != current:
            current = finding.section
            lines += ["", current]
        symbol = SYMBOLS[finding.severity]
        lines += _wrap(finding.what, f"  {symbol} ", width)
        if finding.fix and finding.severity in ("warning", "error"):
            lines += _wrap(finding.fix, "      fix: ", width)
    lines += ["", _verdict(report)]
    return "\n".join(lines) + "\n"


def _wrap(text: str, lead: str, width: int) -> list[str]:
    """Wrapped under its lead; a `command` is never split, so it can be copied whole. Only a word
    longer than a whole line (a deep file path) is cut, to keep to the width."""
    glued = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", _GLUE), text)
    lines = textwrap.wrap(
        glued,
        width=width,
        initial_indent=lead,
        subsequent_indent=" " * len(lead),
        break_long_words=True,
        break_on_hyphens=False,
    )
    return [line.replace(_GLUE, " ") for line in lines] or [lead.rstrip()]


def _verdict(report: Report) -> str:
    warnings = count(report.warnings, "warning")
    if report.errors:
        return (
            f"✗ {count(report.errors, 'error')}, {warnings}: "
            "rcstatus cannot work until the errors are fixed."
        )
    return f"✓ no errors, {warnings}: rcstatus can work."
