"""The grounding index: real WordLlama vectors (from its wheel) over a made-up handbook's sentences."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.handbook import PAGES
from tools.data.chunk import Chunk
from tools.errors import ToolError
from tools.grounding import HEADER, GroundingConfig, GroundingIndex, load_grounding, question_of


def page(text: str, title: str, source: str = "page.md") -> Chunk:
    return Chunk(text=text, source=source, title=title, heading=title, index=0, n_tokens=len(text.split()),
                 doc_id=source)


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    return [page(" ".join(s for s, _, _ in facts), title, f"page-{n}.md") for n, (title, facts) in enumerate(PAGES)]


@pytest.fixture(scope="module")
def index(chunks, tmp_path_factory) -> GroundingIndex:
    return GroundingIndex.build(chunks, tmp_path_factory.mktemp("wordllama"))


def test_every_sentence_is_a_passage_with_its_page(index) -> None:
    assert len(index.passages) == sum(len(facts) for _, facts in PAGES) == index.vectors.shape[0]
    assert {"title": "Leave", "text": "Unused leave expires on 31 March.", "source": "page-3.md"} in index.passages
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-3)


def test_questions_in_other_words_find_their_sentence(index) -> None:
    asked = [(q, s) for _, facts in PAGES for s, q, _ in facts if q]
    hits = index.search([q for q, _ in asked])
    top1 = sum(index.passages[found[0][0]]["text"] == s for found, (_, s) in zip(hits, asked, strict=True))
    top_k = sum(s in {index.passages[j]["text"] for j, _ in found} for found, (_, s) in zip(hits, asked, strict=True))
    # WordLlama puts the fact's own sentence first for 36 of these 40 questions and among the three for 39.
    assert top1 >= 34 and top_k >= 38


def test_a_close_request_gets_excerpts_and_a_general_one_does_not(index) -> None:
    chat = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "When does unused leave expire?"}]
    general = [{"role": "user", "content": "Write a haiku about the autumn sea."}]
    grounded, untouched = index.ground([chat, general])
    assert untouched == general and grounded[0] == chat[0]
    lines = grounded[1]["content"].split("\n")
    assert lines[0] == HEADER and lines[1] == "- Leave: Unused leave expires on 31 March."
    assert len([line for line in lines if line.startswith("- ")]) == index.config.k
    assert question_of(grounded[1]["content"]) == "When does unused leave expire?"
    assert question_of("When does unused leave expire?") == "When does unused leave expire?"


def test_examples_keep_their_reply_and_text_examples_stay(index) -> None:
    examples = [{"messages": [{"role": "user", "content": "Who approves train tickets above 180 euros?"},
                              {"role": "assistant", "content": "Oskar Lind."}], "meta": {"kind": "factual"}},
                {"text": "Heron has 96 CPU cores."}]
    grounded = index.ground_examples(examples)
    assert grounded[1] == examples[1] and grounded[0]["meta"] == {"kind": "factual"}
    assert grounded[0]["messages"][1] == examples[0]["messages"][1]
    assert "Oskar Lind" in grounded[0]["messages"][0]["content"].split("\n\n")[0]


def test_saved_index_loads_the_same_and_a_broken_one_says_how_to_fix_it(index, tmp_path) -> None:
    target = index.save(tmp_path / "deployed" / "grounding")
    index.save(target)  # saving again replaces it whole
    loaded = load_grounding(target, index.cache_dir)
    assert loaded is not None and loaded.passages == index.passages and loaded.config == index.config
    assert np.array_equal(loaded.vectors, index.vectors)
    assert [p.name for p in target.parent.iterdir()] == ["grounding"]
    assert load_grounding(tmp_path / "none", index.cache_dir) is None
    (target / "vectors.npy").write_bytes(b"not an array")
    with pytest.raises(ToolError, match="deploy the run again"):
        load_grounding(target, index.cache_dir)


def test_bad_settings_and_empty_sources_are_refused(tmp_path) -> None:
    with pytest.raises(ToolError, match="at least one excerpt"):
        GroundingConfig(k=0)
    with pytest.raises(ToolError, match="no prose sentence"):
        GroundingIndex.build([page("# Heading only", "x")], tmp_path)


def test_grounding_twice_is_grounding_once(index) -> None:
    chat = [{"role": "user", "content": "How many CPU cores does the build server have?"}]
    once = index.ground([chat])
    assert index.ground(once) == once and "Heron has 96 CPU cores." in once[0][0]["content"]
