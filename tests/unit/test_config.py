"""Settings: parsing, the .env file, clear failures that never show a secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import Secret, Settings, describe_settings
from bot.errors import ConfigError

FULL = {
    "RC_SERVER_URL": "http://127.0.0.1:8901",
    "RC_CLIENT_ID": "client-id",
    "RC_CLIENT_SECRET": "rc-secret-value",
    "RC_JWT": "eyJhbGciOi.jwt-value",
    "SLACK_BOT_TOKEN": "xoxb-bot-token-value",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
}


def test_defaults_with_an_empty_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({}, env_file=tmp_path / "absent.env")
    assert settings.rc_server_url == "https://platform.ringcentral.com"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite+aiosqlite:///rcstatus.db"
    assert settings.port == 3000
    assert settings.rate_window_seconds == 60
    assert settings.slack_profile_writes_per_minute == 50
    assert not settings.socket_mode


def test_every_missing_credential_is_named_with_its_source(tmp_path: Path) -> None:
    problems = Settings.from_env({}, env_file=None).missing_for_run()
    text = "\n".join(problems)
    for name in ("RC_CLIENT_ID", "RC_CLIENT_SECRET", "RC_JWT", "SLACK_BOT_TOKEN"):
        assert name in text
    assert "RingCentral Developer Console" in text
    assert "api.slack.com/apps" in text
    # HTTP mode needs the signing secret; Socket Mode does not.
    assert "SLACK_SIGNING_SECRET" in text
    socket = Settings.from_env({**FULL, "SLACK_APP_TOKEN": "xapp-1-abc"}, env_file=None)
    socket_problems = socket.missing_for_run()
    assert socket_problems == []
    assert socket.socket_mode


def test_malformed_values_fail_together_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "PORT": "eighty",
                "SLACK_BOT_TOKEN": "xoxp-looks-like-a-user-token",
                "RC_SERVER_URL": "platform.ringcentral.com",
            },
            env_file=None,
        )
    message = str(caught.value)
    assert "PORT is malformed" in message
    assert "SLACK_BOT_TOKEN is malformed" in message
    assert "xoxb-" in message
    assert "RC_SERVER_URL is malformed" in message
    assert "xoxp-looks-like-a-user-token" not in message
    assert len(caught.value.problems) == 3


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "PORT=4000\nRC_CLIENT_ID=from-file\n# a comment\nSLACK_API_URL=http://x/api\n"
    )
    settings = Settings.from_env({"PORT": "5000"}, env_file=env_file)
    assert settings.port == 5000
    assert settings.rc_client_id == "from-file"
    assert settings.slack_api_url == "http://x/api/"
    assert settings.slack_authorize_url == "http://x/oauth/v2/authorize"


def test_real_slack_authorize_url_sits_beside_the_api() -> None:
    assert Settings().slack_authorize_url == "https://slack.com/oauth/v2/authorize"


def test_postgres_urls_get_the_async_driver() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgres://u@db/rc"}, env_file=None)
    assert settings.database_url == "postgresql+asyncpg://u@db/rc"


def test_secrets_never_show_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env(FULL, env_file=None)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
    shown = repr(settings) + str(settings) + caplog.text
    for secret in ("rc-secret-value", "jwt-value", "xoxb-bot-token-value", "signing-secret-value"):
        assert secret not in shown
    assert settings.rc_jwt == Secret("eyJhbGciOi.jwt-value")
    assert settings.rc_jwt is not None
    assert settings.rc_jwt.reveal() == "eyJhbGciOi.jwt-value"


def test_every_setting_is_documented_in_env_example() -> None:
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, _default, source in describe_settings():
        assert name in example, f"{name} missing from .env.example"
        assert name in readme, f"{name} missing from README.md"
        assert source


def _problem_for(variable: str, value: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value}, env_file=None)
    (problem,) = caught.value.problems
    return problem


@pytest.mark.parametrize(
    ("variable", "value", "says", "fix"),
    [
        ("PORT", "eighty", "whole number from 0 to 65535", "leave it unset for the default (3000)"),
        ("PORT", "70000", "whole number from 0 to 65535", "the port the bot's HTTP endpoints"),
        ("CALL_DEBOUNCE_SECONDS", "two", "a number of seconds, 0 or more", "default (2)"),
        ("STATUS_TTL_SECONDS", "inf", "a number above 0", "default (3600)"),
        ("TIME_SCALE", "nan", "a number above 0", "default (1)"),
        ("API_MAX_STREAMS", "1e3", "a whole number above 0", "default (1000)"),
        ("TRUSTED_PROXY_HOPS", "lots", "how many reverse proxies", "default (0)"),
        (
            "SLACK_API_URL",
            "ftp://files.internal",
            "such as https://slack.com/api/",
            "Slack's Web API",
        ),
        ("PUBLIC_URL", "rcstatus.acme.com", "such as https://rcstatus.", "browsers reach the bot"),
        ("RC_SERVER_URL", "rc-server", "such as https://platform.ringcentral.com", "partner"),
        ("DATABASE_URL", "mydb.sqlite", "postgresql://user:password@host", "your database"),
        ("SLACK_BOT_TOKEN", "xoxb-123 456", "a token starting with xoxb-", "copy it from OAuth"),
        ("SLACK_APP_TOKEN", "xoxb-1-2", "a token starting with xapp-", "App-Level Tokens"),
    ],
)
def test_each_malformed_value_says_what_is_wrong_and_where_a_good_one_comes_from(
    variable: str, value: str, says: str, fix: str
) -> None:
    problem = _problem_for(variable, value)
    what, _, advice = problem.partition("; ")
    assert what.startswith(f"{variable} is malformed: expected ")
    assert says in what
    assert fix in advice
    assert "\n" not in problem
    assert value not in problem  # a value may be a secret: it is never echoed
    # Python's own words never reach the operator, nor another setting's example.
    for raw in ("could not convert", "invalid literal", "base 10"):
        assert raw not in problem
    if variable in ("SLACK_API_URL", "PUBLIC_URL"):
        assert "ringcentral" not in problem


def test_a_setting_you_choose_is_explained_not_copied_from_somewhere() -> None:
    problem = _problem_for("CALL_DEBOUNCE_SECONDS", "-1")
    assert "copy it from" not in problem
    assert "it sets how long a call must last" in problem


def test_the_port_message_states_one_range() -> None:
    problem = _problem_for("PORT", "-5")
    assert "between 1 and" not in problem
    assert "from 0 to 65535 (0 picks a free port)" in problem


def _env_example_values() -> dict[str, str]:
    """Every NAME=value .env.example shows, commented out or not."""
    example = (Path(__file__).parents[2] / ".env.example").read_text(encoding="utf-8")
    names = {name for name, _default, _source in describe_settings()}
    shown = {}
    for line in example.splitlines():
        name, sep, value = line.removeprefix("#").strip().partition("=")
        if sep and name in names and value.strip():
            shown[name] = value.strip()
    return shown


def test_every_placeholder_in_env_example_is_refused_and_every_other_value_is_the_default() -> None:
    shown = _env_example_values()
    assert {"SLACK_BOT_TOKEN", "PUBLIC_URL", "SLACK_ADMIN_USER_TOKEN"} <= set(shown)
    defaults = Settings()
    refused = set()
    for name, value in shown.items():
        try:
            settings = Settings.from_env({name: value}, env_file=None)
        except ConfigError as exc:
            (problem,) = exc.problems
            assert problem.startswith(f"{name} is still the placeholder from .env.example; ")
            refused.add(name)
            continue
        assert settings == defaults, (
            f"{name}={value} in .env.example is neither default nor refused"
        )
    assert refused >= {"SLACK_BOT_TOKEN", "PUBLIC_URL", "SLACK_ADMIN_USER_TOKEN", "DATABASE_URL"}


def test_a_token_that_is_only_its_prefix_is_refused_even_outside_env_example() -> None:
    assert "placeholder" in _problem_for("SLACK_APP_TOKEN", "xapp-")
    with pytest.raises(ConfigError):
        Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-\t"}, env_file=None)


def test_sqlite_on_a_heroku_dyno_is_refused_and_postgres_is_fine() -> None:
    on_dyno = Settings.from_env({**FULL, "DYNO": "web.1"}, env_file=None)
    (problem,) = on_dyno.missing_for_run()
    assert problem.startswith("DATABASE_URL is a SQLite file on a Heroku dyno")
    assert "heroku-postgresql" in problem
    with_postgres = Settings.from_env(
        {**FULL, "DYNO": "web.1", "DATABASE_URL": "postgres://u:p@db.host:5432/d"}, env_file=None
    )
    assert with_postgres.missing_for_run() == []
    assert Settings.from_env(FULL, env_file=None).missing_for_run() == []


def test_http_mode_without_a_signing_secret_names_socket_mode_as_the_alternative() -> None:
    settings = Settings.from_env(
        {k: v for k, v in FULL.items() if k != "SLACK_SIGNING_SECRET"}, env_file=None
    )
    (problem,) = settings.missing_for_run()
    what, _, fix = problem.partition("; ")
    assert what.startswith("SLACK_SIGNING_SECRET is not set, and HTTP mode")
    assert "SLACK_APP_TOKEN is empty" in what
    assert "Signing Secret" in fix
    assert "set SLACK_APP_TOKEN to use Socket Mode" in fix
