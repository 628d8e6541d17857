"""The RingCentral simulator's switches: where the guide and practice disagree, offer both."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, cast

PresenceBodies = Literal["full", "partial"]
PRESENCE_BODIES: Final = ("full", "partial")
# A delay longer than the gateway's absolute timeout (24 h) could never end on a live socket.
_MAX_REPLAY_DELAY: Final = 86_400.0


class SwitchError(ValueError):
    """A switch was given a value it does not take; the message names the switch."""


@dataclass(slots=True)
class Switches:
    """Read on every use, so a change through the control API applies to the next event or token.

    Durations are simulated seconds, divided by the time scale like every other duration.
    The defaults are what RingCentral's developer guide shows (reference §4.2, §5.2, §5.6).
    """

    presence_bodies: PresenceBodies = "full"
    """`full`: every notification carries the extension's whole presence, as every sample in the
    guide does. `partial`: only the fields that changed, plus extensionId and sequence (SPEC
    marks every field optional and `telephonyStatus` "returned if changed")."""
    ws_token_ttl: float = 30.0
    """`expires_in` of a WebSocket token: 30 s in the guide's sample, 60 s in a captured fixture,
    600 s according to RingCentral's own WebSocket library."""
    ws_token_single_use: bool = True
    """The guide says a WebSocket token is "good for a single-use only"; RingCentral's own
    library reuses one for 80 % of `expires_in`. False lets a token open any number of sockets
    until it expires."""
    replay_delay: float = 0.0
    """How long after a Successful recovery's ConnectionDetails the missed notifications are
    replayed. Live notifications are not held back meanwhile, so they can overtake the replay
    (as out-of-order delivery does on RingCentral); sequences put them right."""

    def __post_init__(self) -> None:
        self.update(self.as_dict())

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply every change or none: each is checked before any is set."""
        checked = {name: self._checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def _checked(name: str, value: Any) -> Any:
        if name == "presence_bodies":
            if value not in PRESENCE_BODIES:
                raise SwitchError("presence_bodies must be 'full' or 'partial'")
            return cast(PresenceBodies, value)
        if name == "ws_token_single_use":
            if not isinstance(value, bool):
                raise SwitchError("ws_token_single_use must be true or false")
            return value
        if name in ("ws_token_ttl", "replay_delay"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SwitchError(f"{name} must be a number of seconds")
            seconds = float(value)
            if name == "ws_token_ttl" and not (0 < seconds < math.inf):
                raise SwitchError("ws_token_ttl must be positive")
            if name == "replay_delay" and not (0 <= seconds <= _MAX_REPLAY_DELAY):
                raise SwitchError(f"replay_delay must be between 0 and {_MAX_REPLAY_DELAY:g}")
            return seconds
        raise SwitchError(f"unknown switch {name!r}")
