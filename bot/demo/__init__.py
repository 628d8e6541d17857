"""`rcstatus-bot demo`: the real bot between both simulators, under a scripted office workload."""

from bot.demo.runner import DEFAULT_TIME_SCALE, DEFAULT_USERS, DemoOptions, run_demo

__all__ = ["DEFAULT_TIME_SCALE", "DEFAULT_USERS", "DemoOptions", "run_demo"]
