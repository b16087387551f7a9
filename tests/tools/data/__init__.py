"""Tests for tools/data/."""
