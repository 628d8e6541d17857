"""`rcstatus-bot doctor` against both simulators: each misconfiguration named with its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from slack_sdk.oauth.installation_store import Installation

from bot.cli import simulator_env, write_env_file
from bot.config import Settings, describe_settings
from bot.doctor import Finding, Report, diagnose, diagnose_environment, render
from bot.doctor.public_url import check_public_url
from bot.sim.company import Company, Person, build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.ringcentral.auth import APP_PERMISSIONS
from bot.sim.slack import SlackSimulator
from bot.sim.slack.state import DEFAULT_BOT_SCOPES
from bot.store import Store
from tests.integration import bot_harness
from tests.sim.rc_support import GatewayClient, Rest

MANIFEST_BOT_SCOPES = tuple(sorted(DEFAULT_BOT_SCOPES))
SUBPROCESS_DEADLINE = 60.0
REPO = Path(__file__).parents[2]


@dataclass
class Setup:
    company: Company
    rc: RingCentralSimulator
    slack: SlackSimulator
    database: Path

    def env(self, **overrides: str) -> dict[str, str]:
        env = simulator_env(
            self.rc, self.slack, app_url="http://127.0.0.1:3999", time_scale=TimeScale(60)
        )
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{self.database}"
        env.update(overrides)
        return {key: value for key, value in env.items() if value}

    async def diagnose(self, **overrides: str) -> Report:
        return await diagnose(Settings.from_env(self.env(**overrides), env_file=None))

    def secrets(self) -> set[str]:
        return {
            *self.rc.issued_secrets(),
            self.rc.client_id,
            self.slack.bot_token,
            self.slack.app_token,
            self.slack.signing_secret,
            self.slack.client_secret,
        }

    def slack_only(self) -> list[Person]:
        return [p for p in self.company.people if p.slack_id and p.extension_id is None]

    def ringcentral_only(self) -> list[Person]:
        return [
            p
            for p in self.company.people
            if p.slack_id is None and p.extension_id and p.extension_status == "Enabled"
        ]

    def linked(self) -> list[Person]:
        return [
            p
            for p in self.company.people
            if p.slack_id and p.extension_id and p.extension_status == "Enabled"
        ]


@contextlib.asynccontextmanager
async def simulators(
    tmp_path: Path,
    *,
    company: Company | None = None,
    app_permissions: Collection[str] = APP_PERMISSIONS,
    bot_scopes: Collection[str] = MANIFEST_BOT_SCOPES,
) -> AsyncIterator[Setup]:
    company = company or build_company(12, seed=3)
    scale = TimeScale(60)
    rc = RingCentralSimulator(company, time_scale=scale, app_permissions=app_permissions)
    slack = SlackSimulator(company, time_scale=scale, bot_scopes=bot_scopes)
    await rc.start()
    await slack.start()
    try:
        yield Setup(company, rc, slack, tmp_path / "rcstatus.db")
    finally:
        await slack.stop()
        await rc.stop()


def only(report: Report, section: str, severity: str, containing: str) -> Finding:
    """The one finding of that section and severity whose text names `containing`."""
    found = [
        f
        for f in report.findings
        if f.section == section and f.severity == severity and containing in f.what
    ]
    assert len(found) == 1, render(report)
    return found[0]


def assert_presentable(report: Report, setup: Setup) -> str:
    """The printed report fits 80 columns and shows no credential."""
    text = render(report)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    leaked = [secret for secret in setup.secrets() if secret and secret in text]
    assert leaked == [], text
    assert all(secret not in report.as_json() for secret in setup.secrets())
    return text


async def run_cli(env_file: Path, *arguments: str) -> tuple[int, str, str]:
    """`python -m bot doctor` as an operator runs it, while the simulators keep serving."""
    settings = {variable for variable, _, _ in describe_settings()}
    clean_env = {k: v for k, v in os.environ.items() if k not in settings}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "doctor", "--env-file", str(env_file), *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=env_file.parent,
        env={**clean_env, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), SUBPROCESS_DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# ------------------------------------------------------------------------------- healthy


async def test_a_healthy_setup_passes_with_every_check_green(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose()
        text = assert_presentable(report, setup)

    assert report.exit_code == 0, text
    assert report.of("error") == []
    assert report.of("skipped") == []
    ringcentral = [f.what for f in report.findings if f.section == "RingCentral"]
    assert ringcentral[0].startswith("logged in to ")
    assert any(w.startswith("Read Accounts:") for w in ringcentral)
    assert any(w.startswith("Read Presence:") for w in ringcentral)
    assert any(w.startswith("WebSocket Subscriptions:") for w in ringcentral)
    slack = [f.what for f in report.findings if f.section == "Slack"]
    assert any("SLACK_BOT_TOKEN works" in w for w in slack)
    assert "the bot token has all 4 scopes the bot needs" in slack
    assert "Socket Mode: SLACK_APP_TOKEN opens a connection" in slack
    assert any("Slack accepted SLACK_CLIENT_ID and SLACK_CLIENT_SECRET" in w for w in slack)
    linked = only(report, "People", "ok", "linked to a RingCentral extension")
    slack_people = len(setup.linked()) + len(setup.slack_only())
    assert linked.what.startswith(f"{len(setup.linked())} of {slack_people} Slack people")
    assert text.rstrip().endswith("rcstatus can work.")


async def test_the_command_line_exits_0_on_a_healthy_setup_and_speaks_json(
    tmp_path: Path,
) -> None:
    async with simulators(tmp_path) as setup:
        env_file = tmp_path / "sim.env"
        write_env_file(env_file, setup.env())
        code, out, err = await run_cli(env_file, "--json")

    assert code == 0, out + err
    result = json.loads(out)
    assert result["ok"] is True
    assert result["errors"] == 0
    sections = {finding["section"] for finding in result["findings"]}
    assert sections >= {"Configuration", "RingCentral", "Slack", "Database", "People"}
    assert all(secret not in out + err for secret in setup.secrets())


# ------------------------------------------------------------------------------- RingCentral


async def test_a_wrong_ringcentral_client_secret_is_named_with_where_to_copy_it(
    tmp_path: Path,
) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(RC_CLIENT_SECRET="not-the-real-client-secret")
        assert_presentable(report, setup)

    assert report.exit_code == 1
    wrong = only(report, "RingCentral", "error", "RC_CLIENT_SECRET is wrong")
    assert "invalid_client" in wrong.what
    assert "Credentials page in the RingCentral Developer Console" in wrong.fix
    # Nothing that needs a login is tried, and the people mapping says why it was not checked.
    assert [f.severity for f in report.findings if f.section == "RingCentral"] == ["error"]
    skipped = only(report, "People", "skipped", "mapping not checked")
    assert "RingCentral's user list" in skipped.what


async def test_a_refused_jwt_asks_for_a_new_one(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(RC_JWT="eyJhbGciOiJSUzI1NiJ9.e30.not-a-real-signature")

    assert report.exit_code == 1
    refused = only(report, "RingCentral", "error", "RC_JWT was refused")
    assert "JWT credentials" in refused.fix


async def test_a_missing_read_presence_permission_names_the_checkbox(tmp_path: Path) -> None:
    async with simulators(
        tmp_path, app_permissions=("ReadAccounts", "SubscriptionWebSocket")
    ) as setup:
        report = await setup.diagnose()
        assert_presentable(report, setup)

    assert report.exit_code == 1
    missing = only(report, "RingCentral", "error", "Read Presence permission")
    assert "tick Read Presence" in missing.fix
    assert "RingCentral Developer Console" in missing.fix
    only(report, "RingCentral", "ok", "Read Accounts:")
    only(report, "RingCentral", "ok", "WebSocket Subscriptions:")


async def test_missing_websocket_and_accounts_permissions_are_each_reported(
    tmp_path: Path,
) -> None:
    async with simulators(tmp_path, app_permissions=("ReadPresence",)) as setup:
        report = await setup.diagnose()

    assert report.exit_code == 1
    accounts = only(report, "RingCentral", "error", "Read Accounts permission")
    assert "tick Read Accounts" in accounts.fix
    websocket = only(report, "RingCentral", "error", "WebSocket Subscriptions permission")
    assert "tick WebSocket Subscriptions" in websocket.fix
    only(report, "RingCentral", "ok", "Read Presence:")
    only(report, "People", "skipped", "mapping not checked")


async def test_the_simulated_app_refuses_what_its_permissions_do_not_cover(
    tmp_path: Path,
) -> None:
    """The switch the permission tests rely on, seen as any RingCentral client sees it."""
    async with (
        simulators(tmp_path, app_permissions=("ReadAccounts", "SubscriptionWebSocket")) as setup,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(setup.rc, http)
        token = await rest.login()
        status, body, _ = await rest.get("/restapi/v1.0/account/~/presence")
        gateway = await GatewayClient.connect(rest)
        try:
            await gateway.recv_type("ConnectionDetails")
            refused = await gateway.request(
                "POST",
                "/restapi/v1.0/subscription",
                {
                    "eventFilters": ["/restapi/v1.0/account/~/presence"],
                    "deliveryMode": {"transportType": "WebSocket"},
                },
            )
        finally:
            await gateway.close()
        listed, _, _ = await rest.get("/restapi/v1.0/account/~/extension")

    assert token["scope"] == "ReadAccounts SubscriptionWebSocket"
    assert status == 403
    assert body["errorCode"] == "InsufficientPermissions"
    assert body["permissionName"] == "ReadPresence"
    assert body["errors"][0]["errorCode"] == "CMN-401"
    assert refused[0]["status"] == 403
    assert refused[1]["permissionName"] == "ReadPresence"
    assert listed == 200


# ------------------------------------------------------------------------------- Slack


async def test_a_missing_bot_scope_is_named_with_how_to_add_it(tmp_path: Path) -> None:
    scopes = [scope for scope in MANIFEST_BOT_SCOPES if scope != "chat:write"]
    async with simulators(tmp_path, bot_scopes=scopes) as setup:
        report = await setup.diagnose()
        assert_presentable(report, setup)

    assert report.exit_code == 1
    missing = only(report, "Slack", "error", "lacks the scope chat:write")
    assert "add the bot scope chat:write under OAuth & Permissions" in missing.fix
    assert "reinstall" in missing.fix
    # The scopes people-matching needs are there, so matching still ran.
    only(report, "People", "ok", "linked to a RingCentral extension")


async def test_without_the_email_scope_matching_is_not_attempted(tmp_path: Path) -> None:
    scopes = [scope for scope in MANIFEST_BOT_SCOPES if scope != "users:read.email"]
    async with simulators(tmp_path, bot_scopes=scopes) as setup:
        report = await setup.diagnose()

    assert report.exit_code == 1
    only(report, "Slack", "error", "lacks the scope users:read.email")
    skipped = only(report, "People", "skipped", "mapping not checked")
    assert "Slack's people list" in skipped.what
    # No bot runs at PUBLIC_URL here; that warning aside, nothing was guessed from half a list.
    assert [f for f in report.of("warning") if f.section != "Public URL"] == []


async def test_a_revoked_looking_bot_token_is_refused_and_dependent_checks_wait(
    tmp_path: Path,
) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(SLACK_BOT_TOKEN="xoxb-1-2-notarealtoken")

    assert report.exit_code == 1
    refused = only(report, "Slack", "error", "Slack refused SLACK_BOT_TOKEN (invalid_auth)")
    assert "Bot User OAuth Token" in refused.fix
    assert not any("scopes" in f.what for f in report.findings if f.section == "Slack")
    # Independent checks still ran.
    only(report, "Slack", "ok", "Socket Mode: SLACK_APP_TOKEN opens a connection")
    only(report, "RingCentral", "ok", "Read Accounts:")


async def test_a_refused_app_token_breaks_socket_mode(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(SLACK_APP_TOKEN="xapp-1-A0-1-notarealtoken")

    assert report.exit_code == 1
    refused = only(report, "Slack", "error", "Socket Mode: Slack refused SLACK_APP_TOKEN")
    assert "App-Level Tokens" in refused.fix
    assert "connections:write" in refused.fix


async def test_http_mode_wants_https_on_a_public_host(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(SLACK_APP_TOKEN="", PUBLIC_URL="http://bot.example.com")

    assert report.exit_code == 0
    only(report, "Configuration", "ok", "HTTP mode (SLACK_APP_TOKEN is empty)")
    only(report, "Slack", "ok", "HTTP mode: SLACK_SIGNING_SECRET is set")
    plain = only(report, "Public URL", "warning", "PUBLIC_URL uses http on bot.example.com")
    assert "Slack's requests (HTTP mode)" in plain.what
    assert "PUBLIC_URL=https://bot.example.com" in plain.fix


async def test_http_mode_without_a_signing_secret_cannot_work(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET="")

    assert report.exit_code == 1
    missing = only(report, "Configuration", "error", "SLACK_SIGNING_SECRET is not set")
    assert "HTTP mode (chosen because SLACK_APP_TOKEN is empty)" in missing.what
    assert "Signing Secret" in missing.fix
    assert "or set SLACK_APP_TOKEN to use Socket Mode instead" in missing.fix
    only(report, "Slack", "skipped", "HTTP mode (SLACK_APP_TOKEN is empty) not checked")


async def test_without_oauth_credentials_nobody_can_connect(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(SLACK_CLIENT_ID="", SLACK_CLIENT_SECRET="")

    assert report.exit_code == 0
    absent = only(report, "Slack", "warning", "nobody can connect")
    assert "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET" in absent.what
    assert "App Credentials" in absent.fix


# ------------------------------------------------------------------------------- public URL


async def test_socket_mode_still_needs_a_public_url_for_connect(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(PUBLIC_URL="")

    only(report, "Configuration", "ok", "Socket Mode (SLACK_APP_TOKEN is set)")
    unset = only(report, "Public URL", "warning", "PUBLIC_URL is not set")
    assert "http://localhost:3999/slack/install" in unset.what
    assert "Connect page needs a public https address, in Socket Mode too" in unset.what
    assert "PUBLIC_URL=https://<host>" in unset.fix


async def test_the_public_url_is_probed_and_answers_once_the_bot_runs(tmp_path: Path) -> None:
    async with bot_harness.simulators(users=4) as sims:
        settings = sims.settings(tmp_path / "rcstatus.db", PORT=str(sims.port))
        assert settings.public_url == sims.app_url
        before = await check_public_url(settings)
        async with bot_harness.running_bot(sims, tmp_path / "rcstatus.db"):
            running = await check_public_url(settings)

    assert [f.severity for f in before] == ["ok", "warning"]
    assert before[1].what.startswith(f"nothing answered at {sims.app_url}/healthz")
    assert "`rcstatus-bot run`" in before[1].fix
    assert [f.severity for f in running] == ["ok", "ok"]
    assert running[1].what.startswith(f"the bot answers at {sims.app_url}/healthz (HTTP ")


async def test_a_public_url_that_leads_elsewhere_is_named(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        # The Slack simulator's own port: something answers, but not the bot.
        settings = Settings.from_env(setup.env(PUBLIC_URL=setup.slack.url), env_file=None)
        findings = await check_public_url(settings)

    elsewhere = findings[-1]
    assert elsewhere.severity == "warning"
    assert "answered HTTP 404, which the bot never does" in elsewhere.what
    assert "/slack/oauth_redirect" in elsewhere.fix


# ------------------------------------------------------------------------------- people


async def test_unmatched_people_are_named_with_the_link_command(tmp_path: Path) -> None:
    async with simulators(tmp_path, company=build_company(40, seed=3)) as setup:
        report = await setup.diagnose()
        text = assert_presentable(report, setup)
        slack_only = setup.slack_only()
        ringcentral_only = setup.ringcentral_only()

    assert report.exit_code == 0
    assert len(slack_only) == 2
    unmatched = only(report, "People", "warning", "no RingCentral extension with their email")
    assert unmatched.what.startswith("2 Slack people have")
    assert all(person.email in unmatched.what for person in slack_only)
    assert unmatched.fix == "`/rcstatus link @user 101` or fix the email in RingCentral"
    assert "`/rcstatus link @user 101`" in text  # never split across lines
    nobody = only(report, "People", "warning", "nobody in Slack with their email")
    assert all(person.last_name in nobody.what for person in ringcentral_only)


async def test_at_most_five_unmatched_people_are_named(tmp_path: Path) -> None:
    company = build_company(10, seed=5, slack_only=8)
    async with simulators(tmp_path, company=company) as setup:
        report = await setup.diagnose()

    unmatched = only(report, "People", "warning", "no RingCentral extension with their email")
    assert unmatched.what.startswith("8 Slack people have")
    assert unmatched.what.endswith("and 3 more")
    assert sum(person.email in unmatched.what for person in setup.slack_only()) == 5


async def test_links_by_hand_and_connections_are_read_from_the_database(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        slack_only = setup.slack_only()[0]
        spare = setup.ringcentral_only()[0]
        first, second = setup.linked()[:2]
        assert slack_only.slack_id is not None
        assert spare.extension_id is not None
        store = Store(f"sqlite+aiosqlite:///{setup.database}", client_id=setup.slack.client_id)
        async with store:
            team = setup.slack.team_id
            await store.link(team, slack_only.slack_id, str(spare.extension_id), "manual")
            for person in (first, second):
                assert person.slack_id is not None
                await store.installation_store.async_save(
                    Installation(
                        app_id=setup.slack.app_id,
                        enterprise_id=None,
                        team_id=team,
                        user_id=person.slack_id,
                        user_token=setup.slack.grant_user_token(person.slack_id),
                        user_scopes=["users.profile:write"],
                        bot_token=setup.slack.bot_token,
                        bot_user_id=setup.slack.bot_user_id,
                    )
                )
        before = setup.database.read_bytes()
        report = await setup.diagnose()
        assert setup.database.read_bytes() == before  # read, never written

    only(report, "Database", "ok", "is readable (schema version")
    linked = only(report, "People", "ok", "linked to a RingCentral extension")
    assert linked.what.startswith(f"{len(setup.linked()) + 1} of ")
    assert linked.what.endswith(", 1 by hand")
    connected = only(report, "People", "ok", "have connected")
    assert connected.what == f"2 of {len(setup.linked()) + 1} linked people have connected"
    assert not any("no RingCentral extension" in f.what for f in report.findings)
    assert not any("nobody in Slack" in f.what for f in report.findings)


async def test_nobody_connected_yet_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose()

    assert report.exit_code == 0
    only(report, "Database", "ok", "does not exist yet")
    warning = only(report, "People", "warning", "has connected")
    assert "`/rcstatus connect`" in warning.fix


# ------------------------------------------------------------------------------- configuration


async def test_missing_and_malformed_settings_are_reported_without_their_values(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "broken.env"
    env_file.write_text(
        "RC_CLIENT_ID=abc\nRC_CLIENT_SECRET=shhh-secret-value\nSLACK_BOT_TOKEN=xoxp-user-token\n",
        encoding="utf-8",
    )
    report = await diagnose_environment(env_file, environ={})
    text = render(report)

    assert report.exit_code == 1
    malformed = only(report, "Configuration", "error", "SLACK_BOT_TOKEN is malformed")
    assert "OAuth & Permissions" in malformed.fix
    assert "xoxp-user-token" not in text
    assert "shhh-secret-value" not in text
    only(report, "Configuration", "skipped", "nothing else was checked")


async def test_a_malformed_choice_is_explained_not_sent_to_a_console(tmp_path: Path) -> None:
    report = await diagnose_environment(None, environ={"CALL_DEBOUNCE_SECONDS": "two"})

    assert report.exit_code == 1
    malformed = only(report, "Configuration", "error", "CALL_DEBOUNCE_SECONDS is malformed")
    assert "expected a number of seconds, 0 or more" in malformed.what
    assert malformed.fix.startswith("it sets how long a call must last")
    assert "leave it unset for the default (2)" in malformed.fix


async def test_sqlite_on_a_heroku_dyno_is_an_error_with_the_add_on_to_attach(
    tmp_path: Path,
) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(DYNO="run.1")

    assert report.exit_code == 1
    sqlite = only(report, "Configuration", "error", "DATABASE_URL is a SQLite file on a Heroku")
    assert sqlite.fix.startswith("attach PostgreSQL (heroku addons:create heroku-postgresql)")


async def test_unset_credentials_skip_the_checks_that_need_them(tmp_path: Path) -> None:
    async with simulators(tmp_path) as setup:
        report = await setup.diagnose(RC_JWT="", SLACK_BOT_TOKEN="")

    assert report.exit_code == 1
    rc_jwt = only(report, "Configuration", "error", "RC_JWT is not set")
    assert "JWT credentials" in rc_jwt.fix
    only(report, "Configuration", "error", "SLACK_BOT_TOKEN is not set")
    only(report, "RingCentral", "skipped", "RC_JWT are all needed")
    only(report, "Slack", "skipped", "SLACK_BOT_TOKEN is not set")
    only(report, "People", "skipped", "mapping not checked")


# ------------------------------------------------------------------------------- acceptance


async def test_a_broken_setup_reports_each_problem_with_its_fix_and_exits_1(
    tmp_path: Path,
) -> None:
    """The issue's acceptance: a missing scope, a wrong client secret and an unmatched user."""
    scopes = [scope for scope in MANIFEST_BOT_SCOPES if scope != "commands"]
    async with simulators(tmp_path, bot_scopes=scopes) as setup:
        env_file = tmp_path / "broken.env"
        write_env_file(env_file, setup.env(SLACK_CLIENT_SECRET="0123456789abcdef0123456789abcdef"))
        code, out, err = await run_cli(env_file)
        slack_only = setup.slack_only()
        leaked = [secret for secret in setup.secrets() if secret in out + err]

    assert code == 1, out + err
    assert leaked == []
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "✗ the bot token lacks the scope commands: /rcstatus cannot be used" in out
    assert "add the bot scope commands under OAuth & Permissions" in out
    assert "✗ SLACK_CLIENT_SECRET is wrong" in out
    assert "copy the Client Secret from Basic Information → App Credentials" in out
    assert "! 1 Slack person has no RingCentral extension with their email" in out
    assert slack_only[0].email in out
    assert "`/rcstatus link @user 101` or fix the email in RingCentral" in out
    assert out.rstrip().endswith("rcstatus cannot work until the errors are fixed.")
