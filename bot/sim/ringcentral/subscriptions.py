"""Subscriptions on the simulated gateway: request checks, event filters, SubscriptionInfo."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl

from bot.sim.ringcentral.directory import Directory
from bot.sim.ringcentral.wire import error_body, iso_millis

SUBSCRIPTION_PATH: Final = "/restapi/v1.0/subscription"
SUBSCRIPTION_EXPIRES_IN: Final = 86399
_ACCOUNT_FILTER = re.compile(r"/restapi/v1\.0/account/(~|\d+)(/.*)?")
_EXTENSION_PRESENCE = re.compile(r"/extension/(~|\d+)/presence")
_PRESENCE_QUERY_KEYS: Final = frozenset({"detailedTelephonyState", "sipData"})


@dataclass(slots=True)
class FilterSet:
    """Event filters resolved against the account: what to deliver, and what was refused."""

    rewritten: list[str] = field(default_factory=list)
    disabled: list[dict[str, str]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    # None: no account-level presence filter; otherwise whether it asked for detailed telephony.
    account_presence: bool | None = None
    extension_presence: dict[int, bool] = field(default_factory=dict)
    extension_list: bool = False

    def invalid_error(self) -> dict[str, Any]:
        return error_body("SUB-508", f"Invalid event filters: [{', '.join(self.invalid)}]")


@dataclass(slots=True)
class Subscription:
    subscription_id: str
    created: datetime
    expires_in: int
    filters: FilterSet

    def info(self) -> dict[str, Any]:
        """SubscriptionInfo as the 2025 capture shows it (reference §5.4)."""
        expiration = self.created + timedelta(seconds=self.expires_in)
        info: dict[str, Any] = {
            "uri": f"{SUBSCRIPTION_PATH}/{self.subscription_id}",
            "id": self.subscription_id,
            "creationTime": iso_millis(self.created),
            "status": "Active",
            "eventFilters": list(self.filters.rewritten),
            "expirationTime": iso_millis(expiration),
            "expiresIn": self.expires_in,
            "deliveryMode": {"transportType": "WebSocket", "encryption": False},
        }
        if self.filters.disabled:
            info["disabledFilters"] = list(self.filters.disabled)
        return info


def request_problem(body: Any, *, require_delivery: bool) -> dict[str, Any] | None:
    """The error body for a malformed create/update request, or None if it is well formed."""
    if not isinstance(body, dict):
        return _invalid_parameter("eventFilters")
    filters = body.get("eventFilters")
    if not isinstance(filters, list) or not filters or not all(isinstance(f, str) for f in filters):
        return _invalid_parameter("eventFilters")
    delivery = body.get("deliveryMode")
    if delivery is None and not require_delivery:
        return None
    if not isinstance(delivery, dict) or delivery.get("transportType") != "WebSocket":
        return _invalid_parameter("deliveryMode.transportType")
    return None


def _invalid_parameter(name: str) -> dict[str, Any]:
    return error_body("CMN-101", f"Parameter [{name}] value is invalid", parameter=name)


def _disabled(raw: str, reason: str, message: str) -> dict[str, str]:
    return {"filter": raw, "reason": reason, "message": message}


def resolve_filters(filters: list[str], directory: Directory) -> FilterSet:
    """Check each filter: unknown shapes are invalid (the request fails with SUB-508); known shapes
    that cannot apply (another account, unknown user, no presence) go to disabledFilters."""
    resolved = FilterSet()
    account = directory.account_id
    for raw in filters:
        path, _, query = raw.partition("?")
        params = parse_qsl(query, keep_blank_values=True)
        match = _ACCOUNT_FILTER.fullmatch(path)
        rest = (match.group(2) or "") if match else ""
        per_extension = _EXTENSION_PRESENCE.fullmatch(rest)
        is_presence = rest == "/presence" or per_extension is not None
        allowed_keys = _PRESENCE_QUERY_KEYS if is_presence else frozenset()
        if (
            match is None
            or not (is_presence or rest == "/extension")
            or any(key not in allowed_keys for key, _ in params)
        ):
            resolved.invalid.append(raw)
            continue
        if match.group(1) not in ("~", str(account)):
            resolved.disabled.append(
                _disabled(
                    raw,
                    "SUB-406",
                    "Not allowed subscribe for events to extensions of other account",
                )
            )
            continue
        detailed = any(k == "detailedTelephonyState" and v.lower() == "true" for k, v in params)
        if rest == "/extension":
            resolved.extension_list = True
        elif per_extension is None:
            resolved.account_presence = bool(resolved.account_presence) or detailed
        else:
            wanted = per_extension.group(1)
            extension_id = directory.owner_id if wanted == "~" else int(wanted)
            extension = directory.get(extension_id)
            if extension is None:
                resolved.disabled.append(
                    _disabled(raw, "SUB-408", "Not allowed subscribe for unknown user")
                )
                continue
            if not extension.has_presence:
                resolved.disabled.append(
                    _disabled(
                        raw, "SUB-402", "Presence feature is disabled for this extension type"
                    )
                )
                continue
            # Detailed wins over basic for the same extension.
            earlier = resolved.extension_presence.get(extension_id, False)
            resolved.extension_presence[extension_id] = earlier or detailed
            rest = f"/extension/{extension_id}/presence"
        rewritten = f"/restapi/v1.0/account/{account}{rest}"
        resolved.rewritten.append(f"{rewritten}?{query}" if query else rewritten)
    return resolved
