"""The Slack simulator: Web API, Socket Mode, OAuth and control API, assembled in `server`."""

from bot.sim.slack.server import SlackSimulator

__all__ = ["SlackSimulator"]
