"""Real helpers that tests, benches and end-to-end checks share (no mocks: each one serves or computes)."""
