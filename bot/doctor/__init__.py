"""`rcstatus-bot doctor`: checks a configuration against the services and says how to fix it."""

from bot.doctor.checkup import diagnose, diagnose_environment
from bot.doctor.people import Coverage, coverage
from bot.doctor.report import Finding, Report, Severity, render

__all__ = [
    "Coverage",
    "Finding",
    "Report",
    "Severity",
    "coverage",
    "diagnose",
    "diagnose_environment",
    "render",
]
