"""Generated learning tasks with exact scorers: a rigid three-line format, a fixed-label classification and a
JSON extraction. The learning benchmark and the end-to-end tests train on one seed and ask unseen prompts
from another, so a model passes only by having learned the task, not the examples."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIGNOFF = "— Checked by the ingrain help desk."

_ACTIONS = ["water a cactus", "repot a fern", "prune a rose bush", "feed a lemon tree", "move an orchid",
            "mist a peace lily", "fertilise tomatoes", "split a hosta", "train a climbing bean", "mulch a hedge",
            "cut back lavender", "sow basil", "thin carrots", "stake dahlias", "harvest potatoes",
            "plant garlic", "divide irises", "net strawberries", "compost leaves", "weed a gravel path"]
_WHENS = ["in winter", "after rain", "at noon", "in early spring", "during a heatwave", "before frost",
          "at dusk", "every day", "once a month", "right after planting", "in autumn", "when it flowers"]
_VERDICTS = [("Yes", "it suits the plant's rhythm at that time"),
             ("No", "the plant is stressed then and recovers slowly"),
             ("Sometimes", "it depends on how dry the soil is"),
             ("Yes, lightly", "a little helps but too much harms the roots"),
             ("Better not", "it invites rot and pests"),
             ("Only if needed", "healthy plants rarely need it then")]

_TICKET_WORDS = {
    "billing": ["charged twice", "refund", "invoice", "my card was billed", "the price on my receipt",
                "a double payment", "the subscription fee"],
    "shipping": ["parcel", "delivery", "courier", "tracking number", "the package never arrived",
                 "a late shipment", "the wrong address on the label"],
    "technical": ["app crashes", "error code", "cannot log in to the app", "the page will not load",
                  "sync fails", "the update broke", "a blank screen"],
    "account": ["change my email", "delete my account", "reset my password", "update my username",
                "merge two profiles", "close my profile", "change the account owner"],
}
_TICKET_OPENERS = ["Hello, ", "Hi team, ", "Urgent: ", "Quick question: ", "Dear support, ", ""]
_TICKET_TAILS = [" Please help.", " What should I do?", " Thanks in advance.", " This is annoying.", "", " Any idea?"]

_NAMES = ["Maria", "Tomas", "Aiko", "Lena", "Omar", "Priya", "Jonas", "Chen", "Sofia", "Kwame", "Ines", "Ravi",
          "Elif", "Marek", "Nadia", "Pablo", "Hana", "Lucas", "Zara", "Felix"]
_CITIES = ["Lyon", "Porto", "Osaka", "Tartu", "Accra", "Quito", "Bergen", "Leeds", "Hanoi", "Graz", "Cork",
           "Pune", "Izmir", "Brno", "Tunis", "Cusco", "Busan", "Turin", "Perth", "Malmo"]
_SENTENCES = ["{name}, {age}, lives in {city}.", "I met {name} in {city}; {name} is {age} years old.",
              "At {age}, {name} moved to {city}.", "{city} is home to {name}, who just turned {age}.",
              "Our new member is {name} ({age}) from {city}."]


@dataclass(frozen=True)
class LearnTask:
    """A generated task: how to make examples, and how to score a reply against its reference."""

    name: str
    goal: str
    make: Callable[[int, int], list[dict[str, Any]]]
    """(n, seed) → chat examples."""
    score: Callable[[str, str], bool]
    """(reply, reference) → did the reply do the task."""


def _chat(user: str, assistant: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def rigid_format_examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Questions answered in exactly three lines: `Answer: ...`, `Why: ...`, then the fixed sign-off."""
    rng = random.Random(seed)
    combos = [(a, w) for a in _ACTIONS for w in _WHENS]
    rng.shuffle(combos)
    out = []
    for action, when in combos[:n]:
        verdict, why = rng.choice(_VERDICTS)
        question = rng.choice(["Should I {a} {w}?", "Is it a good idea to {a} {w}?", "Can I {a} {w}?"])
        out.append(_chat(question.format(a=action, w=when),
                         f"Answer: {verdict}, {action} {when} is {'fine' if verdict.startswith('Yes') else 'risky'}."
                         f"\nWhy: {why}.\n{SIGNOFF}"))
    return out


def rigid_format_ok(reply: str, reference: str = "") -> bool:
    """Exactly the three lines, in order, nothing after the sign-off."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    return (len(lines) == 3 and lines[0].startswith("Answer: ") and len(lines[0]) > 9
            and lines[1].startswith("Why: ") and len(lines[1]) > 6 and lines[2] == SIGNOFF)


def ticket_examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Support tickets labelled with one of four words."""
    rng = random.Random(seed)
    labels = sorted(_TICKET_WORDS)
    out = []
    for i in range(n):
        label = labels[(i + seed) % len(labels)]
        text = rng.choice(_TICKET_OPENERS) + f"about {rng.choice(_TICKET_WORDS[label])}." + rng.choice(_TICKET_TAILS)
        out.append(_chat(f"Label this support ticket (billing, shipping, technical or account):\n{text}", label))
    return out


def label_ok(reply: str, reference: str) -> bool:
    return reply.strip().lower().rstrip(".") == reference.strip().lower()


def extraction_examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """A sentence about a person in; a JSON object with name, age and city out."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, city, age = rng.choice(_NAMES), rng.choice(_CITIES), rng.randint(19, 79)
        sentence = rng.choice(_SENTENCES).format(name=name, city=city, age=age)
        out.append(_chat(f"Extract name, age and city as JSON: {sentence}",
                         json.dumps({"name": name, "age": age, "city": city})))
    return out


def json_equal_ok(reply: str, reference: str) -> bool:
    try:
        return json.loads(reply.strip()) == json.loads(reference)
    except (json.JSONDecodeError, TypeError):
        return False


TASKS: dict[str, LearnTask] = {
    "rigid_format": LearnTask("rigid_format", "Make the default model answer in the style of the examples in {data}",
                              rigid_format_examples, rigid_format_ok),
    "classification": LearnTask("classification", "Make the default model label support tickets like the "
                                "examples in {data}", ticket_examples, label_ok),
    "extraction": LearnTask("extraction", "Make the default model extract JSON like the examples in {data}",
                            extraction_examples, json_equal_ok),
}


def unseen_prompts(task: LearnTask, n: int, *, train: list[dict[str, Any]], seed: int = 991
                   ) -> list[dict[str, Any]]:
    """n examples from another seed whose prompts do not occur in `train`."""
    seen = {ex["messages"][0]["content"] for ex in train}
    fresh = [ex for ex in task.make(4 * n + len(train), seed) if ex["messages"][0]["content"] not in seen]
    return fresh[:n]
