"""Redaction of every shape a credential is printed in, and the clamp on SDK DEBUG lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from bot.logs import REDACTED, SDK_LOGGERS, log_uncaught, own_packages, redact
from tests.log_capture import cli_logging

TOKEN = "Zm9vYmFyYmF6cXV1eDEyMzQ1Njc4OTBhYmNkZWZnaGlq"  # opaque, as RingCentral issues them
CODE = "1234567890.0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # a Slack OAuth code
VERIFICATION = "aB3dE5gH7jK9mN1pQ3sT5vX7"
HOOK = "https://hooks.slack.com/commands/T0123ABCD/5551234/Qx7wE2rT9yU4iO6pA1sD3fG5"
SIM_HOOK = "http://127.0.0.1:8902/actions/T0123ABCD/17/8c1f0e2d4b6a79881726354a"
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMDEiLCJleHAiOjM5MDB9.c2lnbmF0dXJlLWJ5dGVz"
USER_TOKEN = "xoxp-111111111111-222222222222-333333333333-0123456789abcdef0123456789abcdef"


def _secret_tail(url: str) -> str:
    return url.rsplit("/", 1)[1]


SHAPES = {
    "python dict": (
        repr({"code": CODE, "token": VERIFICATION, "response_url": HOOK}),
        [CODE, VERIFICATION, _secret_tail(HOOK)],
    ),
    "json": (
        json.dumps({"ok": True, "access_token": TOKEN, "refresh_token": TOKEN + "r"}),
        [TOKEN],
    ),
    "json escaped inside a repr": (
        repr(json.dumps({"token": VERIFICATION})),
        [VERIFICATION],
    ),
    "bytes body": (
        repr(json.dumps({"authed_user": {"access_token": USER_TOKEN}}).encode()),
        [USER_TOKEN, USER_TOKEN[5:]],
    ),
    "parsed query string": (
        f"Handling an OAuth callback (request: {{'code': ['{CODE}'], 'state': ['s1']}})",
        [CODE],
    ),
    "client secret in a dict": (repr({"client_secret": "s3cr3t-v4lue"}), ["s3cr3t-v4lue"]),
    "keyword arguments": (
        f"Settings(slack_signing_secret='{TOKEN}', password='hunter2')",
        [TOKEN, "hunter2"],
    ),
    "query string": (
        f"GET /slack/oauth_redirect?code={CODE}&state=abc HTTP/1.1",
        [CODE],
    ),
    "websocket url": (f"wss://ws.example/ws?access_token={TOKEN}", [TOKEN]),
    "slash command form body": (
        urlencode({"token": VERIFICATION, "team_id": "T1", "response_url": SIM_HOOK}),
        [VERIFICATION, _secret_tail(SIM_HOOK)],
    ),
    "interactive payload form field": (
        "payload=" + quote(json.dumps({"token": VERIFICATION, "response_url": HOOK}), safe=""),
        [VERIFICATION, _secret_tail(HOOK)],
    ),
    "bolt's failed code exchange": (
        f"Failed to fetch oauth.v2.access result with code: {CODE}",
        [CODE],
    ),
    "verification token in words": (
        f"the verification token: {VERIFICATION} does not match",
        [VERIFICATION],
    ),
    "response url alone": (f"posting to {HOOK} and {SIM_HOOK}", [_secret_tail(HOOK)]),
    "simulator response url alone": (f"POST {SIM_HOOK}", [_secret_tail(SIM_HOOK)]),
    "json-escaped response url": (json.dumps({"u": HOOK})[7:-2], [_secret_tail(HOOK)]),
    "bearer header": (repr({"Authorization": f"Bearer {TOKEN}"}), [TOKEN]),
    "bare bearer": (f"Authorization: Bearer {TOKEN}", [TOKEN]),
    "ringcentral jwt": (f"logging in with {JWT}", [JWT, JWT.split(".")[2]]),
    "jwt assertion": (f"assertion={JWT}&grant_type=jwt", [JWT]),
    "wsc token": (repr({"wsc": {"token": TOKEN, "sequence": 3}}), [TOKEN]),
    "slack tokens alone": (f"{USER_TOKEN} xapp-1-A1-2-abcdef xoxe.xoxp-1-abc", [USER_TOKEN[5:]]),
    "api key and webhook secret": (
        "key rcs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde "
        "signs with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ["AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    ),
    "database password": ("postgresql+asyncpg://rc:hunter2@db:5432/rc", ["hunter2"]),
    "phone number": ("call from +14155550123", ["14155550123"]),
    "sql parameters with a webhook secret and an api key": (
        "[generated in 0.0001s] ('wh_1', 'https://x.example/h', "
        "'whsec_nP1GL+7YGXx9qXJz1rLOLakyJEqxxd+VXfi0H4Tpg+k=', None, "
        "'rcs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde')",
        ["nP1GL+7YGXx9qXJz1rLOLakyJEqxxd+VXfi0H4Tpg+k=", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"],
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_loses_its_secret(shape: str) -> None:
    text, secrets = SHAPES[shape]
    cleaned = redact(text)
    assert [secret for secret in secrets if secret in cleaned] == [], cleaned
    assert "[redacted]" in cleaned or "[phone]" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        '{"refresh_token_expires_in": 604800, "token_type": "bearer", "expires_in": 3600}',
        "tokens_revoked for U012AB3CD",
        "HTTP 429 status_code=429 errorCode=CMN-301",
        "U012AB3CD's profile now shows SlackStatus(text='On a call', emoji=':phone:')",
        "https://platform.ringcentral.com/restapi/v1.0/account/~/extension?page=2&perPage=1000",
    ],
)
def test_what_is_not_a_secret_stays_readable(text: str) -> None:
    assert redact(text) == text


def test_an_exception_message_and_its_cause_are_redacted_in_the_traceback() -> None:
    log = logging.getLogger("anything.at.all")
    with cli_logging("DEBUG") as out:
        try:
            try:
                raise ConnectionError(f"GET wss://gw/ws?access_token={TOKEN} refused")
            except ConnectionError as cause:
                raise RuntimeError(
                    f"Slack said {{'token': '{VERIFICATION}'}} to {USER_TOKEN}"
                ) from cause
        except RuntimeError:
            log.exception("sending with code=%s failed", CODE)
        log.warning("where it was", stack_info=True, extra={"leak": HOOK})
    text = out.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "The above exception was the direct cause" in text
    assert "RuntimeError: Slack said {'token': '[redacted]'}" in text
    assert "Stack (most recent call last)" in text
    assert [s for s in (TOKEN, VERIFICATION, USER_TOKEN, CODE) if s in text] == [], text


def test_json_lines_parse_and_lose_their_secrets_traceback_included() -> None:
    log = logging.getLogger("bot.anything")
    with cli_logging("DEBUG", log_format="json") as out:
        log.info("token=%s and a\nsecond line with %s", TOKEN, USER_TOKEN)
        try:
            raise RuntimeError(f"Slack said {{'token': '{VERIFICATION}'}} to {HOOK}")
        except RuntimeError:
            log.exception("sending with code=%s failed", CODE)
    lines = out.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2, lines
    assert entries[0]["level"] == "INFO"
    assert entries[0]["logger"] == "bot.anything"
    assert entries[0]["message"].startswith("token=[redacted] and a\nsecond line")
    assert "RuntimeError: Slack said {'token': '[redacted]'}" in entries[1]["exception"]
    assert "Traceback (most recent call last)" in entries[1]["exception"]
    leaked = [
        s
        for s in (TOKEN, VERIFICATION, USER_TOKEN, CODE, _secret_tail(HOOK))
        if s in out.getvalue()
    ]
    assert leaked == []


def test_a_crash_nothing_caught_is_one_redacted_json_record() -> None:
    with cli_logging("INFO", log_format="json") as out:
        try:
            raise RuntimeError(f"Slack answered {{'token': '{VERIFICATION}'}} to {USER_TOKEN}")
        except RuntimeError as exc:
            log_uncaught(RuntimeError, exc, exc.__traceback__)
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["level"] == "CRITICAL"
    assert "RuntimeError: Slack answered {'token': '[redacted]'}" in entry["exception"]
    assert VERIFICATION not in out.getvalue()
    assert USER_TOKEN not in out.getvalue()


def test_other_handlers_see_redacted_records_too() -> None:
    """pytest's capture, a handler some library adds: the records themselves are scrubbed."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    other = logging.getLogger("some.library.with.its.own.handler")
    keep = Keep()
    other.addHandler(keep)
    other.propagate = False
    try:
        with cli_logging("DEBUG"):
            try:
                raise ValueError(f"bad token={TOKEN}")
            except ValueError:
                other.error("exchange failed for %r", {"code": CODE}, exc_info=True)
    finally:
        other.removeHandler(keep)
        other.propagate = True
    (record,) = seen
    assert CODE not in record.getMessage()
    assert record.exc_text is not None
    assert TOKEN not in record.exc_text
    assert TOKEN not in logging.Formatter().format(record)


def _record_from(pathname: str, name: str, level: int, message: str) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, pathname, 1, message, None, None)


OUR_FILE = str(own_packages()[0] / "slack" / "status.py")
LIBRARY_FILE = "/venv/site-packages/slack_bolt/app/async_app.py"


@pytest.mark.parametrize("name", ["slack_bolt.rcstatus", "rcstatus.bolt", "bot.store.oauth_state"])
def test_library_debug_lines_are_dropped_whatever_the_logger_is_called(name: str) -> None:
    with cli_logging("DEBUG") as out:
        logger = logging.getLogger(name)
        logger.handle(_record_from(LIBRARY_FILE, name, logging.DEBUG, "library detail"))
        logger.handle(_record_from(LIBRARY_FILE, name, logging.INFO, "library news"))
        logger.handle(_record_from(OUR_FILE, name, logging.DEBUG, "our detail"))
        # From outside our packages (this test file), whatever the name: a library.
        logger.debug("written from a test module")
    text = out.getvalue()
    assert "library detail" not in text
    assert "written from a test module" not in text
    assert "library news" in text
    assert "our detail" in text


def test_the_sdk_loggers_are_clamped_and_sqlalchemy_stays_quiet() -> None:
    with cli_logging("DEBUG"):
        for name, floor in SDK_LOGGERS.items():
            assert logging.getLogger(name).getEffectiveLevel() >= floor, name
        assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
        assert logging.getLogger("bot.slack.status").isEnabledFor(logging.DEBUG)


def test_the_sdk_opt_in_shows_library_debug_lines_still_redacted() -> None:
    with cli_logging("DEBUG", sdk_debug=True) as out:
        logger = logging.getLogger("slack_sdk.web.async_base_client")
        logger.debug("Sending a request - body: %s", {"code": CODE, "client_secret": TOKEN})
    text = out.getvalue()
    assert "Sending a request" in text
    assert CODE not in text
    assert TOKEN not in text


def test_an_unformattable_call_neither_raises_nor_leaks() -> None:
    with cli_logging("DEBUG") as out:
        logging.getLogger("bot.x").info("two placeholders %s %s", f"token={TOKEN}")
    text = out.getvalue()
    assert "unformattable log call" in text
    assert TOKEN not in text


def test_own_packages_is_where_this_code_lives() -> None:
    assert (own_packages()[0] / "logs.py").is_file()
    assert Path(OUR_FILE).is_file()


def test_redacted_marker_is_what_the_lines_show() -> None:
    assert redact(f"code={CODE}") == f"code={REDACTED}"
