"""The availability API for other systems: keys, the people resource, the gate, under /api/v1."""
