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
