"""Tests for tools/train/."""
