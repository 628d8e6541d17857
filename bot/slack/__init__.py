"""Slack side: Bolt app, status writer, scheduler, notifier and Block Kit."""
