"""Pure Block Kit builders for linking: replies, admins' requests, and what each person is told."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Final

from bot.slack.blocks import slack_date
from bot.slack.kit import Message, actions, button, escape, join, message, section
from bot.store import LinkEvent, LinkRequest

LINK_MOVE_ACTION: Final = "link_move"
LINK_KEEP_ACTION: Final = "link_keep"
LINK_APPROVE_ACTION: Final = "link_approve"
LINK_DENY_ACTION: Final = "link_deny"

ExtensionNumber = Callable[[str], str | None]
"""Extension id → the number people dial, or None when the directory no longer has it."""


class LinkRefusal(StrEnum):
    """Why a link or unlink was not made."""

    NOT_ADMIN = "not_admin"
    UNKNOWN_EXTENSION = "unknown_extension"
    NOT_LINKED = "not_linked"
    NO_ADMINS = "no_admins"
    TOO_MANY_REQUESTS = "too_many_requests"


class RequestReason(StrEnum):
    """Why a person's own link needs an admin."""

    HELD = "held"
    """Someone else holds the extension."""
    NOT_THEIR_EMAIL = "not_their_email"
    """Nobody holds it, but its RingCentral email is not the person's Slack email."""


def linked_reply(user_id: str, extension_number: str, *, invoker_id: str) -> Message:
    """A link was made."""
    who = "You're" if user_id == invoker_id else f"<@{user_id}> is"
    text = f"🔗 {who} now linked to extension {escape(extension_number)}."
    return message(text, [section(text)])


def already_linked_reply(user_id: str, extension_number: str, *, invoker_id: str) -> Message:
    who = "You're" if user_id == invoker_id else f"<@{user_id}> is"
    text = f"{who} already linked to extension {escape(extension_number)}."
    return message(text, [section(text)])


def link_refusal_reply(
    reason: LinkRefusal, *, extension_number: str | None = None, user_id: str | None = None
) -> Message:
    """A link or unlink that could not be made, and why."""
    if reason is LinkRefusal.NOT_ADMIN:
        text = (
            "Only workspace admins can link or unlink someone else. `/rcstatus link 101` links you."
        )
    elif reason is LinkRefusal.UNKNOWN_EXTENSION:
        number = escape(extension_number or "")
        text = (
            f"I can't find extension {number} among the RingCentral users. "
            "Check the number, or ask your phone admin."
        )
    elif reason is LinkRefusal.NO_ADMINS:
        text = (
            "A workspace admin has to approve that link, and I couldn't find one to ask. "
            "Ask an admin to run `/rcstatus link @you "
            f"{escape(extension_number or '101')}`."
        )
    elif reason is LinkRefusal.TOO_MANY_REQUESTS:
        text = (
            "Too many link requests are already waiting for an admin. "
            "Please ask a workspace admin directly, or try again tomorrow."
        )
    elif user_id is None:
        text = "You aren't linked to an extension."
    else:
        text = f"<@{user_id}> isn't linked to an extension."
    return message(text, [section(text)])


def unlinked_reply(user_id: str, extension_number: str | None, *, invoker_id: str) -> Message:
    """An unlink was made."""
    who = "You're" if user_id == invoker_id else f"<@{user_id}> is"
    text = f"{who} no longer linked"
    if extension_number is not None:
        text += f" to extension {escape(extension_number)}"
    text += "."
    return message(text, [section(text)])


def request_sent_reply(
    extension_number: str, *, reason: RequestReason, holder_id: str | None, admins: Sequence[str]
) -> Message:
    """The person asked for an extension they may not take alone: admins were asked."""
    number = escape(extension_number)
    if reason is RequestReason.HELD and holder_id is not None:
        why = f"Extension {number} is linked to <@{holder_id}>"
    else:
        why = f"Extension {number} isn't registered to your email address in RingCentral"
    asked = join([f"<@{admin}>" for admin in admins]) if admins else "the workspace admins"
    text = (
        f"{why}, so a workspace admin has to approve. I've asked {asked}; nothing changes "
        "until one of them approves, and I'll DM you their answer."
    )
    return message(text, [section(text)])


def request_dm(request: LinkRequest, extension_number: str, *, reason: RequestReason) -> Message:
    """The DM each admin gets: who asks for which extension, and Approve / Deny."""
    number = escape(extension_number)
    who = f"<@{request.requester_id}>"
    if request.holder_id is not None:
        detail = (
            f"It is linked to <@{request.holder_id}> now: approving moves it to {who}, "
            f"and <@{request.holder_id}> will be told."
        )
    elif reason is RequestReason.NOT_THEIR_EMAIL:
        detail = "Nobody holds it, but its RingCentral email address isn't theirs."
    else:
        detail = "Nobody holds it."
    text = f"{who} asks to be linked to RingCentral extension {number}. {detail}"
    value = str(request.id)
    return message(
        text,
        [
            section(text, block_id="link-request"),
            actions(
                button("Approve", LINK_APPROVE_ACTION, value=value, style="primary"),
                button("Deny", LINK_DENY_ACTION, value=value, style="danger"),
                block_id="link-request-actions",
            ),
        ],
    )


def decision_reply(
    request: LinkRequest,
    extension_number: str,
    *,
    decider_id: str,
    decided_now: bool,
    displaced_id: str | None,
    now: datetime,
) -> Message:
    """What the admin who clicked sees in place of the request."""
    who, number = f"<@{request.requester_id}>", escape(extension_number)
    if not decided_now:
        if request.state == "expired":
            text = f"{who}'s request for extension {number} expired; nothing changed."
        elif request.state == "withdrawn":
            text = f"{who} replaced this request with another one; nothing changed here."
        else:
            by = "You" if request.decided_by == decider_id else f"<@{request.decided_by}>"
            when = slack_date(request.decided_at or now, now=now)
            text = (
                f"{by} already {_state_words(request.state)} {who}'s request for extension "
                f"{number} ({when})."
            )
    elif request.state == "approved":
        text = f"✅ Approved: {who} is now linked to extension {number}"
        text += f" (moved from <@{displaced_id}>, who has been told)." if displaced_id else "."
    elif request.state == "stale":
        text = (
            f"Extension {number} changed hands since {who} asked, so nothing moved. "
            "They can ask again if they still need it."
        )
    else:
        text = f"You denied {who}'s request for extension {number}. They have been told."
    return message(text, [section(text)])


def move_prompt(
    subject_id: str, extension_number: str, *, holder_id: str, invoker_id: str, value: str
) -> Message:
    """An admin asked for an extension someone else holds: confirm before moving it."""
    number = escape(extension_number)
    to = "you" if subject_id == invoker_id else f"<@{subject_id}>"
    text = (
        f"Extension {number} is linked to <@{holder_id}>. Move it to {to}? "
        f"<@{holder_id}> will be told, and their status will stop following that phone."
    )
    return message(
        text,
        [
            section(text, block_id="link-move"),
            actions(
                button("Move it", LINK_MOVE_ACTION, value=value, style="primary"),
                button("Cancel", LINK_KEEP_ACTION, value=value),
                block_id="link-move-actions",
            ),
        ],
    )


def moved_reply(
    subject_id: str, extension_number: str, *, displaced_id: str, invoker_id: str
) -> Message:
    to = "you" if subject_id == invoker_id else f"<@{subject_id}>"
    text = (
        f"🔗 Done: extension {escape(extension_number)} moved from <@{displaced_id}> to {to}. "
        f"I've told <@{displaced_id}>."
    )
    return message(text, [section(text)])


def kept_reply(extension_number: str, holder_id: str) -> Message:
    text = f"OK: extension {escape(extension_number)} stays with <@{holder_id}>."
    return message(text, [section(text)])


def changed_hands_reply(extension_number: str) -> Message:
    text = (
        f"Extension {escape(extension_number)} changed hands since you asked, so I moved "
        "nothing. Run the command again to see who holds it now."
    )
    return message(text, [section(text)])


def stale_button_reply() -> Message:
    text = "That button no longer applies; run `/rcstatus link` again to see where things stand."
    return message(text, [section(text)])


def event_words(event: LinkEvent, viewer_id: str, number_of: ExtensionNumber) -> str:
    """One change to `viewer_id`'s link, told to them: who did what."""
    number = number_of(event.extension_id)
    extension = f"extension {escape(number)}" if number else "a RingCentral extension"
    actor, subject = f"<@{event.actor_id}>", f"<@{event.subject_id}>"
    if event.displaced_id == viewer_id and event.action == "approved":
        return (
            f"{actor} approved {subject}'s request for {extension}, which was linked to you, "
            "so your Slack status no longer follows that phone"
        )
    if event.displaced_id == viewer_id:
        return (
            f"{actor} moved {extension} from you to {subject}, "
            "so your Slack status no longer follows that phone"
        )
    if event.action == "approved":
        return f"{actor} approved your request: you're now linked to {extension}"
    if event.action == "denied":
        return f"{actor} didn't approve linking you to {extension}"
    if event.action == "unlinked":
        return f"{actor} unlinked you from {extension}"
    if event.action == "linked":
        return f"{actor} linked you to {extension}"
    return f"{actor} changed the link of {extension}"


def event_dm(event: LinkEvent, viewer_id: str, number_of: ExtensionNumber) -> Message:
    """The DM a person gets when someone else changed their link."""
    text = f"{event_words(event, viewer_id, number_of)}. Questions? Ask <@{event.actor_id}>."
    return message(text, [section(text)])


def stale_request_dm(request: LinkRequest, extension_number: str) -> Message:
    number = escape(extension_number)
    text = (
        f"Your request for extension {number} couldn't be completed: it changed hands before "
        f"an admin approved. Send `/rcstatus link {number}` again if you still need it."
    )
    return message(text, [section(text)])


def with_notices(
    reply: Message,
    notices: Sequence[LinkEvent],
    viewer_id: str,
    number_of: ExtensionNumber,
    *,
    now: datetime,
) -> Message:
    """`reply`, led by the changes to the viewer's link they have not heard of yet."""
    if not notices:
        return reply
    lines = [
        f"• {slack_date(event.at, now=now)}: {event_words(event, viewer_id, number_of)}."
        for event in notices
    ]
    text = "*Your extension link changed:*\n" + "\n".join(lines)
    return message(f"{text}\n{reply.text}", [section(text, block_id="link-news"), *reply.blocks])


def _state_words(state: str) -> str:
    return {"approved": "approved", "denied": "denied", "stale": "closed"}.get(state, state)
