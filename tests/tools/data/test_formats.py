"""Format detection and normalisation to `{"messages": [...]}`, and the checks on turn order."""

from __future__ import annotations

import pytest

from tools.data.formats import check_turns, detect_format, normalize_record

EXPECTED = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize(("record", "fmt"), [
    ({"messages": EXPECTED}, "openai"),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}, "sharegpt"),
    ({"instruction": "Hi", "output": "Hello!"}, "alpaca"),
    ({"instruction": "Hi", "input": "", "output": "Hello!"}, "alpaca"),
    ({"prompt": "Hi", "completion": "Hello!"}, "completion"),
    ({"prompt": [EXPECTED[0]], "completion": [EXPECTED[1]]}, "completion"),
    # Columnar sources fill absent columns with None; those must not decide the format.
    ({"messages": EXPECTED, "text": None, "prompt": None}, "openai"),
])
def test_each_chat_format_normalises_to_the_same_messages(record: dict, fmt: str) -> None:
    result = normalize_record(record, line=7)
    assert result.format == fmt == detect_format(record)
    assert result.example == {"messages": EXPECTED}
    assert result.valid and result.issues == []


def test_sharegpt_maps_roles_and_lifts_a_top_level_system_prompt() -> None:
    result = normalize_record({"system": "Be brief.", "conversations": [
        {"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
        {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]})
    assert [m["role"] for m in result.example["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert result.example["messages"][0]["content"] == "Be brief."
    assert result.valid


def test_alpaca_joins_instruction_and_input_and_keeps_a_system_field() -> None:
    result = normalize_record({"instruction": "Translate", "input": "bonjour", "output": "hello",
                               "system": "You translate."})
    assert result.example["messages"] == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate\n\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]


def test_openai_content_parts_are_joined_into_text() -> None:
    result = normalize_record({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello!"}]})
    assert result.example["messages"][0]["content"] == "Hi there"


def test_text_records_stay_raw_text_examples() -> None:
    result = normalize_record({"text": "Once upon a time."})
    assert result.format == "text"
    assert result.example == {"text": "Once upon a time."}
    assert result.valid


def test_unknown_format_names_the_keys_seen_and_the_formats_accepted() -> None:
    result = normalize_record({"question": "q", "answer": "a", "meta": None}, line=12)
    assert result.format is None and not result.valid
    [problem] = result.issues
    assert problem.code == "unknown_format" and problem.line == 12 and problem.severity == "error"
    assert "['answer', 'question']" in problem.message
    for accepted in ("messages", "conversations", "instruction", "prompt", "text"):
        assert accepted in problem.message


def test_non_objects_and_wrong_field_types_are_errors() -> None:
    assert normalize_record([1, 2], line=3).issues[0].code == "not_an_object"
    assert normalize_record({"messages": "hi"}).issues[0].code == "bad_field"
    assert normalize_record({"messages": [{"role": "user", "content": 5}]}).issues[0].code == "bad_field"
    assert normalize_record({"instruction": "x", "output": 3}).issues[0].code == "bad_field"
    assert normalize_record({"prompt": "x", "completion": ["y"]}).issues[0].code == "bad_field"


def test_unknown_roles_are_reported_per_format() -> None:
    openai = normalize_record({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"},
                                            {"role": "assistant", "content": "c"}]}, line=4)
    sharegpt = normalize_record({"conversations": [{"from": "human", "value": "a"},
                                                   {"from": "bot", "value": "b"}]}, line=5)
    assert [(i.code, i.line) for i in openai.issues if i.code == "unknown_role"] == [("unknown_role", 4)]
    assert "'tool'" in openai.issues[0].message
    assert any(i.code == "unknown_role" and "'bot'" in i.message for i in sharegpt.issues)
    assert not openai.valid and not sharegpt.valid


def _codes(roles_contents: list[tuple[str, str]]) -> list[str]:
    return [i.code for i in check_turns([{"role": r, "content": c} for r, c in roles_contents])]


def test_turn_checks() -> None:
    assert _codes([("system", "s"), ("user", "u"), ("assistant", "a")]) == []
    assert _codes([("user", "u")]) == ["missing_assistant"]
    assert _codes([("user", "u"), ("assistant", " ")]) == ["empty_assistant"]
    assert _codes([("user", ""), ("assistant", "a")]) == ["empty_turn"]
    assert _codes([("system", ""), ("user", "u"), ("assistant", "a")]) == ["empty_system"]
    assert _codes([("assistant", "a"), ("user", "u"), ("assistant", "b")]) == ["turn_order"]
    assert _codes([("user", "u"), ("user", "v"), ("assistant", "a")]) == ["turn_order"]
    assert _codes([("user", "u"), ("assistant", "a"), ("assistant", "b")]) == ["turn_order"]
    assert _codes([("user", "u"), ("system", "s"), ("assistant", "a")]) == ["turn_order"]
    assert _codes([("user", "u"), ("assistant", "a"), ("user", "v")]) == ["unanswered_turn"]


def test_turn_order_message_names_the_turns() -> None:
    [problem] = check_turns([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                             {"role": "user", "content": "v"}, {"role": "assistant", "content": "a"}], line=9)
    assert problem.line == 9 and "turns 2 and 3 are both user turns" in problem.message
