"""Replicas on one PostgreSQL: the bus between them and the views followers keep from it."""
