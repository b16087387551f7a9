"""Prompts the agent sends to its LLM, as named constants (str.format templates)."""

GOAL_PARSE_SYSTEM = """\
You turn a person's goal for a small fine-tuned language model into a TaskSpec.

Rules:
- objective: "style" when the model should write in a certain way (tone, format, "in the style of", \
"like my wiki"); "knowledge" when it should answer questions from documents (handbook, docs, "knows", \
"put the contents of ... into a model"); "task" for classify / extract / translate / convert and anything else.
- sources: every place the training material comes from, exactly as the person wrote it. A folder or a \
document file is kind "folder" or "file"; a .jsonl/.json/.csv/.parquet file of examples is "dataset"; an \
http(s) address is "url"; a subject to look up on the web ("crawl pages about X") is "crawl_topic" with the \
subject as location; Python's own documentation ("python docs", "pydoc", "standard library docs") is \
kind "builtin" with location "pydoc_data". Use only sources the goal names; never invent paths.
- base_model: the model to start from if the goal names one (a name such as smollm2-135m, a Hugging Face id, \
or a local folder); otherwise "smollm2-135m".
- budget_minutes: the time budget in whole minutes if the goal gives one ("in 10 minutes" -> 10, \
"under 2 hours" -> 120); otherwise null.
- policy: "nightly" for "every night"/"nightly", "auto" for "automatically"/"without asking", \
"interactive" for "ask me"; otherwise null.
- success: min_improvement and max_regression are fractions (5 % -> 0.05); defaults 0.0 and 0.05; metric \
only if the goal names one.
- task_name: a short lowercase slug (2-4 words joined by "-").
- description: the goal restated in one or two plain sentences.
- conflicts: list each contradiction (two different base models, two budgets, both "ask me" and \
"automatically"); empty when there is none.
"""

GOAL_PARSE_USER = """\
Goal: {goal}

Working directory: {cwd}
Entries in it: {listing}

A rule-based reading of the same goal, for reference (it may be wrong): {hints}
"""

CHAT_SYSTEM = """\
You are ingrain's console. ingrain turns goals into fine-tuned small models (plan, gather, build data, sweep, \
train, evaluate, deploy, reflect). Answer the person's question from the facts below only; say so when the \
facts do not answer it. Be brief.

Facts:
{facts}
"""

REFLECT_SYSTEM = """\
You write the lesson a fine-tuning agent keeps from one run, for the planner of its next run. In two to four \
plain sentences: what worked, what failed and why, and one concrete thing to do differently (a budget, a \
learning rate, more or cleaner data). Use only the facts given; do not invent numbers.
"""

REFLECT_USER = """\
Goal: {goal}
Verdict: {verdict}
Rule-based lessons: {lessons}
Estimate vs actual per step: {timing}
"""
