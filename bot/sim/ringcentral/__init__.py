"""The RingCentral simulator: REST, WebSocket gateway and control API, assembled in `server`."""

from bot.sim.ringcentral.server import RingCentralSimulator

__all__ = ["RingCentralSimulator"]
