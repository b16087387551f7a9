"""mine_patterns: read the usage log, find the five kinds of pattern, store them (state kept), say what was found."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from memory.patterns import actionable, preview_patterns, save_patterns
from memory.patterns import patterns as stored_patterns
from memory.store import Store
from tools.patterns import kinds
from tools.patterns.clusters import cluster_vectors, terms_label, top_terms, unit
from tools.patterns.config import MiningConfig, MiningResult
from tools.patterns.embed import embed_texts, wordllama_cache
from tools.patterns.log import Feedback, LoggedRequest, read_feedback, read_requests
from tools.patterns.prompts import PromptGroup, group_prompts

SKIP_REASONS = ("not_ok", "no_content", "malformed", "shadow", "after_now", "feedback_unmatched")
_KEEP_KEY = 0.5
"""A new cluster takes a stored cluster's key (and so its id and state) when it holds this share of its members."""
_COVERED = 0.5
"""A cluster or upstream group mostly made of an actionable pattern's requests gets no goal of its own."""


def mine_patterns(store: Store, *, since: float | None = None, now: float | None = None,
                  config: MiningConfig | None = None, save: bool = True) -> MiningResult:
    """Mine the usage log since `since` (default: all of it) and store what recurs; see the package docstring.

    `now` is the reference time (default: the clock): rows after it are left out, the drift's last day is its
    day and goals say "since Monday" from it. `save=False` stores nothing and shows each pattern with the state
    it would have.
    """
    config = config or MiningConfig()
    now = time.time() if now is None else now
    start = last = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal last
        timings[step], last = round(time.perf_counter() - last, 3), time.perf_counter()

    skipped: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})
    requests, rows_read = read_requests(store, since=since, now=now, skipped=skipped)
    feedback = read_feedback(store)
    known = {r.id for r in requests}
    skipped["feedback_unmatched"] = sum(1 for response in feedback.latest if response not in known)
    lap("read")
    mined, embedder, notes = _mine(store, requests, feedback, config, now, lap)
    if feedback.contradictions:
        notes.append(f"{feedback.contradictions} responses were rated both +1 and -1; each counts once, by its "
                     "latest rating.")
    found = save_patterns(store, mined) if save else preview_patterns(store, mined)
    found.sort(key=lambda p: (-(p["score"] or 0), -p["count"], p["id"]))
    lap("save")
    timings["total"] = round(time.perf_counter() - start, 3)
    result = MiningResult(rows_read=rows_read, rows_used=len(requests), skipped=dict(skipped),
                          counts=dict(Counter(p["kind"] for p in found)),
                          actionable=sum(1 for p in found if actionable(p)), patterns=found, embedder=embedder,
                          notes=notes, timings=timings, saved=save)
    result.message = _message(result)
    return result


def _mine(store: Store, requests: list[LoggedRequest], feedback: Feedback, config: MiningConfig, now: float,
          lap: Any) -> tuple[list[dict[str, Any]], str, list[str]]:
    if not requests:
        return [], "none", []
    groups = group_prompts(requests, config)
    prompts = [(g, _system_pattern(g, config, now)) for g in groups if len(g.members) >= config.min_report_count]
    mined = [p for _, p in prompts]
    lap("system_prompts")
    vectors, embedder, note = embed_texts([r.last_user for r in requests], embedder=config.embedder,
                                          cache_dir=wordllama_cache(),
                                          seed=config.seed)
    lap("embed")
    labels = cluster_vectors(vectors, min_cluster_size=config.min_cluster_size, sample=config.cluster_sample,
                             merge=config.cluster_merge, seed=config.seed)
    lap("cluster")
    covered = {m.id: p["id"] for g, p in prompts if _over(p) for m in g.members}
    clusters = _cluster_patterns(store, requests, vectors, labels, covered, config, now)
    mined += clusters
    mined += _drift_patterns(requests, vectors, labels, clusters, config, now)
    mined += _negative_patterns(store, requests, labels, feedback, config, now)
    lap("clusters_feedback_drift")
    for p in clusters:
        if _over(p):
            covered.update(dict.fromkeys(p["spec"]["request_ids"], p["id"]))
    mined += _upstream_patterns(requests, groups, covered, config, now)
    return mined, embedder, [note] if note else []


def _over(pattern: dict[str, Any]) -> bool:
    """Over its threshold with a goal: what a nightly would act on, whatever state it is stored in."""
    return actionable({**pattern, "state": "new"})


def _system_pattern(group: PromptGroup, config: MiningConfig, now: float) -> dict[str, Any]:
    count, first = len(group.members), group.members[0].ts
    spec: dict[str, Any] = ({"system_hash": group.key, "system_hashes": group.hashes, "strip_system": True}
                            if group.variant == "system" else
                            {"fewshot_hash": group.key, "strip_turns": group.turns, "strip_system": False})
    return kinds.build_pattern(
        "system_prompt", group.key, group.label, group.members, threshold=config.system_prompt_threshold,
        objective="style", examples=config.examples, spec=spec,
        goal=kinds.system_prompt_goal(group.label, group.variant, count, kinds.since_words(first, now)),
        data={"variant": group.variant, "versions": len(group.hashes), "chars": len(group.text),
              "prompt": group.text[:2000]})


def _cluster_patterns(store: Store, requests: list[LoggedRequest], vectors: np.ndarray, labels: np.ndarray,
                      covered: dict[str, str], config: MiningConfig, now: float) -> list[dict[str, Any]]:
    """One pattern per cluster; one mostly made of an actionable prompt's requests gets no goal of its own."""
    members = [[requests[i] for i in np.flatnonzero(labels == c)] for c in range(int(labels.max()) + 1)]
    terms = top_terms([[m.last_user for m in group] for group in members],
                      [requests[i].last_user for i in np.flatnonzero(labels < 0)])
    keys = _stable_keys(store, "cluster", [["+".join(sorted(t)) or "cluster", g] for t, g in zip(terms, members,
                                                                                              strict=True)])
    out = []
    for number, (group, words, key) in enumerate(zip(members, terms, keys, strict=True)):
        label = terms_label(words, [m.last_user for m in group])
        by = Counter(covered[m.id] for m in group if m.id in covered)
        teacher, upstream_model = kinds.teacher_of(group)
        goal = None if sum(by.values()) >= _COVERED * len(group) else kinds.cluster_goal(
            label, len(group), kinds.since_words(group[0].ts, now), teacher, upstream_model)
        out.append(kinds.build_pattern(
            "cluster", key, label, group, threshold=config.cluster_threshold, objective="task",
            examples=config.examples, goal=goal, spec={"terms": words},
            data={"terms": words, "covered_by": sorted(by), "covered_share": round(sum(by.values()) / len(group), 3),
                  "cluster": number}))
    return out


def _stable_keys(store: Store, kind: str, fresh: list[list[Any]]) -> list[str]:
    """Keys for new groups: a stored pattern's key when the group holds most of its members, else the given one.

    Cluster numbers and top terms shift between minings; the members mostly do not, so a cluster keeps its
    id (and its state: handled stays handled) while it is recognisably the same requests.
    """
    previous = [(p["key"], set((p.get("spec") or {}).get("request_ids") or [])) for p in stored_patterns(
        store, kind=kind)]
    claimed: set[str] = set()
    keys = []
    for default, group in sorted(fresh, key=lambda item: -len(item[1])):
        ids = {m.id for m in group}
        best = max(((len(ids & old) / len(old), key) for key, old in previous if old and key not in claimed),
                   default=(0.0, None))
        key = best[1] if best[0] >= _KEEP_KEY and best[1] else default
        while key in claimed:
            key += "+"
        claimed.add(key)
        keys.append((id(group), key))
    by_group = dict(keys)
    return [by_group[id(group)] for _, group in fresh]


def _negative_patterns(store: Store, requests: list[LoggedRequest], labels: np.ndarray, feedback: Feedback,
                       config: MiningConfig, now: float) -> list[dict[str, Any]]:
    """Requests whose latest rating is -1: one group when few, else one per request cluster (small ones: other)."""
    rated = [i for i, r in enumerate(requests) if feedback.latest.get(r.id) == -1]
    if not rated:
        return []
    if len(rated) < 3 * config.min_cluster_size:
        groups = [("all", rated)]
    else:
        by_cluster: dict[int, list[int]] = {}
        for i in rated:
            by_cluster.setdefault(int(labels[i]), []).append(i)
        groups = [(f"c{c}", g) for c, g in sorted(by_cluster.items()) if c >= 0 and len(g) >= config.min_cluster_size]
        other = [i for c, g in by_cluster.items() if c < 0 or len(g) < config.min_cluster_size for i in g]
        groups += [("other", other)] if other else []
    terms = top_terms([[requests[i].last_user for i in g] for _, g in groups])
    fresh = [[key if key == "all" else "+".join(sorted(t)) or key, [requests[i] for i in g]]
             for (key, g), t in zip(groups, terms, strict=True)]
    keys = _stable_keys(store, "negative_feedback", fresh)
    out = []
    for (_, members), words, key in zip(fresh, terms, keys, strict=True):
        label = terms_label(words, [m.last_user for m in members])
        fixes = {m.id: feedback.corrections[m.id] for m in members if m.id in feedback.corrections}
        out.append(kinds.build_pattern(
            "negative_feedback", key, label, members, threshold=config.negative_threshold, objective="task",
            examples=config.examples, spec={"terms": words},
            goal=kinds.negative_goal(label, len(members), kinds.since_words(members[0].ts, now), len(fixes)),
            data={"terms": words, "corrections": fixes, "contradictions": feedback.contradictions}))
    return out


def _upstream_patterns(requests: list[LoggedRequest], groups: list[PromptGroup], covered: dict[str, str],
                       config: MiningConfig, now: float) -> list[dict[str, Any]]:
    """Upstream-answered traffic per upstream model and system prompt: what a distillation could take over."""
    prompt_of = {m.id: g for g in groups for m in g.members if g.variant == "system"}
    by: dict[tuple[str, str | None], list[LoggedRequest]] = {}
    for request in requests:
        if request.source == "upstream":
            group = prompt_of.get(request.id)
            system = group.key if group else request.system_hash
            by.setdefault((request.model or "upstream", system), []).append(request)
    out = []
    for (model, system), members in sorted(by.items(), key=lambda item: -len(item[1])):
        if len(members) < config.min_report_count:
            continue
        group = prompt_of.get(members[0].id)
        prompt_label = group.label if group else ("short system prompt" if system else None)
        label = model + (f" · {prompt_label}" if prompt_label else "")
        taken = Counter(covered[m.id] for m in members if m.id in covered)
        goal = None if sum(taken.values()) >= _COVERED * len(members) else kinds.upstream_goal(
            model, prompt_label, len(members), kinds.since_words(members[0].ts, now))
        spec = {"upstream_model": model, "system_hash": system, "strip_system": False}
        out.append(kinds.build_pattern(
            "upstream", f"{model}|{system or '-'}", label, members, threshold=config.upstream_threshold,
            objective="task", examples=config.examples, goal=goal, spec=spec,
            data={"upstream_model": model, "system_hash": system, "covered_by": sorted(taken)}))
    return out


def _drift_patterns(requests: list[LoggedRequest], vectors: np.ndarray, labels: np.ndarray,
                    clusters: list[dict[str, Any]], config: MiningConfig, now: float) -> list[dict[str, Any]]:
    """Each cluster's share of each day's traffic, and how far its centre moved on the last day (UTC days)."""
    days = np.array([time.strftime("%Y-%m-%d", time.gmtime(r.ts)) for r in requests])
    last = time.strftime("%Y-%m-%d", time.gmtime(now))
    totals = Counter(days.tolist())
    earlier_days = sorted(d for d in totals if d < last)
    if last not in totals or not earlier_days:
        return []
    out = []
    for number, cluster in enumerate(clusters):
        inside = labels == number
        per_day = Counter(days[inside].tolist())
        shares = {d: round(per_day.get(d, 0) / totals[d], 4) for d in sorted(totals)}
        change = shares[last] - float(np.mean([shares[d] for d in earlier_days]))
        on_last, before = inside & (days == last), inside & (days < last)
        distance = None
        if on_last.sum() >= config.drift_min_day and before.sum() >= config.drift_min_day:
            distance = round(1.0 - float(unit(vectors[on_last].mean(axis=0)) @ unit(vectors[before].mean(axis=0))), 4)
        score = max(abs(change) / config.drift_share, (distance or 0.0) / config.drift_distance)
        members = [requests[i] for i in np.flatnonzero(on_last)]
        if score < 1.0 or not members:
            continue
        out.append(kinds.build_pattern(
            "drift", cluster["key"], f"drift: {cluster['label']}", members, threshold=1.0, objective="task",
            examples=config.examples, score=round(score, 3),
            data={"cluster": cluster["id"], "day": last, "shares": shares, "share_change": round(change, 4),
                  "distance": distance, "distance_threshold": config.drift_distance,
                  "share_threshold": config.drift_share}))
    return out


def _message(result: MiningResult) -> str:
    left_out = sum(n for reason, n in result.skipped.items() if reason != "feedback_unmatched")
    if not result.rows_used:
        return (f"Nothing to do: {result.rows_read} logged requests, none with content to mine ({left_out} left "
                "out; serve with --log-content redacted or full to keep content).")
    if not result.actionable:
        return (f"Nothing to do: {result.rows_used} requests mined, {len(result.patterns)} patterns found, none "
                "new and over its threshold.")
    return (f"{result.actionable} of {len(result.patterns)} patterns are new and over their threshold "
            f"({result.rows_used} requests mined, {left_out} left out).")
