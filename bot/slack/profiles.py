"""Writing one person's Slack status: `users.profile.set` with their own token or an admin's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import SlackStatus
from bot.slack.scheduler import SendOutcome
from bot.store.fence import ensure_leading

log = logging.getLogger(__name__)

# Errors after which this person's token will never work again until they reconnect.
TOKEN_GONE: Final = frozenset(
    {"token_revoked", "invalid_auth", "account_inactive", "token_expired", "not_authed"}
)
# Errors retrying cannot fix; the person's pending write is dropped and logged.
PERMANENT: Final = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "too_long",
        "invalid_profile",
        "invalid_emoji_not_allowed",
        "profile_set_failed",
        "cannot_update_admin_user",
        "not_admin",
        "user_not_found",
        "is_bot",
    }
)


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """How one write ended: the outcome the scheduler needs, and whether the token is gone."""

    outcome: SendOutcome
    token_lost: bool = False


class ProfileWriter(Protocol):
    """The write step: sets one person's status and says how it went; never raises for Slack."""

    async def can_write(self, user_id: str) -> bool:
        """Whether a token to write this person's status is known."""
        ...

    async def set_status(self, user_id: str, status: SlackStatus) -> ProfileWrite: ...

    def forget(self, user_id: str) -> None:
        """The person's token changed (revoked or reconnected): look it up again next time."""
        ...


class TokenSource(Protocol):
    async def user_token(self, user_id: str) -> str | None: ...
    def forget(self, user_id: str) -> None: ...
    def mark_gone(self, user_id: str) -> None: ...


class SlackProfiles:
    """`users.profile.set` through each person's own token, or one admin token for everyone."""

    def __init__(
        self, *, client: AsyncWebClient, tokens: TokenSource, admin_token: str | None = None
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._admin_token = admin_token

    async def can_write(self, user_id: str) -> bool:
        return self._admin_token is not None or await self._tokens.user_token(user_id) is not None

    def forget(self, user_id: str) -> None:
        self._tokens.forget(user_id)

    async def set_status(self, user_id: str, status: SlackStatus) -> ProfileWrite:
        token = self._admin_token or await self._tokens.user_token(user_id)
        if token is None:
            return ProfileWrite(SendOutcome.GONE, token_lost=True)
        profile = {
            "status_text": status.text,
            "status_emoji": status.emoji,
            "status_expiration": status.expiration,
        }
        # An admin token names whose profile it sets; a person's own token sets their own.
        extra = {"user": user_id} if self._admin_token else {}
        ensure_leading()
        try:
            await self._client.users_profile_set(token=token, profile=profile, **extra)
        except SlackApiError as exc:
            return self._failed(user_id, exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("users.profile.set for %s: %s; will retry", user_id, type(exc).__name__)
            return ProfileWrite(SendOutcome.RETRY)
        # Ids and the expiry only: the status text is the person's own words.
        log.info(
            "status %s for %s (expires at %d)",
            "cleared" if status.is_empty() else "written",
            user_id,
            status.expiration,
        )
        return ProfileWrite(SendOutcome.OK)

    def _failed(self, user_id: str, exc: SlackApiError) -> ProfileWrite:
        status = exc.response.status_code
        error = str(exc.response.get("error") or "")
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
            return ProfileWrite(SendOutcome.rate_limited(retry_after))
        if status >= 500:
            return ProfileWrite(SendOutcome.RETRY)
        if error in TOKEN_GONE:
            log.warning("%s's Slack token no longer works (%s)", user_id, error)
            self._tokens.mark_gone(user_id)
            return ProfileWrite(SendOutcome.GONE, token_lost=True)
        log.warning("users.profile.set for %s refused: %s", user_id, error or status)
        if error in PERMANENT:
            return ProfileWrite(SendOutcome.GONE)
        return ProfileWrite(SendOutcome.RETRY)
