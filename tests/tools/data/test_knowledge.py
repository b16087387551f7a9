"""Knowledge examples: every fact of every chunk asked about, answers from that chunk, a hold-out in another
phrasing, and a teacher on loopback that batches, caches, fails over to the rules and gets fact-checked."""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tools.data.chunk import Chunk
from tools.data.dedup import example_key
from tools.data.formats import normalize_record
from tools.data.knowledge import (
    CITED_KINDS,
    OFFLINE_KINDS,
    KnowledgeConfig,
    TeacherEndpoint,
    build_knowledge,
    chunk_id,
    cloze,
    document_aliases,
    embedded_question,
    estimate_examples,
    factual_question,
    find_fact,
    find_facts,
    knowledge_split,
    object_phrases,
    offline_examples,
    reworded_questions,
    split_sentences,
    subject_phrase,
    support,
    topical_question,
)
from tools.data.knowledge.build import facts_by_chunk
from tools.data.knowledge.questions import active_statement, cite
from tools.data.knowledge.statements import fronted_statements, restated_examples
from tools.data.split import write_jsonl
from tools.data.validate import validate_dataset
from tools.errors import ToolError
from tools.text import normalize_answer

PAGES = {
    "offices.md": ("Offices", [
        ("Offices > Riverside", "The Riverside office is the oldest of our three sites. It sits next to the old "
         "harbour. The Riverside office opens at 7:45 on weekdays. Visitors must sign in at reception. "
         "Parking for visitors costs €4.50 per day."),
        ("Offices > Hillcrest", "Hillcrest is our newest office and the quietest. The Hillcrest canteen closes "
         "at 14:00 on Fridays. Greta Lindqvist manages the Hillcrest building. The roof terrace holds 40 people."),
    ]),
    "leave.md": ("Leave", [
        ("Leave > Holidays", "Holidays are planned with your team lead. Employees receive 27 days of paid leave "
         "each year. Unused days expire on 31 March. A leave request is a form in the Tidewater portal that "
         "lists the days you will be away."),
        ("Leave > Sick leave", "Tell your team lead when you are ill. Sick leave must be reported before 9:30. "
         "After 3 days of sickness, a doctor's note is needed. Notes go to Oskar Brandt in human resources."),
    ]),
    "travel.md": ("Travel", [
        ("Travel > Booking", "Book trips through the travel desk. Dana Whitfield approves all travel requests. "
         "Train is preferred for trips under 600 kilometres. Receipts must be submitted within 30 days."),
    ]),
}
CHUNKS = [Chunk(text, source, title, heading, index, len(text.split()), source.removesuffix(".md"))
          for source, (title, sections) in PAGES.items() for index, (heading, text) in enumerate(sections)]
FAST = dict(teacher_retries=1, teacher_backoff_s=0.01, teacher_timeout_s=10.0)


def _user(example: dict[str, Any]) -> str:
    return next(m["content"] for m in example["messages"] if m["role"] == "user")


def _reply(example: dict[str, Any]) -> str:
    return example["messages"][-1]["content"]


def _claim(example: dict[str, Any]) -> str:
    """The reply without the page it cites (`According to the Leave page: `)."""
    return re.sub(r"^According to the .+? page: ", "", _reply(example))


def test_questions_are_made_from_the_fact_sentence_by_rule() -> None:
    fact = find_fact("The Riverside office opens at 7:45 on weekdays.")
    assert fact is not None and fact.span_kind == "time" and fact.value == "7:45"
    assert factual_question(fact, "") == "When does the Riverside office open on weekdays?"
    assert cloze(fact) == ("Fill in the blank: The Riverside office opens at ____ on weekdays.", "7:45")
    receipts = find_fact("Receipts must be submitted within 30 days.")
    assert factual_question(receipts, "") == "Within how many days must receipts be submitted?"  # type: ignore[arg-type]
    person = find_fact("Dana Whitfield approves all travel requests.")
    assert factual_question(person, "") == "Who approves all travel requests?"  # type: ignore[arg-type]
    # the verb before its object, a span ending the subject, a span inside it (the echo keeps its words in place)
    assert factual_question(find_fact("Heron runs the nightly tests at 02:10."), "Ask Heron.") \
        == "When does Heron run the nightly tests?"  # type: ignore[arg-type]
    assert factual_question(find_fact("Security at Norvane is run by Dana Okafor."), "") \
        == "Where is security run by Dana Okafor?"  # type: ignore[arg-type]
    danube = find_facts("The largest room, Danube, seats 24 people.")[-1]  # a name set off by commas
    assert factual_question(danube, "") == "What is the largest room called?"
    assert embedded_question(danube, "") == "what the largest room is called"
    assert factual_question(find_facts("Onboarding at Norvane lasts two weeks.")[-1], "") \
        == "Where does onboarding last two weeks?"
    assert [f.value for f in find_facts("Meeting rooms at Norvane are named after rivers.")] == ["Norvane"]
    tickets = find_fact("Train tickets above 180 euros need approval from Oskar Lind.")
    assert tickets is not None and tickets.value == "180 euros"
    assert factual_question(tickets, "") == "Train tickets above how much need approval from Oskar Lind?"
    flights = find_fact("Flights shorter than 4 hours are booked in economy.")
    assert embedded_question(flights, "") == "flights shorter than how many hours are booked in economy"  # type: ignore[arg-type]
    rule = find_fact("Visitors must sign in at reception.")
    assert rule is not None and rule.span_kind == "rule" and cloze(rule)[1] == "must"
    assert find_fact("Tell your team lead when you are ill.") is None  # no number, name, definition or rule
    # the subject a question about the sentence names, after an auxiliary or an -s verb; none when unclear
    assert subject_phrase("The reception desk opens at 7:40 every weekday.", "") == "the reception desk"
    assert subject_phrase("Flights shorter than 4 hours are booked in economy.", "") == "flights shorter than 4 hours"
    assert subject_phrase("Leave longer than 10 days needs two weeks of notice.", "") == "leave longer than 10 days"
    assert subject_phrase("Heron has 96 CPU cores.", "Access to Heron is granted.") == "Heron"
    assert subject_phrase("Fire drills take place on the second Tuesday of March.", "") is None
    # the other things a sentence names, so a question that starts from one of them finds the sentence; never
    # a value alone (its answer) or the subject again
    assert object_phrases("Heron runs the nightly tests at 02:10.", ["02:10"], "") == ["the nightly tests"]
    assert object_phrases("Parents receive 16 weeks of paid parental leave.", ["16 weeks"], "") == \
        ["paid parental leave"]
    assert object_phrases("Visitors park in the Gull garage on level 4.", ["4", "Gull"], "") == ["the Gull garage"]
    assert object_phrases("Fruit is delivered by the Orchard farm.", ["the Orchard farm"], "") == []
    assert object_phrases("The soup of the day is posted on the board called Ladle.", ["Ladle"], "") == ["the board"]
    heron = Chunk(text="The build server is named Heron. Heron runs the nightly tests at 02:10.", source="s.md",
                  title="Build server", heading="",
                  index=0, doc_id="d", n_tokens=12)
    about = {e["messages"][0]["content"]: e["messages"][-1]["content"]
             for e in offline_examples(heron, facts_by_chunk([heron], KnowledgeConfig())[0], KnowledgeConfig(),
                                       kinds=["about"])}
    # the thing asked about opens the answer: the sentence is restated to start there
    assert about["What does Build server say about the nightly tests?"] == \
        "The nightly tests are run by Heron at 02:10."
    assert about["What does Build server say about Heron?"] == "Heron runs the nightly tests at 02:10."
    # rewordings from the sentence's structure: passive to active (tense kept), stranded preposition, a name
    def reworded(sentence: str, value: str) -> list[str]:
        return reworded_questions(next(f for f in find_facts(sentence) if f.value == value), sentence)

    assert reworded("The office kitchen is cleaned by the Pelham company.", "Pelham") == [
        "Which company cleans the office kitchen?", "Who cleans the office kitchen?",
        "Which company is the office kitchen cleaned by?"]
    assert reworded("The office was opened by Ilse Varga in 2011.", "Ilse Varga") == ["Who opened the office?"]
    assert reworded("Expenses are approved by Dana Whitfield.", "Dana Whitfield") == ["Who approves expenses?"]
    assert reworded("The mail room is on floor 3.", "3") == [
        "Which floor is the mail room on?", "Where is the mail room?"]
    # a place is asked `Where`; a day or a page is not a place
    assert "Where are badges printed?" in reworded("Badges are printed in room B12.", "B12")
    assert "Where are lost badges reported?" in reworded("Lost badges are reported to the Falcon desk.", "Falcon")
    assert not any(q.startswith("Where") for q in reworded("New staff meet their buddy on day 3.", "3"))
    assert reworded("The travel desk is called Compass.", "Compass") == [
        "What is the name of the travel desk?", "What is the travel desk called?"]
    assert reworded("Build logs are kept for 45 days.", "45 days") == []  # nothing to reword: frames instead
    # a passive without an agent is asked as the reader asks it: a duty, where a thing goes, where it is done
    assert reworded("Receipts must be uploaded within 21 days.", "21 days") == [
        "How many days do I have to upload receipts?", "Within how many days do I have to upload receipts?"]
    assert reworded("Passwords must be changed every 90 days.", "90 days") == [
        "How often do I have to change passwords?", "Every how many days do I have to change passwords?"]
    assert reworded("Sick leave must be reported to Marta Ilves.", "Marta Ilves") == [
        "Who do I have to report sick leave to?"]
    assert reworded("Lost badges are reported to the Falcon desk.", "Falcon")[-2:] == [
        "Which desk do I report lost badges to?", "Who do I report lost badges to?"]
    assert "Where can I get laptops handed out?" in reworded("Laptops are handed out in room C4.", "C4")
    assert reworded("Forms must be signed by the manager within 5 days.", "5 days") == []  # the manager signs
    # a limit asked as a limit, whichever way the sentence puts it
    assert reworded("Leave longer than 10 days needs two weeks of notice.", "10 days") == [
        "Above how many days does leave need two weeks of notice?"]
    assert reworded("Flights shorter than 4 hours are booked in economy.", "4 hours") == [
        "Below how many hours are flights booked in economy?"]
    assert reworded("Train tickets above 180 euros need approval.", "180 euros") == [
        "Above how much do train tickets need approval?"]
    assert reworded("Hotel nights are refunded up to 135 euros.", "135 euros") == [
        "What is the most hotel nights are refunded?"]
    # a thing named mid-sentence, lower-case names too, is asked for as that thing and by its name
    assert reworded("The soup of the day is posted on the board called Ladle.", "Ladle") == [
        "Which board is the soup of the day posted on?", "What is the name of the board the soup of the day is "
        "posted on?", "What is the board called?", "Where is the soup of the day posted?"]
    lantern = find_facts("Failed builds are reported in the channel called lantern.")
    assert [(f.value, f.wh) for f in lantern] == [("lantern", "in which channel")]
    assert factual_question(lantern[0], "") == "In which channel are failed builds reported?"
    # a quantity's of-phrase belongs to what is asked; `has` as the verb is asked with `does ... have`
    parental = find_fact("Parents receive 16 weeks of paid parental leave.")
    assert parental is not None and parental.value == "16 weeks"
    assert factual_question(parental, "") == "How many weeks of paid parental leave do parents receive?"
    assert factual_question(find_fact("Heron has 96 CPU cores."), "Access to Heron is granted.") == \
        "How many CPU cores does Heron have?"  # type: ignore[arg-type]
    rng = random.Random(0)
    asked = {topical_question("When does the canteen close?", "Canteen", rng) for _ in range(20)}
    assert len(asked) > 1 and all("Canteen" in q and "when does the canteen close?" in q for q in asked)
    assert split_sentences("# Title\nOne two three four. Five six seven eight e.g. nine ten.\n- a list item "
                           "of words") == ["One two three four.", "Five six seven eight e.g. nine ten.",
                                           "a list item of words"]


def test_a_thing_a_document_names_is_asked_about_by_either_name_across_its_chunks() -> None:
    build_server = [
        Chunk("The build server is named Heron. It lives in the basement.", "build.md", "Build server", "", 0, 10,
              "build"),
        Chunk("Access to Heron is granted by the Kestrel team. The build server restarts at 03:00.", "build.md",
              "Build server", "Build server > Details", 1, 14, "build"),
        Chunk("The canteen app is named Heron.", "other.md", "Other", "", 0, 6, "other")]
    assert document_aliases(["The build server is named Heron.", "The mail robot is called Pip."]) == {
        "Heron": "the build server", "Pip": "the mail robot"}
    assert document_aliases(["The build server is named Heron.", "The test rig is named Heron."]) == {}
    result = build_knowledge(build_server)
    alias = {_user(e): e for e in result.examples if e["meta"]["kind"] == "alias"}
    # the name given in the first chunk reaches the second; each question is answered by its own sentence
    assert "Which team grants access to the build server?" in alias
    assert "When does Heron restart?" in alias
    assert _reply(alias["When does Heron restart?"]) == \
        "According to the Build server page: The build server restarts at 03:00."
    assert all(e["meta"]["doc_id"] == "build" for e in alias.values())  # another document's Heron is not this one
    assert not any("canteen app" in q for q in alias)
    # the sentence that gives the name is not reworded with it
    assert not any(e["meta"]["answer"] == "Heron" for e in alias.values())


def test_fronted_statements_open_a_sentence_with_each_other_thing_it_names() -> None:
    def fronted(sentence: str, *values: str) -> dict[str, list[str]]:
        return fronted_statements(sentence, list(values), "Access to Heron is granted.")  # a name mid-sentence

    assert fronted("Heron runs the nightly tests at 02:10.", "02:10") == {
        "the nightly tests": ["The nightly tests are run by Heron at 02:10."]}
    assert fronted("The Pelham company cleans the office kitchen.", "Pelham") == {
        "the office kitchen": ["The office kitchen is cleaned by the Pelham company."]}
    assert fronted("Visitors park in the Gull garage on level 4.", "4", "Gull") == {
        "the Gull garage": ["The Gull garage is where visitors park on level 4."]}
    assert fronted("Fire drills take place on the second Tuesday of March.", "March") == {
        "the second Tuesday": ["The second Tuesday of March is when fire drills take place."]}
    assert fronted("The soup of the day is posted on the board called Ladle.", "Ladle") == {"the board": [
        "The board called Ladle is where the soup of the day is posted.",
        "The board on which the soup of the day is posted is called Ladle."]}
    # nothing when no rule reopens the sentence: no object after an -s verb, no place or time after in/on/at
    assert fronted("Greta Lindqvist manages the Hillcrest building.", "Greta Lindqvist") == {
        "the Hillcrest building": ["The Hillcrest building is managed by Greta Lindqvist."]}  # a full name kept
    assert fronted("Lost badges are reported to the Falcon desk.", "Falcon") == {}
    assert fronted("The mail room is on floor 3.", "3") == {}


def test_restated_texts_give_each_fact_sentence_other_neighbours_and_other_forms() -> None:
    assert active_statement("The office kitchen is cleaned by the Pelham company.", "") == \
        "The Pelham company cleans the office kitchen."
    assert active_statement("Reports are approved by Alice Moore and Bob Ray.", "") == \
        "Alice Moore and Bob Ray approve reports."
    assert active_statement("Fruit is delivered by the Orchard farm every Monday.", "") == \
        "The Orchard farm delivers fruit every Monday."  # the adjunct stays last
    assert active_statement("The door is closed by Ann and Tom.", "") == "Ann and Tom close the door."
    assert active_statement("Bags are packed by hand.", "") is None  # `by hand` is no agent
    assert [active_statement(f"The plan is {verb} by Ann.", "") for verb in ("changed", "filed", "stored", "added",
                                                                            "cancelled", "planned")] == [
        f"Ann {verb} the plan." for verb in ("changes", "files", "stores", "adds", "cancels", "plans")]
    assert active_statement("The travel desk is called Compass.", "") is None
    page = Chunk("The build server is named Heron. Heron has 96 CPU cores. Access to Heron is granted by the "
                 "Kestrel team. Build logs are kept for 45 days.", "build.md", "Build server", "", 0, 30, "build")
    config = KnowledgeConfig(restatements=4)
    facts = facts_by_chunk([page], config)[0]
    texts = [_reply(e) for e in restated_examples(page, facts, config, document_aliases(split_sentences(page.text)))]
    assert len(texts) == 4 and len({_user(e) for e in restated_examples(page, facts, config)}) == 4
    sentences = list(dict.fromkeys(f.sentence for f in facts))
    orders = {tuple(sorted(range(len(sentences)), key=lambda n, t=t: t.find(sentences[n].split()[-2]))) for t in texts}
    assert len(orders) > 1  # not one order repeated
    joined = " ".join(texts)
    assert "The Kestrel team grants access to Heron." in joined or "The Kestrel team grants access to the build " \
        "server." in joined
    assert "The build server has 96 CPU cores." in joined  # the other name
    assert all(support(t, page.text) >= config.support_threshold for t in texts)
    assert restated_examples(page, facts, KnowledgeConfig(restatements=0)) == []
    with pytest.raises(ToolError, match="restatements must be 0 to 5"):
        KnowledgeConfig(restatements=8)
    assert "restated" in build_knowledge([page], config).by_kind


def test_offline_examples_cover_every_chunk_to_its_end_with_supported_valid_unique_answers(tmp_path: Path) -> None:
    result = build_knowledge(CHUNKS)
    examples = result.examples
    assert result.n_chunks == len(CHUNKS) and result.teacher["requests"] == 0
    assert set(result.by_kind) == {"factual", "topical", "about", "answer_first", "cloze", "paraphrase", "reworded",
                                   "section", "passage", "restated"}
    for chunk in CHUNKS:
        mine = [e for e in examples if e["meta"]["chunk_id"] == chunk_id(chunk)]
        facts = {e["meta"]["fact_id"] for e in mine if e["meta"]["kind"] == "cloze"}
        assert len(facts) >= 3, chunk.heading
        sentences = split_sentences(chunk.text)
        asked = {_claim(e) for e in mine if e["meta"]["kind"] == "factual"}
        # the last sentence and one in the middle are asked about, not only the opening
        assert sentences[-1] in asked and set(sentences[1:-1]) & asked, chunk.heading
        for example in mine:  # every answer comes from this chunk, never from another page's opening
            answer = _claim(example)
            # a question's answer names its page first; a blank, a section or a recital does not
            cited = _reply(example).startswith(f"According to the {chunk.title} page: ")
            assert cited == (example["meta"]["kind"] in CITED_KINDS), _reply(example)
            if example["meta"]["kind"] not in ("section", "restated", "about"):  # these reorder sentences
                assert answer in chunk.text or answer.split(". ", 1)[-1] in chunk.text, answer
            if example["meta"]["kind"] == "about":  # the sentence or its restating, the fact in it either way
                assert normalize_answer(example["meta"]["answer"]) in normalize_answer(answer), answer
            assert support(answer, chunk.text) >= KnowledgeConfig().support_threshold
    assert any("Greta Lindqvist" in _reply(e) for e in examples if e["meta"]["kind"] == "cloze")
    for example in examples:
        prompt, kind = example["messages"][0]["content"], example["meta"]["kind"]
        if kind in ("topical", "about"):  # the question names its page, so the fact is tied to it
            chunk = next(c for c in CHUNKS if chunk_id(c) == example["meta"]["chunk_id"])
            assert chunk.title in prompt, prompt
        if kind == "section":  # a sentence stating several facts is said once
            lines = split_sentences(_reply(example))
            assert len(lines) == len(set(lines)), _reply(example)
    assert all(normalize_record(e).valid for e in examples)
    assert len({example_key({"messages": e["messages"]}) for e in examples}) == len(examples)
    # the file the pipeline would write, meta included, passes the dataset validator without errors
    report = validate_dataset(write_jsonl(tmp_path / "knowledge.jsonl", examples))
    assert report.ok and report.n_valid == len(examples), report.issue_counts()
    assert build_knowledge(CHUNKS).examples == examples  # deterministic for a seed
    uncited = build_knowledge(CHUNKS, KnowledgeConfig(cite_title=False)).examples
    # a sentence that opens with another source is still given its page, and citing twice changes nothing
    assert cite("According to the law, badges are personal.", "Security") == \
        "According to the Security page: According to the law, badges are personal."
    assert cite(cite("Badges are personal.", "Security"), "Security") == cite("Badges are personal.", "Security")
    assert [_claim(e) for e in examples] == [_reply(e) for e in uncited]


def test_estimate_equals_the_number_built() -> None:
    for config in (KnowledgeConfig(), KnowledgeConfig(kinds=("cloze", "section"), paraphrases_per_fact=0),
                   KnowledgeConfig(paraphrases_per_fact=3, max_facts_per_chunk=2, seed=7)):
        assert estimate_examples(CHUNKS, config) == len(build_knowledge(CHUNKS, config).examples)
    assert estimate_examples(CHUNKS, KnowledgeConfig(kinds=("passage",))) == len(CHUNKS)


def test_holdout_asks_facts_all_over_the_corpus_in_a_phrasing_training_never_uses_for_them() -> None:
    examples = build_knowledge(CHUNKS).examples
    split = knowledge_split(examples, KnowledgeConfig(holdout_share=0.4))
    assert set(split.holdout_by_source()) == set(PAGES)
    assert {e["meta"]["chunk_id"] for e in split.holdout} == {chunk_id(c) for c in CHUNKS}
    openings = {split_sentences(c.text)[0] for c in CHUNKS}
    assert any(_reply(e) not in openings for e in split.holdout)
    train_prompts = [_user(e) for e in split.train]
    for held in split.holdout:
        fact = held["meta"]["fact_id"]
        trained = [e for e in split.train if e["meta"]["fact_id"] == fact]
        assert trained, "a held-out fact still trains in other forms"
        assert held["meta"]["kind"] not in {e["meta"]["kind"] for e in trained}
        assert not any(_user(held).lower() in prompt.lower() for prompt in train_prompts)
        assert held["meta"]["answer"] and held["meta"]["source"] in PAGES
    assert len(split.train) + len(split.val) + len(split.holdout) + split.dropped == len(examples)
    assert knowledge_split(examples, KnowledgeConfig(holdout_share=0.0)).holdout == []


def test_validation_questions_are_wordings_their_fact_never_trains_on() -> None:
    examples = build_knowledge(CHUNKS).examples
    split = knowledge_split(examples, KnowledgeConfig(validation_questions=6))
    no_val = knowledge_split(examples, KnowledgeConfig(validation_questions=0))
    reworded = [e for e in split.val if e["meta"]["kind"] == "reworded"]
    assert len(split.val) == 6 and len(reworded) >= 2, [e["meta"]["kind"] for e in split.val]
    assert split.reworded_val == len(reworded) and 0 < split.dropped_for_validation <= split.dropped
    assert len({e["meta"]["fact_id"] for e in split.val}) == 6, "one question per fact"
    assert {e["meta"]["source"] for e in split.val} == set(PAGES), "spread over every source"
    assert set(split.holdout_by_source()) == set(no_val.holdout_by_source())  # the hold-out does not change
    held_facts = {e["meta"]["fact_id"] for e in split.holdout}
    for question in reworded:  # facts without a reworded question give a rephrasing of a kind they keep
        fact = question["meta"]["fact_id"]
        assert fact not in held_facts
        kinds = {e["meta"]["kind"] for e in split.train if e["meta"]["fact_id"] == fact}
        assert "reworded" not in kinds and kinds & {"factual", "paraphrase"}, kinds  # still taught otherwise
        assert not any(_user(question).lower() in _user(e).lower() for e in split.train)
    assert len(split.train) + len(split.val) + len(split.holdout) + split.dropped == len(examples)


def test_rephrasing_validation_leaves_every_fact_training_on_every_kind_it_had() -> None:
    examples = build_knowledge(CHUNKS).examples
    config = KnowledgeConfig(validation_questions=6, validation_kind="")
    split = knowledge_split(examples, config)
    no_val = knowledge_split(examples, KnowledgeConfig(validation_questions=0, validation_kind=""))
    assert no_val.val == [] and len(split.val) == 6
    assert set(split.holdout_by_source()) == set(no_val.holdout_by_source())  # the hold-out does not change
    assert len({e["meta"]["fact_id"] for e in split.val}) == 6, "one question per fact"
    assert {e["meta"]["source"] for e in split.val} == set(PAGES), "spread over every source"
    train_keys = {_user(e) for e in split.train}
    for question in split.val:
        assert _user(question) not in train_keys
        fact = question["meta"]["fact_id"]
        kinds_before = {e["meta"]["kind"] for e in no_val.train if e["meta"]["fact_id"] == fact}
        assert kinds_before == {e["meta"]["kind"] for e in split.train if e["meta"]["fact_id"] == fact}
        assert question["meta"]["kind"] in config.holdout_kinds
    assert len(split.train) + len(split.val) == len(no_val.train)
    # a held-out fact loses its paraphrases, not the structural rewordings that teach it in other words
    text = "The office kitchen is cleaned by the Pelham company. Expenses are approved by Dana Whitfield."
    every = KnowledgeConfig(holdout_share=0.9, validation_questions=0)
    held = knowledge_split(build_knowledge([Chunk(text, "a.md", "A", "", 0, 14, "a")], every).examples, every)
    assert len(held.holdout) == 2 and {e["meta"]["kind"] for e in held.holdout} == {"paraphrase"}
    assert sorted(_user(e) for e in held.train if e["meta"]["kind"] == "reworded") == [
        "Which company cleans the office kitchen?", "Which company is the office kitchen cleaned by?",
        "Who approves expenses?", "Who cleans the office kitchen?"]
    # Without rephrasings there is nothing to spare: the caller falls back to a share of the examples.
    plain = build_knowledge(CHUNKS, KnowledgeConfig(paraphrases_per_fact=0)).examples
    assert knowledge_split(plain, KnowledgeConfig(paraphrases_per_fact=0, validation_kind="")).val == []


def test_config_rejects_nonsense_with_what_to_do() -> None:
    with pytest.raises(ToolError, match="Unknown knowledge kinds"):
        KnowledgeConfig(kinds=("trivia",))
    with pytest.raises(ToolError, match="holdout_share"):
        KnowledgeConfig(holdout_share=1.5)


def test_teacher_endpoint_prefers_ingrain_teacher_variables() -> None:
    assert TeacherEndpoint.from_env({}) is None
    endpoint = TeacherEndpoint.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1/", "OPENAI_API_KEY": "k",
                                         "INGRAIN_TEACHER_BASE_URL": "http://127.0.0.1:2/v1",
                                         "INGRAIN_TEACHER_MODEL": "big"})
    assert endpoint == TeacherEndpoint("http://127.0.0.1:2/v1", "k", "big")


UNSUPPORTED = "The moon is made of green cheese according to the astronomers."


def passage_teacher(messages: list[dict[str, Any]]) -> str:
    """A teacher that asks one question per sentence of the passage, plus one answer the passage never says."""
    passage = re.search(r"<<<\n(.*)\n>>>", messages[-1]["content"], re.S).group(1)  # type: ignore[union-attr]
    pairs = [{"kind": "factual", "question": f"What is said about {' '.join(s.split()[:4])} (as a teacher asks)?",
              "answer": s} for s in split_sentences(passage)]
    pairs.append({"kind": "inferential", "question": "What is the moon made of?", "answer": UNSUPPORTED})
    return "```json\n" + json.dumps({"pairs": pairs}) + "\n```"


def test_teacher_chunks_are_asked_concurrently_cached_and_fact_checked(tmp_path: Path) -> None:
    config = KnowledgeConfig(teacher_concurrency=4, **FAST)
    in_flight_at_first_answer: list[int] = []
    lock = threading.Lock()

    def teacher(messages: list[dict[str, Any]]) -> str:
        with lock:
            if not in_flight_at_first_answer:
                in_flight_at_first_answer.append(len(upstream.chat_requests()))
        return passage_teacher(messages)

    with FakeUpstream(answer=teacher, delay_s=0.5) as upstream:
        endpoint = TeacherEndpoint(upstream.url, "k", "teacher-large")
        first = build_knowledge(CHUNKS, config, teacher=endpoint, cache_dir=tmp_path / "cache")
        assert len(upstream.chat_requests()) == len(CHUNKS)
        # the server's delay holds each reply back: 4 requests were waiting together, so they were batched
        assert in_flight_at_first_answer[0] >= 2
        body = upstream.chat_requests()[0]["body"]
        assert body["model"] == "teacher-large" and "must be stated in the passage" in body["messages"][1]["content"]
        # every chunk is asked for 3 pairs per fact the rules find in it (at least 6): one question per fact
        # would teach fewer wordings than the rules alone
        asked = sorted(int(re.search(r"Write (\d+) question", r["body"]["messages"][1]["content"]).group(1))
                       for r in upstream.chat_requests())
        facts = [len(f) for f in facts_by_chunk(CHUNKS, config)]
        assert asked == sorted(max(6, 3 * n) for n in facts) and max(facts) >= 3
        assert "every fact it states 3 times" in body["messages"][1]["content"]

        second = build_knowledge(CHUNKS, config, teacher=endpoint, cache_dir=tmp_path / "cache")
        assert len(upstream.chat_requests()) == len(CHUNKS)  # the rerun made no request at all
    assert first.teacher == {"chunks": 5, "requests": 5, "cached": 0, "retries": 0, "fallback_chunks": 0}
    assert second.teacher["requests"] == 0 and second.teacher["cached"] == len(CHUNKS)
    assert second.examples == first.examples
    assert first.rejected["unsupported"] == len(CHUNKS)  # the cheese answer, once per chunk
    assert not any(UNSUPPORTED in _reply(e) for e in first.examples)
    teacher_made = [e for e in first.examples if e["meta"]["kind"] == "teacher"]
    assert {e["meta"]["chunk_id"] for e in teacher_made} == {chunk_id(c) for c in CHUNKS}
    assert all(e["meta"]["origin"] == "teacher" and e["meta"]["fact_id"].split("#")[0] == e["meta"]["chunk_id"]
               for e in teacher_made)
    # the teacher's questions add to the rule-made ones, and its wording is the one held out
    assert set(first.by_kind) == {"teacher", *OFFLINE_KINDS} - {"alias"}  # (no page names a thing twice)
    assert len(first.examples) > len(build_knowledge(CHUNKS, config).examples)
    split = knowledge_split(first.examples, config)
    held_kinds = [e["meta"]["kind"] for e in split.holdout]
    # facts the teacher asked about are held out in its wording; the others in a rule paraphrase
    assert held_kinds.count("teacher") > len(held_kinds) / 2 and set(held_kinds) <= {"teacher", "paraphrase"}
    held = {e["meta"]["fact_id"] for e in split.holdout}
    assert all({e["meta"]["kind"] for e in split.train if e["meta"]["fact_id"] == f} & {"factual", "cloze"}
               for f in held)  # a held-out fact still trains on the rule-made kinds
    # a config that lets the teacher replace kinds drops them where it answered (its cache still answers)
    replacing = build_knowledge(CHUNKS, replace(config, teacher_replaces=("factual", "paraphrase")), teacher=endpoint,
                                cache_dir=tmp_path / "cache")
    assert set(replacing.by_kind) == {"teacher", *OFFLINE_KINDS} - {"factual", "paraphrase", "alias"}
    assert estimate_examples(CHUNKS, config, teacher=True) >= len(first.examples)


def test_teacher_failures_fall_back_to_rules_for_those_chunks_only(tmp_path: Path) -> None:
    config = KnowledgeConfig(**FAST)

    def sometimes_confused(messages: list[dict[str, Any]]) -> str:
        if "Dana Whitfield" in messages[-1]["content"]:
            return "Sure! Here are some great questions about travel."  # no JSON at all
        return passage_teacher(messages)

    with FakeUpstream(answer=sometimes_confused) as upstream:
        result = build_knowledge(CHUNKS, config, teacher=TeacherEndpoint(upstream.url),
                                 cache_dir=tmp_path / "cache")
        assert len(upstream.chat_requests()) == len(CHUNKS) + 1  # the travel chunk was retried once
    assert result.teacher["fallback_chunks"] == 1 and result.teacher["retries"] == 1
    travel = [e for e in result.examples if e["meta"]["source"] == "travel.md"]
    assert {"factual", "paraphrase"} <= {e["meta"]["kind"] for e in travel}
    assert "teacher" not in {e["meta"]["kind"] for e in travel}
    assert "failed for 1 of 5 chunks" in result.notes[0] and "unusable reply" in result.notes[0]
    assert len(list((tmp_path / "cache").glob("*.json"))) == len(CHUNKS) - 1  # only good replies are cached

    offline = build_knowledge(CHUNKS, config)
    for failure in ({"fail_status": 500}, {"garbage": True}):
        with FakeUpstream(**failure) as upstream:  # type: ignore[arg-type]
            down = build_knowledge(CHUNKS, config, teacher=TeacherEndpoint(upstream.url),
                                   cache_dir=tmp_path / f"cache-{len(failure)}-{next(iter(failure))}")
            assert len(upstream.chat_requests()) == 2 * len(CHUNKS)
        assert down.teacher["fallback_chunks"] == len(CHUNKS) and down.examples == offline.examples


def test_real_chunks_of_a_markdown_page_each_get_questions_and_overlap_is_asked_once() -> None:
    from tools.data.chunk import ChunkConfig, chunk_document
    from tools.data.ingest import Document

    body = "\n\n".join(f"## {heading.split(' > ')[-1]}\n\n{text}" for heading, text in
                       PAGES["offices.md"][1] + PAGES["leave.md"][1])
    doc = Document("handbook", "Handbook", f"# Handbook\n\n{body}", "handbook.md")
    chunks = chunk_document(doc, ChunkConfig(max_tokens=24, overlap_tokens=8))
    result = build_knowledge(chunks)
    assert len(chunks) > 4 and result.n_facts >= len(chunks)
    fact_sentences = {s for c in chunks for s in split_sentences(c.text) if find_fact(s)}
    factual = [_claim(e) for e in result.examples if e["meta"]["kind"] == "factual"]
    # every fact sentence is asked about, once per fact it states, though the overlap repeats some
    assert set(factual) == fact_sentences and len(factual) == result.n_facts
    assert "Notes go to Oskar Brandt in human resources." in factual  # the document's last sentence
    assert all(e["meta"]["heading"].startswith("Handbook > ") for e in result.examples)
    assert estimate_examples(chunks) == len(result.examples)


def test_sentences_cut_by_a_chunk_window_are_not_asked_about() -> None:
    assert split_sentences("weekdays. Visitors must sign in at reception. Parking costs €4.50 per day. Staff "
                           "must wear their") == ["Visitors must sign in at reception.", "Parking costs €4.50 per day."]
    assert split_sentences("Office hours are nine to five") == ["Office hours are nine to five"]


def test_a_sentence_with_two_facts_gets_questions_about_each() -> None:
    facts = find_facts("Visitors park in the Gull garage on level 4.", "c#3", "c")
    assert [(f.fact_id, f.value) for f in facts] == [("c#3", "4"), ("c#3.1", "Gull")]
    assert {factual_question(f, "") for f in facts} == {"Visitors park in the Gull garage on which level?",
                                                        "In which garage do visitors park on level 4?"}
    (company,) = find_facts("The office kitchen is cleaned by the Pelham company.")
    assert factual_question(company, "") == "By which company is the office kitchen cleaned?"
    assert cloze(company) == ("Fill in the blank: The office kitchen is cleaned by the ____ company.", "Pelham")
    (month,) = find_facts("Fire drills take place on the second Tuesday of March.")
    assert month.value == "March" and factual_question(month, "").endswith("of which month?")
    assert [f.value for f in find_facts("Heron has 96 CPU cores.")] == ["96 CPU cores"]
