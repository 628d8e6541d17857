"""Block Kit primitives every message builder shares: sections, buttons, escaping, limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

Block = dict[str, Any]

MESSAGE_BLOCK_LIMIT: Final = 50
SECTION_TEXT_LIMIT: Final = 3000
FALLBACK_TEXT_LIMIT: Final = 3000
"""Slack truncates longer top-level text; we stop well before so nothing is cut mid-mention."""


class Message(NamedTuple):
    """A reply or DM: `text` is the notification and screen-reader fallback for `blocks`."""

    text: str
    blocks: list[Block]


def button(
    label: str, action_id: str, *, value: str, url: str | None = None, style: str | None = None
) -> Block:
    made: Block = {
        "type": "button",
        "action_id": action_id,
        "text": plain(label),
        "value": value,
    }
    if url is not None:
        made["url"] = url
    if style is not None:
        made["style"] = style
    return made


def section(text: str, *, block_id: str | None = None) -> Block:
    made: Block = {"type": "section", "text": mrkdwn(fit(text, SECTION_TEXT_LIMIT))}
    if block_id is not None:
        made["block_id"] = block_id
    return made


def actions(*elements: Block, block_id: str | None = None) -> Block:
    made: Block = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        made["block_id"] = block_id
    return made


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(fit(text, 2000))]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(fit(text, 150))}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def message(text: str, blocks: list[Block]) -> Message:
    return Message(fit(text, FALLBACK_TEXT_LIMIT), blocks[:MESSAGE_BLOCK_LIMIT])


def fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Cut before a half-written `<@U…>` or `<!date…>` so Slack never sees broken markup.
    cut = text[: limit - 1]
    opening = cut.rfind("<")
    if opening > cut.rfind(">"):
        cut = cut[:opening]
    return cut.rstrip() + "…"


def escape(text: str) -> str:
    """Text from people (status words, reasons, addresses) shown literally in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
