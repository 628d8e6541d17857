"""Logging set-up: redaction of credentials and phone numbers in every line, and the SDK clamp."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

LINE_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The libraries whose own DEBUG lines carry request bodies, headers and URLs, and the least
# level each keeps unless the SDK opt-in is given. SQLAlchemy's INFO prints every statement with
# its parameters (it sets WARNING itself on import; this holds even before that import).
SDK_LOGGERS: Final = {
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    "ringcentral": logging.INFO,
    "websockets": logging.INFO,
    "aiohttp": logging.INFO,
    "urllib3": logging.INFO,
    "requests": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "asyncpg": logging.INFO,
    "aiosqlite": logging.INFO,
    "asyncio": logging.INFO,
}

REDACTED: Final = "[redacted]"

# A quote as it appears around a key or value: plain, backslash-escaped (JSON inside a repr) or
# percent-encoded (JSON inside a form field, as Slack's interactive `payload=` carries it).
_QUOTE: Final = r"""\\?["']|(?:%5C)?%2[27]"""
# Keys whose value is a credential, in any casing. `code` is an OAuth code, `wsc` RingCentral's
# session-recovery token, `ticket` Slack's Socket Mode ticket. Keys that only describe a token
# (its lifetime, its type) are excluded after the match so their numbers stay readable.
_CREDENTIAL_KEYS: Final = (
    r"[A-Za-z0-9_.-]*?(?:token|secret|password|passwd|passphrase|jwt|assertion|api[_-]?key"
    r"|credential|cookie|signature)[A-Za-z0-9_-]*"
    r"|code|wsc|ticket|response_url|authorization|proxy-authorization"
)
_DESCRIPTIVE_SUFFIXES: Final = r"(?<!expires_in)(?<!expire_time)(?<!_type)(?<!_ttl)(?<!_count)"
_SEPARATOR: Final = r"\s*(?::|=|%3A|%3D)\s*"
_KEYED: Final = re.compile(
    rf"(?P<head>(?:(?P<kq>{_QUOTE})|(?<![A-Za-z0-9_.-]))(?:{_CREDENTIAL_KEYS}){_DESCRIPTIVE_SUFFIXES}"
    rf"(?(kq)(?P=kq)){_SEPARATOR})"
    # A parsed query string holds lists: {'code': ['…']}.
    rf"(?:(?P<list>\[\s*)?(?P<vq>{_QUOTE})(?P<quoted>.{{0,4096}}?)(?P=vq)"
    rf"|(?P<bare>[^\s&\"',;(){{}}\[\]<>]{{1,4096}}))",
    re.IGNORECASE,
)
# A path separator, plain, escaped in JSON, or percent-encoded (with or without the escape).
_SLASH: Final = r"(?:\\?/|%2F|%5C%2F)"
# Before the keys: `Authorization: Bearer x` must lose x, not only the word Bearer.
_SCHEME: Final = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_VALUE_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Slack's tokens: bot, user, refresh (xoxe.xoxp-…), configuration and app-level.
    (re.compile(r"\bxox[abpeorc](?:\.xox[a-z])?-[A-Za-z0-9-]+"), f"xox?-{REDACTED}"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), f"xapp-{REDACTED}"),
    # Webhook signing secrets (Standard Webhooks' form) and the API's keys (bot/api/keys.py).
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), f"whsec_{REDACTED}"),
    (re.compile(r"\brcs_[A-Za-z0-9_-]{20,}"), f"rcs_{REDACTED}"),
    # JSON Web Tokens (RingCentral's JWT credential is one): three base64url parts.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), f"[jwt {REDACTED}]"),
    # Slack's webhooks (incoming webhooks and every response_url) are credentials in themselves.
    (
        re.compile(rf"hooks\.slack\.com(?:{_SLASH}|[A-Za-z0-9_.-])*", re.IGNORECASE),
        f"hooks.slack.com/{REDACTED}",
    ),
    # A response_url on any host (Slack's shape, which the simulator issues too): the last part
    # of /commands/T…/n/secret or /actions/T…/n/secret is the secret.
    (
        re.compile(
            rf"({_SLASH}(?:commands|actions){_SLASH}T[A-Z0-9]+{_SLASH}[0-9]+{_SLASH})[A-Za-z0-9]+",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    # A password in a URL's user information (database URLs).
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
    # E.164 phone numbers, as RingCentral writes caller and callee.
    (re.compile(r"\+\d{8,15}\b"), "+[phone]"),
)


def _redact_keyed(match: re.Match[str]) -> str:
    if match.group("bare") is not None:
        return f"{match.group('head')}{REDACTED}"
    if not match.group("quoted"):
        return match.group(0)
    quote = match.group("vq")
    return f"{match.group('head')}{match.group('list') or ''}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """`text` without credentials or phone numbers, whatever shape they are printed in."""
    text = _SCHEME.sub(rf"\1 {REDACTED}", text)
    text = _KEYED.sub(_redact_keyed, text)
    for pattern, replacement in _VALUE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SCRUBBED: Final = "_rcstatus_redacted"


def scrub(record: logging.LogRecord) -> None:
    """Rewrite a record in place: its message, its traceback and its stack, each redacted.

    The traceback is rendered here, once, so that every handler (whatever its formatter) finds
    the redacted text in `exc_text` and never renders the exception's raw message itself.
    """
    if getattr(record, _SCRUBBED, False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; logging would print its raw arguments to stderr
        message = f"unformattable log call: {record.msg!r} % {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = RedactingFormatter().formatException(record.exc_info)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    setattr(record, _SCRUBBED, True)


class RedactingFormatter(logging.Formatter):
    """Redacts the final line, so nothing a record carries (extras, traceback) escapes it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, and any traceback), each field
    redacted on its own so the line stays valid JSON whatever the redaction replaces."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        # ensure_ascii: a line is one line whatever the message holds (newlines, emoji).
        return json.dumps(entry, ensure_ascii=True)

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


class RedactingFilter(logging.Filter):
    """For any handler: rewrites each record so credentials and phone numbers never leave it."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record)
        return True


class LibraryClamp(logging.Filter):
    """Drops records below INFO written by code outside our own packages, whatever the logger.

    Setting the SDK loggers' levels is not enough: a library may log through a logger we named
    (Bolt through the one we give it) or one we have never heard of. Where the record was written
    decides, not what the logger is called.
    """

    def __init__(self, own_packages: Iterable[Path], floor: int = logging.INFO) -> None:
        super().__init__()
        roots: set[str] = set()
        for package in own_packages:
            roots.add(str(package) + "/")
            roots.add(str(package.resolve()) + "/")
        self._roots = tuple(sorted(roots))
        self._floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self._floor or record.pathname.startswith(self._roots)


class _ScrubbingFactory:
    """A LogRecord factory that scrubs each record as it is made, for handlers we never see."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        scrub(record)
        return record


def quiet_logger(name: str) -> logging.Logger:
    """A logger to hand to third-party code that may log URLs, headers or bodies.

    Name it under the library's own namespace (`slack_bolt.…`, `websockets.…`) so that the SDK
    clamp holds by name as well as by where the record was written. Its own filter redacts even
    where `configure_logging` never ran (tests, embedding).
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def redacting_handler(
    stream: TextIO, fmt: str = LINE_FORMAT, *, as_json: bool = False
) -> logging.Handler:
    """A stream handler whose every line, traceback included, has been through the redaction."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if as_json else RedactingFormatter(fmt))
    handler.addFilter(RedactingFilter())
    return handler


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    """`sys.excepthook` for the CLI: a crash nothing caught is logged like any other record
    (redacted, and one JSON line under LOG_FORMAT=json) instead of printed raw to stderr."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("rcstatus").critical(
        "rcstatus stopped on an error", exc_info=(exc_type, exc, tb)
    )


def own_packages() -> list[Path]:
    """Where our code lives: records written there may log at DEBUG."""
    return [Path(__file__).parent]


def configure_logging(
    level: str | int,
    *,
    sdk_debug: bool = False,
    stream: TextIO | None = None,
    log_format: str = "text",
) -> logging.Handler:
    """One redacting handler on the root; libraries below INFO are dropped unless `sdk_debug`.

    `sdk_debug` is the opt-in (`rcstatus-bot --sdk-debug`) for chasing a problem inside Slack's
    or RingCentral's SDKs: their DEBUG lines are shown too, still redacted. `log_format` is
    `text` or `json` (LOG_FORMAT). Returns the handler.
    """
    handler = redacting_handler(
        stream if stream is not None else sys.stderr, as_json=log_format == "json"
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _ScrubbingFactory):
        logging.setLogRecordFactory(_ScrubbingFactory(factory))
    if sdk_debug:
        return handler
    handler.addFilter(LibraryClamp(own_packages()))
    # Also at the loggers, so that the libraries do not build DEBUG lines nobody will see; a
    # level only ever goes up here.
    for name, floor in SDK_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < floor:
            logger.setLevel(floor)
    return handler
