"""`rcstatus-bot doctor`: checks a configuration against the services and says how to fix it."""

from bot.doctor.slack import (
    Coverage,
    Finding,
    Report,
    Severity,
    coverage,
    diagnose,
    diagnose_environment,
    render,
)

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
