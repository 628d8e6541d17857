"""RingCentral side: auth, directory, presence snapshot and WebSocket subscription."""
