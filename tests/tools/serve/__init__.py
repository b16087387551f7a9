"""Tests for tools/serve/."""
