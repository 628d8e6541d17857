"""Simulators of RingCentral and Slack for tests, benchmarks and the demo."""
