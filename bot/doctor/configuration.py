"""The configuration check: settings that cannot be read, and settings `run` needs but lacks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bot.config import Settings
from bot.doctor.report import Finding, Section
from bot.errors import ConfigError

SECTION = "Configuration"


def read_settings(
    env_file: Path | None, environ: Mapping[str, str] | None
) -> tuple[Settings | None, list[Finding]]:
    """The settings as `run` reads them, and what is wrong with reading them; None if unreadable."""
    section = Section(SECTION)
    if env_file is not None and not _is_file(env_file):
        section.warning(
            f"there is no settings file at {env_file}; only the environment is read",
            "copy .env.example to .env and fill it in, or pass --env-file PATH",
        )
    try:
        settings = Settings.from_env(environ, env_file=env_file)
    except ConfigError as exc:
        _report(section, exc.problems)
        section.skipped("nothing else was checked: the settings could not be read")
        return None, section.findings
    return settings, section.findings


def _is_file(path: Path) -> bool:
    return path.is_file()


def _report(section: Section, problems: list[str]) -> None:
    """Each problem as a finding: what is wrong, then (after the first '; ') its fix."""
    for problem in problems:
        what, _, fix = problem.partition("; ")
        section.error(what, fix.removesuffix("."))


def check_configuration(settings: Settings) -> list[Finding]:
    """The mode the settings select, and each setting `run` needs that is missing or unusable."""
    section = Section(SECTION)
    problems = settings.missing_for_run()
    _report(section, problems)
    if not problems:
        mode = (
            "Socket Mode (SLACK_APP_TOKEN is set)"
            if settings.socket_mode
            else "HTTP mode (SLACK_APP_TOKEN is empty)"
        )
        section.ok(f"every setting the bot needs is present: {mode}")
    return section.findings
