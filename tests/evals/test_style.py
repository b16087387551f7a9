"""Style profiles learned from synthetic target sets, and the checks scoring hand-made outputs."""

from __future__ import annotations

import json

import pytest

from evals.style import StyleConfig, style_profile
from tests.evals.style_sets import bulleted_summaries, json_objects, one_line_answers, unstructured
from tools.errors import ToolError

CONFORMING_SUMMARY = ("Summary: A study of sparse routing.\n\nKey points:\n- Faster by 3%.\n- Fewer steps.\n"
                      "- Code is public.\n\n— Wiki bot")


def test_bulleted_summaries_learn_labels_bullets_and_sign_off():
    profile = style_profile(bulleted_summaries())
    names = {c.name for c in profile.checks}
    assert {"label:Summary", "label:Key points", "label_order", "bullets", "bullet_count", "closing",
            "paragraphs", "no_boilerplate"} <= names
    assert profile.properties["bullets"] == {"marker": "-", "count_range": [3, 4]}
    assert profile.has_structure
    assert all(profile.score(CONFORMING_SUMMARY).values()), profile.score(CONFORMING_SUMMARY)


def test_bulleted_checks_reject_what_breaks_the_style():
    profile = style_profile(bulleted_summaries())
    prose = profile.score("This paper is about sparse routing. It is faster and the code is public.")
    assert not prose["label:Summary"] and not prose["bullets"] and not prose["closing"]
    too_many = CONFORMING_SUMMARY.replace("- Code is public.", "\n".join(f"- Point {i}." for i in range(6)))
    scores = profile.score(too_many)
    assert not scores["bullet_count"] and scores["bullets"] and scores["label:Summary"]
    swapped = "Key points:\n- a\n- b\n- c\n\nSummary: later.\n\n— Wiki bot"
    assert not profile.score(swapped)["label_order"]
    starred = CONFORMING_SUMMARY.replace("- ", "* ")
    assert not profile.score(starred)["bullets"]
    assert not profile.score(CONFORMING_SUMMARY + "\nAs an AI, I hope this helps.")["no_boilerplate"]


def test_json_targets_learn_validity_and_required_keys():
    profile = style_profile(json_objects())
    assert [c.name for c in profile.checks if c.kind == "structure"] == ["json_valid", "json_keys"]
    assert profile.properties["json_keys"] == ["tags", "title", "year"]
    assert all(profile.score('{"title": "x", "year": 1, "tags": [], "extra": true}').values())
    assert all(profile.score('```json\n{"title": "x", "year": 1, "tags": []}\n```').values())
    missing = profile.score('{"title": "x"}')
    assert missing["json_valid"] and not missing["json_keys"]
    broken = profile.score('{"title": "x", "year": 1,')
    assert not broken["json_valid"] and not broken["json_keys"]


def test_one_line_answers_learn_single_line():
    profile = style_profile(one_line_answers())
    assert "one_line" in {c.name for c in profile.checks}
    assert profile.score("Paris.")["one_line"]
    assert not profile.score("Paris.\nIt is the capital of France.")["one_line"]


def test_unstructured_targets_yield_no_invented_checks():
    profile = style_profile(unstructured())
    assert profile.checks == [] and not profile.has_structure
    assert "No consistent structure" in profile.describe()
    assert profile.pass_rate(["anything"]) == {"per_check": {}, "overall": None, "all_pass": None, "n": 1}
    assert profile.conformance("anything") is None


def test_too_few_targets_say_so():
    profile = style_profile(["Summary: one.", "Summary: two."])
    assert profile.checks == [] and "too few" in profile.notes[0]


def test_support_threshold_tolerates_one_outlier_in_ten():
    targets = [f"Answer: item {i} is fine." for i in range(10)]
    assert "label:Answer" in {c.name for c in style_profile(targets).checks}
    one_off = [*targets[:9], "item 9 is fine."]
    check = next(c for c in style_profile(one_off).checks if c.name == "label:Answer")
    assert check.support == pytest.approx(0.9)
    two_off = [*targets[:8], "item 8 is fine.", "item 9 is fine."]
    assert "label:Answer" not in {c.name for c in style_profile(two_off).checks}


def test_pass_rate_reports_per_check_overall_and_all_pass():
    profile = style_profile(bulleted_summaries())
    rates = profile.pass_rate([CONFORMING_SUMMARY, "plain prose without structure"])
    assert rates["all_pass"] == 0.5 and rates["n"] == 2
    assert rates["per_check"]["label:Summary"] == 0.5
    assert 0.5 < rates["overall"] < 1.0


def test_profile_serialises_and_describes_itself():
    profile = style_profile(bulleted_summaries())
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["has_structure"] and data["checks"][0]["support"] == 1.0
    text = profile.describe()
    assert "Summary:" in text and "(100% of targets)" in text


def test_config_validation_explains_the_fix():
    with pytest.raises(ToolError, match="min_support"):
        StyleConfig(min_support=0.2)


def test_an_outlier_does_not_stretch_a_learned_count_range():
    targets = [f"Key points:\n- a{i}\n- b{i}\n- c{i}" for i in range(10)]
    targets.append("Key points:\n" + "\n".join(f"- item {i}" for i in range(9)))
    profile = style_profile(targets)
    assert profile.properties["bullets"]["count_range"] == [3, 3]
    count = next(c for c in profile.checks if c.name == "bullet_count")
    assert count.support == pytest.approx(10 / 11)


def test_a_shared_last_bullet_is_not_taken_for_a_sign_off():
    profile = style_profile(["Summary: short.\n\nKey points:\n- one\n- two\n- three"] * 5)
    assert "closing" not in {c.name for c in profile.checks}
    assert {"label:Summary", "bullets", "bullet_count"} <= {c.name for c in profile.checks}
