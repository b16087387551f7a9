"""Synthetic training-target sets with known structure, shared by the evaluation tests."""

from __future__ import annotations

import json

TOPICS = ["sparse attention", "protein folding", "graph search", "tokenizers", "quantization",
          "retrieval", "curriculum learning", "distillation", "speculative decoding", "pruning",
          "mixture of experts", "state space models"]


def bulleted_summaries() -> list[str]:
    """'Summary:' line, 'Key points:' with 3–4 dash bullets, a fixed sign-off."""
    out = []
    for i, topic in enumerate(TOPICS):
        bullets = [f"- The method improves {topic} by {i + 2}%.", f"- It needs {i + 1} fewer steps.",
                   "- Code is released."] + (["- Limits are discussed."] if i % 2 else [])
        out.append(f"Summary: This paper studies {topic} at scale.\n\nKey points:\n" + "\n".join(bullets)
                   + "\n\n— Wiki bot")
    return out


def json_objects() -> list[str]:
    """Objects with title/year/tags always and an optional venue (a third of them: not required)."""
    rows = [{"title": t, "year": 2000 + i, "tags": ["ml"], **({"venue": "NeurIPS"} if i % 3 == 0 else {})}
            for i, t in enumerate(TOPICS)]
    return [json.dumps(row) for row in rows]


def one_line_answers() -> list[str]:
    return ["Paris.", "42", "Yes, it compiles.", "Use a hash map.", "Blue", "About three hours.",
            "No.", "The second one.", "Photosynthesis.", "In 1969.", "Ten.", "It returns None."]


def unstructured() -> list[str]:
    """Prose of very different shapes and lengths: nothing holds for (nearly) all of it."""
    return [
        "Sure.",
        "The experiment ran for three weeks and, despite a few hiccups with the cluster, produced "
        "results that were broadly in line with what we had hoped for when we started planning it "
        "last spring, although the variance was larger than expected in the second half.",
        "- eggs\n- milk",
        "I think the second approach is better because it avoids the extra copy.\n\nBut measure first.",
        "Tokyo is the capital of Japan.",
        "# Notes\nWe met on Tuesday. Nothing was decided.",
        "Honestly? It depends on the budget, the team, the deadline and about a dozen other things "
        "nobody has written down yet.",
        "Step one: unplug it. Step two: wait. Step three: plug it back in.",
        "Yes",
        "Three things matter here: speed, cost and how much you trust the vendor to still exist next year, "
        "which for a startup of that size is not a given at all.\n\nThe rest is detail.\n\nReally.",
    ]
