"""Tests for tools/sweep/."""
