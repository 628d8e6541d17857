"""Runs every check in its order and adds their findings up to one report."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from bot.config import Settings
from bot.doctor.configuration import check_configuration, read_settings
from bot.doctor.database import check_database
from bot.doctor.people import check_people
from bot.doctor.public_url import check_public_url
from bot.doctor.report import Report
from bot.doctor.ringcentral import build_client, check_ringcentral
from bot.doctor.slack import check_slack


async def diagnose_environment(
    env_file: Path | None = Path(".env"), environ: Mapping[str, str] | None = None
) -> Report:
    """Read the settings the way `run` does, then diagnose them; bad settings are findings too."""
    source = "the environment" if env_file is None else f"{env_file} and the environment"
    settings, reading = read_settings(env_file, environ)
    if settings is None:
        return Report(tuple(reading), source)
    report = await diagnose(settings, source=source)
    return Report(tuple(reading) + report.findings, source)


async def diagnose(settings: Settings, *, source: str = "the given settings") -> Report:
    """Every check, in order; the services, the public address and the database side by side."""
    configuration = check_configuration(settings)
    # A check that crashes takes the others down with it, awaited, rather than leaving them behind.
    async with asyncio.TaskGroup() as checks:
        ringcentral_check = checks.create_task(check_ringcentral(settings, build_client(settings)))
        slack_check = checks.create_task(check_slack(settings))
        public_url_check = checks.create_task(check_public_url(settings))
        database_check = checks.create_task(check_database(settings))
    ringcentral, slack, public_url, database = (
        ringcentral_check.result(),
        slack_check.result(),
        public_url_check.result(),
        database_check.result(),
    )
    people = check_people(
        settings,
        extensions=ringcentral.extensions,
        people=slack.people,
        team_id=slack.team_id,
        state=database.state,
    )
    findings = [
        *configuration,
        *ringcentral.section.findings,
        *slack.section.findings,
        *public_url,
        *database.section.findings,
        *people,
    ]
    return Report(tuple(findings), source)
