"""Questions by rule: factual, topical, about, answer-first, cloze, paraphrased, reworded, alias, section and passage
examples; and the sentence rewritings they share with restated text (passive to active, the other name)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace

from tools.data.knowledge.facts import Fact
from tools.data.knowledge.grammar import (
    IRREGULAR,
    NOT_VERBS,
    PREPOSITIONS,
    base_form,
    join,
    lower_first,
    s_verb,
    upper_first,
)
from tools.text import normalize_answer

_SYNONYMS = {"opens": "starts", "open": "start", "closes": "shuts", "close": "shut",
             "receive": "get", "receives": "gets", "submit": "hand in",
             "submits": "hands in", "approves": "signs off on", "approve": "sign off on", "requires": "needs",
             "require": "need", "allowed": "permitted", "begins": "starts", "starts": "begins", "ends": "finishes",
             "located": "based", "annual": "yearly", "purchase": "buy", "buy": "purchase", "employees": "staff",
             "staff": "employees", "customers": "clients", "weekdays": "working days", "held": "run",
             "costs": "comes to", "lasts": "runs for", "each": "every", "every": "each", "per": "a"}
_FRAMES = ("Can you tell me {q}?", "Do you know {q}?", "I'd like to know {q}.", "Could you remind me {q}?")
_STOP = {"a", "an", "the", "of", "to", "in", "on", "at", "and", "or", "is", "are", "be", "it", "its", "for",
         "by", "with", "that", "this", "as", "was", "were", "yes", "no", "not", "can", "do", "does", "you"}
_AUX = {"is", "are", "was", "were", "can", "must", "should", "will", "may", "might", "could", "would",
        "has", "have", "had"}
_AFTER_VERB = {"at", "on", "in", "by", "from", "to", "for", "with", "within", "before", "after", "until",
               "every", "each", "the", "a", "an", "all", "up", "over", "under", "between", "during", "about",
               "their", "its", "his", "her", "our", "your", "no", "only", "two", "three", "four"}
_POSSESS = {"has": "does", "have": "do", "had": "did"}


def _parts(fact: Fact) -> tuple[str, str]:
    body = fact.sentence.rstrip(".!? ")
    return body[:fact.start].strip(" ,"), body[fact.end:].strip(" ,")


def _rule_clause(fact: Fact, context: str) -> tuple[str, str]:
    """(subject, verb phrase) of a rule sentence: `Employees must never share badges` → (employees, share badges)."""
    before, after = _parts(fact)
    vp = re.sub(r"^(?:(?:always|never|not|be able to)\s+)+", "", after)
    return (lower_first(before, context) if before else "one"), vp


def factual_question(fact: Fact, context: str, *, keep_after: bool = True) -> str:
    """A who/what/when/how-many question whose answer is the fact's sentence."""
    before, after = _parts(fact)
    after = after if keep_after else ""
    if fact.span_kind == "rule":
        subject, vp = _rule_clause(fact, context)
        return f"What is the rule on whether {subject} may {vp}?"
    if fact.span_kind == "definition":
        subject, verb = re.match(r"(.+?)\s+(is|are|means|refers to)$", before).groups()  # type: ignore[union-attr]
        subject = lower_first(subject, context)
        return {"is": f"What is {subject}?", "are": f"What are {subject}?",
                "means": f"What does {subject} mean?"}.get(verb, f"What does {subject} refer to?")
    if _appositive(fact):  # `The largest room, Danube, seats 24 people`: the name is what the room is called
        return f"What is {lower_first(before, context)} called?"
    if not before:  # the span is the subject: replace it
        return upper_first(join(fact.wh, after)) + "?"
    words, rest = before.split(), after.split()
    if words[0].lower() not in PREPOSITIONS:
        for i, word in enumerate(words[1:9], start=1):
            if word.lower() in _AUX:  # inversion: `must employees submit`
                subject = lower_first(" ".join(words[:i]), context)
                if word.lower() in _POSSESS and i == len(words) - 1:  # `Heron has 96 cores`: has is the verb
                    return upper_first(join(fact.wh, _POSSESS[word.lower()], subject, "have", after)) + "?"
                return upper_first(join(fact.wh, word.lower(), subject, *words[i + 1:], after)) + "?"
        if rest and rest[0] in _AUX and not _dangles(before):  # the span ends the subject: `Where is security run`
            return upper_first(join(fact.wh, rest[0], lower_first(before, context), *rest[1:])) + "?"
        if rest and s_verb(rest[0]) and fact.wh == "where" and not _dangles(before):  # `Where does onboarding last`
            return upper_first(join(fact.wh, "does", lower_first(before, context), base_form(rest[0]), *rest[1:])) + "?"
        # The verb: an -s verb before its object (`Heron runs the nightly tests`), else the last word, when
        # only an adjunct follows the span (`need approval` after it means the span is in the subject).
        at = next((i for i, w in enumerate(words[1:-1], start=1) if s_verb(w) and words[i + 1] in _AFTER_VERB),
                  len(words) - 1)
        verb, subject_words = words[at], words[:at]
        adjunct = not rest or rest[0] in PREPOSITIONS | _AFTER_VERB | {"of", "without", "per"}
        if 1 <= len(subject_words) <= 8 and (adjunct or at < len(words) - 1) and verb.isalpha() \
                and verb.islower() and verb not in NOT_VERBS and verb not in _AFTER_VERB \
                and not verb.endswith(("ed", "ing", "ly")):
            subject = lower_first(" ".join(subject_words), context)
            if s_verb(verb):
                return upper_first(join(fact.wh, "does", subject, base_form(verb), *words[at + 1:], after)) + "?"
            if subject_words[-1].endswith("s"):
                return upper_first(join(fact.wh, "do", subject, verb, *words[at + 1:], after)) + "?"
    return upper_first(join(before, fact.wh_insitu, after)) + "?"  # an echo question is always grammatical


def _appositive(fact: Fact) -> bool:
    """True for a name set off by commas after the noun it names (`The largest room, Danube, seats ...`)."""
    body = fact.sentence.rstrip(".!? ")
    return fact.span_kind == "name" and fact.wh == "what" and body[:fact.start].rstrip().endswith(",") \
        and body[fact.end:].lstrip().startswith(",")


def _dangles(before: str) -> bool:
    """True when the words before a span need it to finish their phrase (`flights shorter than` 4 hours)."""
    return before.split()[-1].lower() in PREPOSITIONS | {"than", "of", "as"}


def embedded_question(fact: Fact, context: str) -> str:
    """The question as a clause, e.g. `at what time the Riverside office opens on weekdays`."""
    if fact.span_kind == "rule":
        subject, vp = _rule_clause(fact, context)
        return f"whether {subject} may {vp}"
    before, after = _parts(fact)
    if fact.span_kind == "definition":
        return join("what", lower_first(before, context))
    if _appositive(fact):
        return f"what {lower_first(before, context)} is called"
    if before and after and _dangles(before):  # in the subject: `flights shorter than how many hours are booked`
        return join(lower_first(before, context), fact.wh_insitu, after)
    return join(fact.wh_insitu if before else fact.wh, lower_first(before, context) if before else "", after)


def _swap_synonyms(text: str) -> str:
    return re.sub(r"\b[a-z]+\b", lambda m: _SYNONYMS.get(m.group(0), m.group(0)), text)


_PAST = {"run": "ran", "given": "gave", "written": "wrote", "known": "knew", "shown": "showed", "taken": "took",
         "chosen": "chose", "done": "did"}


def _active_verb(participle: str) -> str | None:
    """`cleaned` → `cleans`, `approved` → `approves`, `led` → `leads`; None for a word that is not a participle."""
    if participle in IRREGULAR:
        return IRREGULAR[participle]
    if not participle.endswith("ed") or len(participle) < 4:
        return None
    stem = participle[:-3] + "y" if participle.endswith("ied") else participle[:-2]
    if (re.search(r"([bdgmnprt])\1$", stem) and len(stem) > 3) or re.search(r".{3}ell$", stem):
        stem = stem[:-1]  # planned → plan, cancelled → cancel (added → add)
    elif re.search(r"(?:[vzcu]|[bcdfgkpt]l|(?<![aeiou])[iu]l|[aeiou]g|ang|rg|dg|[aeiou]s|id|at|ur|[aio]r)$", stem):
        stem += "e"  # approved → approve, provided → provide, changed → change, filed → file, stored → store
    if re.search(r"[^aeiou]y$", stem):
        return stem[:-1] + "ies"
    return stem + ("es" if re.search(r"(?:s|sh|ch|x|z|o)$", stem) else "s")


_NAMING_VERBS = ("called", "named", "known")
"""Participles that give a thing its name (`is called Compass`): nobody does them, so no active form is asked."""
_PASSIVE = re.compile(r"^(?P<subject>.+?)\s+(?P<aux>is|are|was|were)\s+(?P<verb>[a-z]+)\s+by\s+(?P<agent>.+)$")
"""A passive with its agent last, matched on a sentence without its final stop."""
_AGENT_ADJUNCT = re.compile(r"\s+(?:in|on|at|every|each|for|from|to|with|after|before|until|during|within)\b.*$")


def _passive_to_active(passive: re.Match[str]) -> str | None:
    """The active verb of a _PASSIVE match in its tense (`is cleaned` → `cleans`, `was written` → `wrote`); None
    for a naming verb (`is called`) or a word that is no participle."""
    participle = passive.group("verb")
    verb = _active_verb(participle)
    if not verb or participle in _NAMING_VERBS:
        return None
    return _PAST.get(participle, participle) if passive.group("aux") in ("was", "were") else verb


def active_statement(sentence: str, context: str) -> str | None:
    """`The office kitchen is cleaned by the Pelham company.` → `The Pelham company cleans the office kitchen.`;
    an adjunct after the agent stays last (`... by the Orchard farm every Monday` → `The Orchard farm delivers
    fruit every Monday.`). None when the sentence is not a present-tense passive with an agent."""
    passive = _PASSIVE.match(sentence.strip().rstrip(".!"))
    verb = _passive_to_active(passive) if passive and passive.group("aux") in ("is", "are") else None
    if not passive or not verb or re.search(r"[,;]", passive.group("agent")):
        return None
    adjunct = _AGENT_ADJUNCT.search(passive.group("agent"))
    agent = passive.group("agent")[:adjunct.start()] if adjunct else passive.group("agent")
    if not re.match(r"(?:the|a|an)\s|[A-Z]", agent):
        return None  # `by hand`, `by default`: not an agent
    if re.search(r"\band\b", agent):  # two agents take the plural: `Alice and Bob approve`
        verb = base_form(verb)
    return join(upper_first(agent), verb, lower_first(passive.group("subject"), context),
                 adjunct.group(0) if adjunct else "") + "."


def reworded_questions(fact: Fact, context: str) -> list[str]:
    """The question as people also ask it, built from the sentence's structure rather than its word order:
    the passive turned active (`Which company cleans the office kitchen?` for `The office kitchen is cleaned
    by the Pelham company`), the preposition left at the end (`Which floor is the mail room on?`), and a
    name asked for (`What is the travel desk called?` for `The travel desk is called Compass`)."""
    out: list[str] = []
    body = fact.sentence.rstrip(".!? ")
    passive = _PASSIVE.match(body)
    if passive and fact.start >= passive.start("agent") - 3 and fact.wh.startswith("by "):
        verb = _passive_to_active(passive)
        wh = fact.wh[3:].replace("whom", "who")
        if verb:
            subject = lower_first(passive.group("subject"), context)
            out.append(upper_first(join(wh, verb, subject)) + "?")
            if wh.startswith("which "):  # `Which company cleans ...` is as often asked `Who cleans ...`
                out.append(upper_first(join("who", verb, subject)) + "?")
    naming = re.match(r"^(?P<subject>.+?)\s+(?:is|are)\s+(?:called|named)\s+", body)
    if naming and fact.start >= naming.end() - 1 and fact.span_kind == "name":
        subject = lower_first(naming.group("subject"), context)
        out.append(f"What is the name of {subject}?")
        out.append(f"What is {subject} called?")
    stranded = re.match(r"^(On|In|At|From|To|By|With|For|Within|After|Before) (which|what) (\w+) (.+)\?$",
                        factual_question(fact, context))
    if stranded:
        prep, which, noun, rest = stranded.groups()
        out.append(f"{upper_first(which)} {noun} {rest} {prep.lower()}?")
    named = re.search(rf"\b(?:the|a|an) ([a-z]{{3,}}) (?:called|named) {re.escape(fact.value)}\b", body) \
        if fact.span_kind == "name" else None
    if named:  # `posted on the board called Ladle`: the board is asked for by its name too
        noun = named.group(1)
        clause = re.match(rf"^(\w+) which {noun} (.+)$", embedded_question(fact, context))
        if clause:  # `on which board the soup of the day is posted`
            out.append(f"What is the name of the {noun} {clause.group(2)} {clause.group(1)}?")
        out.append(f"What is the {noun} called?")
    place = re.fullmatch(r"(?:in|on|at|to) which ([a-z]+)", fact.wh)
    if place and fact.span_kind in ("label", "name") and place.group(1) not in _NOT_PLACES:
        # `in room B12`, `on level 4`, `to the Falcon desk`: a place, asked `Where ...?` as often as `In which room`
        out.append(factual_question(replace(fact, wh="where", wh_insitu="where"), context))
    out += _threshold_questions(fact, context)
    out += _personal_questions(fact, context)
    return out


_OBLIGED = re.compile(r"^(?P<subject>.+?)\s+(?:must|should|has to|have to|needs? to)\s+be\s+(?P<verb>[a-z]+)\s+"
                      r"(?P<rest>.+)$")
_DONE_TO = re.compile(r"^(?P<subject>.+?)\s+(?:is|are)\s+(?P<verb>[a-z]+ed(?:\s+(?:out|up|off|back|over))?)\s+"
                      r"(?P<rest>(?:to|in|at)\s+.+)$")
_WH = re.compile(r"^(?:(?P<prep>[a-z]+)\s+)?(?P<core>(?:who|whom|what|which|when|where|how)\b.*)$")


def _personal_questions(fact: Fact, context: str) -> list[str]:
    """The question as the reader asks it of a passive without an agent: a duty (`Receipts must be uploaded
    within 21 days` → `How many days do I have to upload receipts?`, `Within how many days do I have to upload
    receipts?`), where a thing is sent (`Lost badges are reported to the Falcon desk` → `Who do I report lost
    badges to?`) or done (`Badges are printed in room B12` → `Where can I get badges printed?`)."""
    body = fact.sentence.rstrip(".!? ")
    duty, done = _OBLIGED.match(body), _DONE_TO.match(body)
    passive = duty or done
    wh = _WH.match(fact.wh)
    if not passive or not wh or fact.start < passive.start("rest") or fact.span_kind in ("rule", "definition"):
        return []
    participle, _, particle = passive.group("verb").partition(" ")
    verb = _active_verb(participle)
    if not verb or participle in _NAMING_VERBS:
        return []
    prep, core = wh.group("prep") or "", wh.group("core").replace("whom", "who")
    between = body[passive.start("rest"):fact.start].strip(" ,")
    if re.search(r"\bby\b", between):
        return []  # an agent after all (`signed by the manager within 5 days`): the reader does not do it
    subject = lower_first(passive.group("subject"), context)
    rest = join(between, body[fact.end:].strip(" ,"))
    do = join("do I have to" if duty else "do I", base_form(verb), subject, particle, rest)
    out: list[str] = []
    if duty:
        if prep in ("within", "for", "in") and core.startswith("how many"):
            out.append(join(core, do))  # a deadline: `How many days do I have to ...`
        if prep == "every" and core.startswith("how many"):
            out.append(join("how often", do))
        out.append(join(core, do, prep) if prep == "to" else join(prep, core, do))
    elif prep == "to" and core.split()[0] in ("who", "which"):
        out += [join(core, do, "to")] + ([join("who", do, "to")] if core != "who" else [])
    elif prep in ("in", "at") and core.startswith("which "):
        out.append(join("where can I get", subject, passive.group("verb"), rest))
    return [upper_first(question) + "?" for question in out]


_NOT_PLACES = {"day", "week", "month", "year", "page", "step", "version", "line", "chapter", "section", "item",
               "round", "stage", "phase", "grade", "rank", "number", "option", "question", "slide", "minute", "hour",
               "case", "order", "form", "format", "language", "currency", "way", "category", "class"}


_ABOVE = {"longer", "more", "greater", "larger", "higher", "above", "over", "older", "bigger", "heavier"}
_BELOW = {"shorter", "less", "fewer", "smaller", "lower", "below", "under", "younger", "lighter"}


def _threshold_questions(fact: Fact, context: str) -> list[str]:
    """A limit asked as a limit: `Leave longer than 10 days needs two weeks of notice` → `Above how many days
    does leave need two weeks of notice?`; `Hotel nights are refunded up to 135 euros` → `What is the most
    hotel nights are refunded?`."""
    before, after = _parts(fact)
    wh = fact.wh
    bound = re.match(r"^(up to|at most|at least) ", wh)
    if bound and before and not after and fact.span_kind in ("money", "quantity", "percent"):
        most = "least" if bound.group(1) == "at least" else "most"
        return [f"What is the {most} {lower_first(before, context)}?"]
    direction = ""
    compared = re.match(rf"^(?P<subject>.+?)\s+(?P<cmp>{'|'.join(sorted(_ABOVE | _BELOW))})(?:\s+than)?$", before)
    if compared:
        before, direction = compared.group("subject"), compared.group("cmp")
    elif wh.split(" ", 1)[0] in ("above", "over", "under", "below"):
        direction, wh = wh.split(" ", 1)
    if not direction or not after or fact.span_kind not in ("money", "quantity", "percent"):
        return []
    lead = "Above" if direction in _ABOVE else "Below"
    subject, words = lower_first(before, context), after.split()
    if words[0] in _AUX:
        clause = join(words[0], subject, *words[1:])
    elif s_verb(words[0]):
        clause = join("does", subject, base_form(words[0]), *words[1:])
    elif subject.endswith("s") and words[0].isalpha() and words[0].islower():
        clause = join("do", subject, *words)
    else:
        return []
    return [f"{lead} {wh} {clause}?"]


_NAMING = re.compile(r"^(?:The|the)\s+(?P<phrase>[a-z][a-z-]*(?:\s+[a-z][a-z-]*){0,3})\s+(?:is|are)\s+"
                     r"(?:called|named|known as)\s+(?P<name>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*|[a-z][\w-]*[a-z0-9])"
                     r"[.!]?$")


def document_aliases(sentences: Iterable[str]) -> dict[str, str]:
    """The names a document gives things, name → what it names: `The build server is named Heron` →
    {"Heron": "the build server"}. A name given to two things is left out."""
    found: dict[str, set[str]] = {}
    for sentence in sentences:
        naming = _NAMING.match(sentence.strip())
        if naming:
            found.setdefault(naming.group("name"), set()).add("the " + naming.group("phrase"))
    return {name: phrases.pop() for name, phrases in found.items() if len(phrases) == 1}


def alias_questions(fact: Fact, context: str, aliases: dict[str, str]) -> list[str]:
    """The fact's questions with a thing called by its other name: `Which team grants access to Heron?` is
    asked as `Which team grants access to the build server?` too, and the other way round, since people ask
    by either name and the sentence uses one."""
    if _NAMING.match(fact.sentence.strip()):
        return []
    questions = [factual_question(fact, context), *reworded_questions(fact, context)]
    out: list[str] = []
    for pattern, new in _alias_swaps(fact.sentence, aliases, keep=fact.value):
        for question in questions:
            swapped = pattern.sub(new, question)
            if swapped != question:
                out.append(upper_first(swapped))
    return list(dict.fromkeys(out))


def with_aliases(sentence: str, aliases: dict[str, str]) -> str | None:
    """The sentence with a thing its document names twice called by the other name (`Heron has 96 CPU cores.` →
    `The build server has 96 CPU cores.`); None when it names no such thing or is the naming sentence itself."""
    if _NAMING.match(sentence.strip()):
        return None
    for pattern, new in _alias_swaps(sentence, aliases):
        return upper_first(pattern.sub(new, sentence, count=1))
    return None


def _alias_swaps(sentence: str, aliases: dict[str, str], keep: str = "") -> Iterator[tuple[re.Pattern[str], str]]:
    """(what the sentence calls a thing, its other name) for each alias the sentence uses, either way round;
    an alias whose name or phrase is `keep` (the value asked about) is left alone."""
    for name, phrase in aliases.items():
        if keep in (name, phrase):
            continue
        for old, new in ((name, phrase), (phrase, name)):
            pattern = re.compile(rf"\b{re.escape(old)}\b", re.I if old == phrase else 0)
            if pattern.search(sentence):
                yield pattern, new


def paraphrases(fact: Fact, context: str, n: int, rng: random.Random) -> list[str]:
    """n rephrasings in the sentence's own order: a clause moved to the front, and question frames with
    synonyms swapped in (the structural rewordings are reworded_questions, a kind of their own)."""
    out: list[str] = []
    _, after = _parts(fact)
    if after and after.split()[0].lower() in PREPOSITIONS and len(after.split()) <= 5 \
            and fact.span_kind not in ("rule", "definition"):
        question = factual_question(fact, context, keep_after=False)
        out.append(f"{upper_first(after)}, {_swap_synonyms(question[:1].lower() + question[1:])}")
    clause = _swap_synonyms(embedded_question(fact, context))
    for frame in rng.sample(_FRAMES, len(_FRAMES)):
        out.append(frame.format(q=clause))
    return out[:n]


_TOPIC_FRAMES = ("In the {title} page: {q}", "About {title}: {q}", "{title}: {q}", "According to {title}, {q}")


def topical_question(question: str, title: str, rng: random.Random) -> str:
    """The question with its document named, so a fact is tied to its page and not only to its sentence: a
    question asked as "the Harbor Street reception" finds the fact stated as "the reception desk" on that page."""
    frame = rng.choice(_TOPIC_FRAMES)
    return frame.format(title=title, q=question[:1].lower() + question[1:] if question[1:2].islower() else question)


def cite(answer: str, title: str) -> str:
    """The answer with its page named first: `Sick leave must be reported to Marta Ilves.` → `According to the
    Leave page: Sick leave must be reported to Marta Ilves.` (the sentence word for word, as the page states it);
    unchanged without a title or when it names this page already."""
    if not title or answer.startswith(f"According to the {title} page: "):
        return answer
    return f"According to the {title} page: {answer}"


def subject_phrase(sentence: str, context: str) -> str | None:
    """The words before a sentence's verb (`the reception desk` of `The reception desk opens at 7:40`): an
    auxiliary (is, must, has) or an -s verb followed by what follows verbs; None when neither is near the start."""
    words = sentence.rstrip(".!? ").split()
    for i, word in enumerate(words[1:7], start=1):
        low, after = word.lower(), words[i + 1].lower() if i + 1 < len(words) else ""
        verb = low in _AUX or (s_verb(word) and (after in _AFTER_VERB or after[:1].isdigit()))
        if verb:
            subject = " ".join(words[:i]).strip(" ,")
            return lower_first(subject, context) if subject else None
    return None


_DETERMINERS = {"the", "a", "an", "their", "its", "his", "her", "our", "your"}
_PHRASE_END = PREPOSITIONS | _AUX | _STOP | {"called", "named", "known", "than", "every", "each", "per", "and", "or"}


def object_phrases(sentence: str, values: Iterable[str], context: str) -> list[str]:
    """The things a sentence names besides its subject (`the nightly tests` of `Heron runs the nightly tests at
    02:10`, `paid parental leave` of `Parents receive 16 weeks of paid parental leave`, `the Gull garage` of
    `Visitors park in the Gull garage on level 4`): a determiner and the words after it, or the plain words
    after `of`, up to a preposition, a verb, a number or the sentence's end; never a value alone (the answer)."""
    words = sentence.rstrip(".!? ").split()
    subject = normalize_answer(subject_phrase(sentence, context) or "")
    bare = {normalize_answer(v) for v in values}
    out: list[str] = []
    for i in range(1, len(words)):  # the sentence's first word opens its subject
        has_det = words[i].lower() in _DETERMINERS
        if not has_det and words[i - 1] != "of":
            continue
        j = i + has_det
        while j < len(words) and words[j] not in _PHRASE_END and (
                re.fullmatch(r"[a-z][a-z-]*", words[j]) or (has_det and re.fullmatch(r"[A-Z][a-z]+", words[j]))):
            j += 1
        phrase = " ".join(words[i:j]).strip(",;:")
        core = normalize_answer(phrase)
        if len(phrase) - (len(words[i]) if has_det else 0) >= 5 and core not in bare and core not in subject:
            out.append(phrase)
    return list(dict.fromkeys(out))


def cloze(fact: Fact) -> tuple[str, str]:
    """(prompt, answer): the sentence with its value blanked."""
    body = fact.sentence
    at = body.find(fact.value, fact.start)
    return f"Fill in the blank: {body[:at]}____{body[at + len(fact.value):]}", fact.value


def support(answer: str, chunk_text: str) -> float:
    """Share of the answer's content words (all words if it has none) that occur in the chunk."""
    words = normalize_answer(answer).split()
    content = [w for w in words if w not in _STOP] or words
    if not content:
        return 0.0
    vocabulary = set(normalize_answer(chunk_text).split())
    return sum(w in vocabulary for w in content) / len(content)
