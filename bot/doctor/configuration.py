"""The configuration check: settings that cannot be read, and settings `run` needs but lacks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
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
        for problem in exc.problems:
            what, _, source_text = problem.partition("; it comes from ")
            section.error(what, f"copy it from {source_text.rstrip('.')}" if source_text else "")
        section.skipped("nothing else was checked: the settings could not be read")
        return None, section.findings
    return settings, section.findings


def _is_file(path: Path) -> bool:
    return path.is_file()


def check_configuration(settings: Settings) -> list[Finding]:
    """Each setting the bot needs to run that is not set, with where to copy it from."""
    section = Section(SECTION)
    missing = {problem.split(" ", 1)[0] for problem in settings.missing_for_run()}
    for spec in fields(Settings):
        name = spec.metadata["env"]
        if name in missing:
            section.error(f"{name} is not set", f"copy it from {spec.metadata['source']}")
    if not missing:
        mode = "Socket Mode" if settings.socket_mode else "HTTP mode"
        section.ok(f"every setting the bot needs is present ({mode})")
    return section.findings
