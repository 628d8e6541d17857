"""`rcstatus-bot api-key create|list|revoke`: keys managed from the command line, printed once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from bot.api.keys import ApiKeyError, ApiKeys
from bot.errors import BotError
from bot.store import ApiKeyRecord, Store


async def create_key(
    store: Store, name: str, scopes: Sequence[str], out: TextIO, *, as_json: bool
) -> int:
    try:
        record, key = await ApiKeys(store).create(name, scopes)
    except ApiKeyError as exc:
        raise BotError(f"cannot create the key: {exc}") from exc
    if as_json:
        shown = {"id": record.id, "name": record.name, "key": key, "scopes": list(record.scopes)}
        out.write(json.dumps(shown) + "\n")
    else:
        out.write(
            f"Created API key {record.id} ({record.name}; {', '.join(record.scopes)}).\n"
            f"{key}\n"
            "This is the only time the key is shown: store it now. "
            "Send it as 'Authorization: Bearer KEY'.\n"
        )
    return 0


async def list_keys(store: Store, out: TextIO, *, as_json: bool) -> int:
    records = await ApiKeys(store).list()
    if as_json:
        out.write(json.dumps([_summary(r) for r in records]) + "\n")
        return 0
    if not records:
        out.write("No API keys yet: rcstatus-bot api-key create --name NAME --scope SCOPE\n")
    for record in records:
        state = "active" if record.active else f"revoked {record.revoked_at:%Y-%m-%d %H:%M} UTC"
        out.write(
            f"{record.id}  {record.name}  {' '.join(record.scopes)}  "
            f"created {record.created_at:%Y-%m-%d %H:%M} UTC  {state}\n"
        )
    return 0


async def revoke_key(store: Store, key_id: str, out: TextIO) -> int:
    record = await ApiKeys(store).revoke(key_id)
    if record is None:
        raise BotError(f"there is no API key {key_id!r}; rcstatus-bot api-key list shows them")
    out.write(f"Revoked API key {record.id} ({record.name}); it stops working at once.\n")
    return 0


def _summary(record: ApiKeyRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "name": record.name,
        "scopes": list(record.scopes),
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }
