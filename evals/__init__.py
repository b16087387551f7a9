"""Evaluation: hold-out metrics, style conformance, regression suite, verdicts and reports."""
