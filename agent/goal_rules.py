"""The deterministic goal parser: paths, URLs, model names, budgets, policies and objective keywords."""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import urlparse

from agent.task_spec import DEFAULT_BASE, Conflict, Source, SuccessCriteria, TaskSpec, slugify
from tools.data.sources import is_dataset_file, is_document_file, is_saved_dataset, is_unreadable_document

MODEL_ALIASES = {"smollm2-135m": DEFAULT_BASE, "smollm2-135m-instruct": DEFAULT_BASE, "smollm2": DEFAULT_BASE,
                 "huggingfacetb/smollm2-135m-instruct": DEFAULT_BASE}
# Words that name an HF repo as a model rather than a folder of documents (`Qwen/Qwen2.5-0.5B-Instruct`).
_MODEL_WORDS = re.compile(r"(?i)(instruct|chat|llama|qwen|phi|gemma|mistral|smol|gpt|olmo|\d+(\.\d+)?[bm]\b)")
# A model named without its organisation: SmolLM2-360M-Instruct, Qwen2.5-0.5B, llama-3.2-1b.
_MODEL_NAME = re.compile(r"(?i)[a-z][\w.]*(?:-[\w.]+)*-\d+(?:\.\d+)?[bm](?:-[\w.]+)*")
_BASE_CUE = re.compile(r"(?i)\b(?:base(?:\s+model)?(?:\s+is|\s*[:=])?|from|using|use|on\s+top\s+of|start\s+from)\s*$")
_BASE_WORD = re.compile(r"(?i)\bbase(?:\s+model)?(?:\s+is|\s*[:=])?\s*$")

_URL = re.compile(r"https?://[^\s'\"<>`]+")
_QUOTED = re.compile(r"[\"'`“‘]([^\"'`”’\n]{1,300})[\"'`”’]")
# ./x ~/x /x ../x, then a/b/c, then name.ext; never the middle of a word or a URL.
_PATHLIKE = re.compile(r"(?<![\w/.:-])((?:~|\.{1,2})?/[^\s,;:'\"`()]+|[\w.-]+(?:(?:/[\w.-]+)+/?|/)"
                       r"|[\w-][\w.-]*\.[A-Za-z]{2,8})(?![\w/])")
_TRAILING = ".,;:!?)]}\"'"

# Digits take short units ("90m"); number words need a full unit word, so "as" is not "a s(econd)".
_BUDGET = re.compile(
    r"(?i)(?<![\w.-])(every\s+|each\s+)?"
    r"(?:(\d+(?:\.\d+)?)[\s-]*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)"
    r"|(an?|one|two|three|half\s+an?)[\s-]+(seconds?|minutes?|mins?|hours?|hrs?))\b"
    r"(?![\w-]*[\s-]*(?:long|videos?|clips?|models?|param\w*|tokens?|llms?|instruct))")
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "half a": 0.5, "half an": 0.5}

_POLICIES = (
    ("nightly", re.compile(r"(?i)\b(every|each)\s+(night|day|evening|morning)\b|\bnightly\b|\bovernight\b|\bdaily\b")),
    ("auto", re.compile(r"(?i)\bautomatic(ally)?\b|\bwithout\s+(asking|approval|confirmation|me)\b|\bunattended\b"
                        r"|\bdon'?t\s+ask\b|\bno\s+questions\b|\bhands[-\s]off\b|\bauto[-\s]?(mode|approve)\b")),
    ("interactive", re.compile(r"(?i)\binteractive(ly)?\b|\bask\s+me\b|\bcheck\s+with\s+me\b|\blet\s+me\s+(approve"
                               r"|review|check|confirm)\b|\bwith\s+my\s+approval\b")),
)

_OBJECTIVE_CUES: dict[str, list[tuple[str, int]]] = {
    "style": [(r"in the style of", 3), (r"the way (?:my|our|the) [\w\s./-]{1,40}? (?:does|do|is written|reads)", 3),
              (r"\b(?:write|answer|talk|speak|respond|reply)s? (?:just )?like\b", 3), (r"\bwriting like\b", 3),
              (r"\bsounds? like\b", 2),
              (r"\bstyle\b", 2), (r"\btone\b", 2), (r"\bvoice\b", 2), (r"\bformat(?:ted|ting)?\b", 1),
              (r"\bhow (?:\w+ ){0,3}writes?\b", 3), (r"\bpersona\b", 2), (r"\bhouse style\b", 3),
              (r"\bmimic\b|\bimitate\b", 3)],
    "knowledge": [(r"answers? (?:\w+ ){0,2}questions?", 3), (r"\bteach(?:es)? (?:it|the model)\b", 2),
                  (r"\bknows?\b|\bknowledge\b", 3),
                  (r"put the contents of", 3), (r"\bcontents? of\b", 2), (r"\bhandbook\b", 1), (r"\bdocs\b", 1),
                  (r"\bdocumentation\b", 1), (r"\bfaq\b|\bq&a\b|\bquestion", 1), (r"\bmemori[sz]e\b", 3),
                  (r"\blearn(?:s|ed)? (?:the )?(?:facts|contents|material)\b", 3), (r"\bwiki\b|\bmanual\b", 1)],
    "task": [(r"\bclassif(?:y|ies|ication)\b", 4), (r"\bextract(?:s|ion)?\b", 4), (r"\btranslat(?:e|es|ion)\b", 4),
             (r"\bconvert(?:s|ing)?\b", 4), (r"\blabel(?:s|ling)?\b|\btag(?:s|ging)?\b", 3),
             (r"\bsummari[sz]e", 2), (r"\bparse\b|\brewrite\b|\bcorrect\b", 2), (r"\bsentiment\b", 3)],
}

_BUILTIN = re.compile(r"(?i)\bpython(?:'s)?\s+(?:\d(?:\.\d+)?\s+)?(?:own\s+)?(?:docs|documentation|manual|help)\b"
                      r"|\bpydoc(?:_data)?\b|\bstandard[\s-]library\s+(?:docs|documentation|reference)\b"
                      r"|\bstdlib\s+(?:docs|documentation)\b")
_CRAWL = re.compile(r"(?i)\b(?:crawl(?:ing)?|scrap(?:e|ing)|search(?:ing)?\s+the\s+web)\s+"
                    r"(?:the\s+web\s+|pages\s+|web\s+pages\s+|sites\s+)?(?:for|about|on)?\s*([^.,;:!?\n]+)")
_ABOUT = re.compile(r"(?i)\b(?:about|on the topic of|regarding)\s+([^.,;:!?\n]+)")
_TOPIC_END = re.compile(r"(?i)\s+(?:in|within|under|using|with|from|for|every|each|and|so|that|based|on top|"
                        r"by|without|automatically|nightly|budget)\b.*$")
_PRONOUNS = {"it", "them", "this", "that", "these", "those", "itself", "stuff", "things", "anything", "everything"}

_METRICS = (("rouge_l", r"\brouge(?:-?l)?\b"), ("exact_match", r"\bexact[\s-]match\b"), ("f1", r"\bf1\b"),
            ("accuracy", r"\baccuracy\b"), ("perplexity", r"\bperplexity\b"),
            ("loss", r"\b(?:val(?:idation)? )?loss\b"))
_IMPROVE = re.compile(r"(?i)(?:at least|improve(?:s|d)? by|by at least|beat[s]? the base by)\s+(\d+(?:\.\d+)?)\s*%")
_REGRESS = re.compile(r"(?i)(?:no more than|at most|without losing more than|max(?:imum)?)\s+(\d+(?:\.\d+)?)\s*%"
                      r"\s*(?:regression|worse|drop|loss)?")


_DEFAULT_MAX_REGRESSION = SuccessCriteria.model_fields["max_regression"].default


def parse_goal_rules(text: str, cwd: Path) -> TaskSpec:
    """Turn goal text into a TaskSpec without any LLM: every rule is a regular expression or a file check."""
    goal = " ".join(text.split())
    sources, bases = _paths_and_models(goal, cwd)
    sources += [Source(kind="url", location=u) for u in _urls(goal)]
    if _BUILTIN.search(goal):
        sources.append(Source(kind="builtin", location="pydoc_data"))
    sources += [Source(kind="crawl_topic", location=t) for t in _crawl_topics(goal, bool(sources))]
    conflicts: list[Conflict] = []
    if len(set(bases)) > 1:
        conflicts.append(Conflict(field="base_model", message="the goal names more than one base model: "
                                  + " and ".join(dict.fromkeys(bases))))
    budgets = _budgets(goal)
    if len(set(budgets)) > 1:
        conflicts.append(Conflict(field="budget_minutes", message="the goal names more than one budget: "
                                  + " and ".join(f"{b} min" for b in dict.fromkeys(budgets))))
    policy, policy_conflict = _policy(goal)
    if policy_conflict:
        conflicts.append(policy_conflict)
    objective = _objective(goal)
    return TaskSpec(
        objective=objective, base_model=bases[0] if bases else DEFAULT_BASE, sources=_dedup(sources),
        success=_success(goal), budget_minutes=budgets[0] if budgets else None, policy=policy,
        task_name=_task_name(goal, objective, sources), description=goal, conflicts=conflicts,
        parser="deterministic",
    )


def source_for_path(raw: str, cwd: Path) -> Source:
    """Classify a local path as folder, dataset or file (by what exists, else by its suffix); location absolute.

    A folder written by `datasets`' `save_to_disk` is a dataset of examples, not a folder of documents.
    """
    path = resolve_path(raw, cwd)
    if is_saved_dataset(path):
        return Source(kind="dataset", location=str(path))
    if path.is_dir():
        return Source(kind="folder", location=str(path))
    if is_dataset_file(path):
        return Source(kind="dataset", location=str(path))
    if path.is_file() or is_document_file(path) or is_unreadable_document(path):
        return Source(kind="file", location=str(path))
    return Source(kind="folder", location=str(path))


def resolve_path(raw: str, cwd: Path) -> Path:
    """`~` expanded, relative paths anchored at `cwd`, `..` collapsed; the file need not exist."""
    path = Path(raw).expanduser()
    return Path(_normpath(path if path.is_absolute() else cwd / path))


def _normpath(path: Path) -> str:
    import os.path

    return os.path.normpath(str(path))


def _paths_and_models(goal: str, cwd: Path) -> tuple[list[Source], list[str]]:
    sources: list[Source] = []
    bases: list[str] = []
    taken: list[tuple[int, int]] = [m.span() for m in _URL.finditer(goal)]
    candidates: list[tuple[int, str]] = []
    weak: set[str] = set()  # bare words: the weakest evidence of a place
    strong: list[Path] = []
    vague: list[Path] = []

    def free(start: int) -> bool:
        return not any(a <= start < b for a, b in taken)

    for match in _QUOTED.finditer(goal):
        if free(match.start()):
            candidates.append((match.start(), match.group(1).strip()))
            taken.append(match.span())
    for match in _PATHLIKE.finditer(goal):
        if free(match.start()):
            candidates.append((match.start(), match.group(1)))
            taken.append(match.span())
    for match in re.finditer(r"[\w.-]+", goal):
        word = match.group()
        if not free(match.start()):
            continue
        if word.lower() in MODEL_ALIASES or _MODEL_NAME.fullmatch(word):
            candidates.append((match.start(), word))
        elif _PATH_CUE.search(goal[:match.start()]) and _exists_bare(word, cwd):
            candidates.append((match.start(), word))
            weak.add(word)
    seen: set[str] = set()
    for start, raw in sorted(candidates):
        raw = raw.rstrip(_TRAILING)
        if not raw or raw in seen or "://" in raw:
            continue
        seen.add(raw)
        kind = _classify(raw, goal[:start], cwd)
        if kind == "model":
            bases.append(MODEL_ALIASES.get(raw.lower(), raw))
        elif kind == "path":
            sources.append(source_for_path(raw, cwd))
            (vague if raw in weak else strong).append(Path(sources[-1].location))
    # "my notes in notes/papers": the bare word only pointed at a place the goal names more precisely.
    sources = [s for s in sources if not (Path(s.location) in vague and Path(s.location) not in strong
                                          and any(p.is_relative_to(s.location) for p in strong))]
    return sources, bases


# Words after which a bare name or an unknown `a/b` is meant as a place ("in notes/papers", "my wiki").
_PATH_CUE = re.compile(r"(?i)\b(?:my|our|the|in|inside|from|of|at|about|under|folder|directory|dir|files?|using|"
                       r"on|into|with|dataset|data)\s+$")


def _classify(raw: str, before: str, cwd: Path) -> str | None:
    """'model', 'path' or None (not a place at all, e.g. `input/output` or `example.com`)."""
    if raw.lower() in MODEL_ALIASES:
        return "model"
    path = resolve_path(raw, cwd)
    if path.is_dir() and (path / "config.json").is_file():
        return "model"
    if path.exists():
        return "path"
    if _BASE_WORD.search(before):
        return "model"
    if raw.startswith(("/", "./", "../", "~")):
        return "path"
    if is_dataset_file(raw) or is_document_file(raw) or is_unreadable_document(raw):
        return "path"
    if raw.endswith("/"):
        return "path"
    if "/" not in raw:
        return "model" if _MODEL_NAME.fullmatch(raw) else None
    if _MODEL_WORDS.search(raw) or _BASE_CUE.search(before):
        return "model"
    first = raw.split("/")[0]
    return "path" if (cwd / first).exists() or _PATH_CUE.search(before) else None


_BARE_STOP = {"a", "an", "the", "it", "my", "our", "model", "models", "base", "and", "or", "to", "in", "of", "on",
              "for", "with", "from", "that", "this", "into", "so", "can", "be", "is", "me", "i"}


def _exists_bare(word: str, cwd: Path) -> bool:
    # A bare word counts as a path only when it names something right here ("answer questions about handbook").
    return word.lower() not in _BARE_STOP and not word.startswith((".", "-")) and (cwd / word).exists()


def _urls(goal: str) -> list[str]:
    return [m.group().rstrip(_TRAILING) for m in _URL.finditer(goal)]


def _crawl_topics(goal: str, have_sources: bool) -> list[str]:
    topics = []
    for match in _CRAWL.finditer(goal):
        topic = _clean_topic(match.group(1))
        if topic:
            topics.append(topic)
    if not topics and not have_sources:
        for match in _ABOUT.finditer(goal):
            topic = _clean_topic(match.group(1))
            if topic:
                topics.append(topic)
                break
    return topics


def _clean_topic(raw: str) -> str | None:
    topic = _TOPIC_END.sub("", raw).strip()
    topic = re.sub(r"(?i)^(?:the\s+web\s+for\s+)?(?:(?:articles|pages|posts|documents)\s+about\s+)?"
                   r"(?:the\s+|a\s+|an\s+|some\s+)?", "", topic).strip()
    if not topic or topic.lower() in _PRONOUNS or _URL.match(topic) or _BUDGET.match(topic):
        return None
    if topic.startswith(("/", "./", "~")) or re.search(r"\bhttps?\b", topic):
        return None
    return topic


def _budgets(goal: str) -> list[int]:
    budgets: list[int] = []
    previous_end, previous_unit = -1, ""
    for match in _BUDGET.finditer(goal):
        if match.group(1):  # "every 24 hours" is a schedule, not a budget
            continue
        digits, word = match.group(2), match.group(4)
        value = float(digits) if digits else _WORD_NUMBERS[" ".join(word.lower().split())]
        unit = (match.group(3) or match.group(5)).lower()
        minutes = value / 60 if unit.startswith("s") else value * 60 if unit.startswith("h") else value
        # "1 hour 30 minutes" is one budget of 90, not two budgets.
        if (budgets and previous_unit.startswith("h") and unit.startswith("m")
                and re.fullmatch(r"\s*(?:and\s+)?", goal[previous_end:match.start()])):
            budgets[-1] = math.floor(budgets[-1] + minutes + 1e-9)
        else:
            budgets.append(math.floor(minutes + 1e-9))
        previous_end, previous_unit = match.end(), unit
    return budgets


def _policy(goal: str) -> tuple[str | None, Conflict | None]:
    named = [name for name, pattern in _POLICIES if pattern.search(goal)]
    if "nightly" in named and "auto" in named:
        named.remove("auto")  # nightly already runs unattended
    if len(named) > 1:
        return named[0], Conflict(field="policy", message="the goal asks for both " + " and ".join(named)
                                  + " approval")
    return (named[0] if named else None), None


def _objective(goal: str) -> str:
    scores = {name: sum(weight for pattern, weight in cues if re.search(pattern, goal, re.IGNORECASE))
              for name, cues in _OBJECTIVE_CUES.items()}
    best = max(scores.values())
    if best == 0:
        return "task"
    return next(name for name in ("style", "task", "knowledge") if scores[name] == best)


def _success(goal: str) -> SuccessCriteria:
    metric = next((name for name, pattern in _METRICS if re.search(pattern, goal, re.IGNORECASE)), None)
    improve = _IMPROVE.search(goal)
    regress = _REGRESS.search(goal)
    return SuccessCriteria(
        min_improvement=float(improve.group(1)) / 100 if improve else 0.0,
        max_regression=float(regress.group(1)) / 100 if regress else _DEFAULT_MAX_REGRESSION,
        metric=metric,
    )


_HOST_NOISE = {"www", "docs", "doc", "en", "blog", "com", "org", "net", "io", "dev", "ai", "co", "uk", "de"}


def _task_name(goal: str, objective: str, sources: list[Source]) -> str:
    suffix = {"style": "style", "knowledge": "qa", "task": ""}[objective]
    if objective == "task":
        verb = re.search(r"(?i)\b(classif|extract|translat|convert|label|tag|summari[sz]|pars|rewrit)", goal)
        suffix = {"classif": "classify", "translat": "translate", "summaris": "summarize", "summariz": "summarize",
                  "pars": "parse", "rewrit": "rewrite"}.get(verb.group(1).lower(), verb.group(1).lower()) \
            if verb else "task"
    if sources:
        first = sources[0]
        stem = first.location if first.kind in ("crawl_topic", "builtin") else Path(first.location).stem
        if first.kind == "url":
            labels = urlparse(first.location).netloc.lower().split(".")
            stem = next((w for w in labels if w not in _HOST_NOISE), "web")
        return slugify(f"{stem} {suffix}")
    gist = _BUDGET.sub(" ", goal)
    for _, pattern in _POLICIES:
        gist = pattern.sub(" ", gist)
    words = slugify(" ".join(gist.split()[:6]))
    return words if suffix in words.split("-") else slugify(f"{words} {suffix}")


def _dedup(sources: list[Source]) -> list[Source]:
    seen: dict[tuple[str, str], Source] = {}
    for source in sources:
        seen.setdefault((source.kind, source.location), source)
    return list(seen.values())
