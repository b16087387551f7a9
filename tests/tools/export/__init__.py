"""Tests for tools/export/."""
