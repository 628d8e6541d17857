"""Logging set-up and the filter that keeps tokens and phone numbers out of every log line."""

from __future__ import annotations

import logging
import re
from typing import Final

_PATTERNS: Final = (
    # Query parameters that carry credentials (WebSocket URLs, OAuth redirects).
    (
        re.compile(r"((?:access_token|wsc|token|code|assertion|refresh_token)=)[^&\s\"']+"),
        r"\1[redacted]",
    ),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    # Bolt logs OAuth codes as "... with code: <code>" when an exchange fails.
    (re.compile(r"(\bcode:\s*)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"\bxox[abpeor]-[A-Za-z0-9-]+"), "xox?-[redacted]"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), "xapp-[redacted]"),
    # E.164 phone numbers, as RingCentral writes caller and callee.
    (re.compile(r"\+\d{8,15}\b"), "+[phone]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message so that credentials and phone numbers never leave it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def quiet_logger(name: str) -> logging.Logger:
    """A logger for third-party code that may log URLs or headers; all it says is redacted."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDKs log request details (URLs with tokens, headers) at DEBUG; keep them at INFO.
    for noisy in ("websockets", "urllib3", "slack_sdk", "slack_bolt", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
