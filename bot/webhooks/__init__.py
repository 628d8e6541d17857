"""Signed webhooks for other systems: endpoints, the delivery outbox and its dispatcher."""
