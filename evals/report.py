"""The run's self-contained HTML report: plan, data, sweep, loss curves, evaluation, before/after samples."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any

from evals import report_data
from evals.timing import estimate_vs_actual
from memory.workspace import atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem} td,th{border:1px solid #ddd;padding:.3rem .5rem;
vertical-align:top;text-align:left} th{background:#f4f4f4} .pass{color:#0a7a2f;font-weight:bold}
.fail{color:#b00020;font-weight:bold} pre{background:#f7f7f7;padding:.6rem;white-space:pre-wrap;font-size:.85rem}
.sample td{max-width:330px;white-space:pre-wrap} img{max-width:100%}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, cls: str = "") -> str:
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return esc(json.dumps(value, default=str))
    return esc(value)


def plot_png(draw: Any, alt: str = "plot") -> str:
    """Render a matplotlib drawing function to an inline <img> (the report stays one file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def loss_curve_plot(curves: dict[str, list[dict[str, Any]]]) -> str:
    def draw(ax: Any) -> None:
        for label, curve in curves.items():
            train = [(p["step"], p["loss"]) for p in curve if p.get("loss") is not None]
            val = [(p["step"], p["val_loss"]) for p in curve if p.get("val_loss") is not None]
            if train:
                ax.plot(*zip(*train, strict=True), label=f"{label} train")
            if val:
                ax.plot(*zip(*val, strict=True), marker="o", linestyle="--", label=f"{label} val")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)

    return plot_png(draw)


def sweep_plot(trials: list[dict[str, Any]], winner: str | None) -> str:
    """Validation loss per trial (winner green, diverged/failed trials a red cross) beside their training curves."""
    curves = {t["name"]: [(p["step"], p["loss"]) for p in t.get("loss_curve") or [] if p.get("loss") is not None]
              for t in trials}
    curves = {name: points for name, points in curves.items() if points}
    # One colour per trial in both panels; green is kept for the winner.
    others = iter(["tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive",
                   "tab:cyan"] * 2)
    colors = {t["name"]: "tab:green" if t["name"] == winner else next(others) for t in trials}

    def draw(ax: Any) -> None:
        if curves:
            grid = ax.figure.add_gridspec(1, 2)
            ax.set_subplotspec(grid[0])
            _sweep_curves(ax.figure.add_subplot(grid[1]), curves, winner, colors)
        top = max((t["val_loss"] for t in trials if t.get("val_loss") is not None), default=1.0)
        for x, t in enumerate(trials):
            if t.get("val_loss") is None:
                # No loss to draw: a cross on the axis says the trial was stopped, and why.
                ax.scatter([x], [0], marker="x", s=80, color="tab:red", zorder=3, clip_on=False)
                ax.annotate(t.get("status") or "?", (x, top * 0.06), ha="center", color="tab:red", fontsize=8)
                continue
            won = t["name"] == winner
            ax.bar(x, t["val_loss"], color=colors[t["name"]], width=0.6)
            ax.annotate(f"{t['val_loss']:.3f}" + (" winner" if won else ""), (x, t["val_loss"]), ha="center",
                        va="bottom", fontsize=7, fontweight="bold" if won else "normal")
        ax.set_xticks(range(len(trials)), [t["name"] for t in trials])
        ax.set_ylim(0, top * 1.15)
        ax.set_title("validation loss per trial", fontsize=9)
        ax.grid(alpha=0.3, axis="y")

    return plot_png(draw, alt="sweep plot")


def _sweep_curves(ax: Any, curves: dict[str, list[tuple[float, float]]], winner: str | None,
                  colors: dict[str, str]) -> None:
    for name, points in curves.items():
        ax.plot(*zip(*points, strict=True), label=name + (" (winner)" if name == winner else ""),
                color=colors[name], linewidth=2.2 if name == winner else 1.0)
    ax.set_xlabel("step")
    ax.set_title("training loss", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def metric_bars(metrics: list[dict[str, Any]]) -> str:
    def draw(ax: Any) -> None:
        names = [m["name"] for m in metrics]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [m.get("base") or 0 for m in metrics], width=0.4, label="base")
        ax.bar([x + 0.2 for x in xs], [m.get("tuned") or 0 for m in metrics], width=0.4, label="tuned")
        ax.set_xticks(list(xs), names, rotation=20, fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")

    return plot_png(draw)


def write_report(path: Path, *, run: dict[str, Any], state: Any, events: list[dict[str, Any]]) -> Path:
    """Write the report for `run` from the graph state and its trace events; returns the path."""
    get = state.get if isinstance(state, dict) else lambda key, default=None: getattr(state, key, default)
    parts = [f"<h1>ingrain run {esc(run['id'])}</h1>",
             f"<p><strong>Goal:</strong> {esc(run['goal'])}<br><strong>Policy:</strong> {esc(run['policy'])} · "
             f"<strong>Written:</strong> {time.strftime('%Y-%m-%d %H:%M')}</p>"]
    if get("stop_reason"):
        parts.append(f"<p class='fail'>Stopped early: {esc(get('stop_reason'))}</p>")
    parts += report_sections(state, events).values()
    parts.append("<h2>Trace</h2>" + table(
        [{"time": time.strftime("%H:%M:%S", time.localtime(e["ts"])), "node": e["node"], "kind": e["kind"],
          "name": e["name"], "seconds": e["duration_s"]} for e in events if e["kind"] != "node_start"]))
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>ingrain run {esc(run['id'])}</title>"
                f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    return atomic_write_text(Path(path), document)


def report_sections(state: Any, events: list[dict[str, Any]]) -> dict[str, str]:
    """The report's parts as HTML by name (plan, data, sweep, evaluation, deployment), empty where the run has not
    got that far; every value in them is escaped. The report file and the web console show the same parts."""
    get = state.get if isinstance(state, dict) else lambda key, default=None: getattr(state, key, default)
    plan = _plan_section(get("plan"), get("spec"))
    timing = estimate_vs_actual((get("plan") or {}).get("estimate", {}).get("minutes", {}), events)
    if timing:
        plan += ["<h3>Estimate vs actual (minutes per step)</h3>", table(timing)]
    data = [*_data_section(get("dataset")), *report_data.data_report(get("plan"), get("documents"), get("dataset"))]
    return {"plan": "".join(plan), "data": "".join(data),
            "sweep": "".join(_sweep_section(get("sweep"), get("training"))),
            "evaluation": "".join(_evaluation_section(get("evaluation"))),
            "deployment": "".join(_deployment_section(get("deployment")))}


def _plan_section(plan: dict[str, Any] | None, spec: dict[str, Any] | None) -> list[str]:
    if not plan:
        return []
    est = plan.get("estimate", {})
    return ["<h2>Plan</h2>",
            f"<p>Objective <strong>{esc(plan['objective'])}</strong> on <strong>{esc(plan['base_model'])}</strong>, "
            f"budget {esc(plan.get('budget_minutes'))} min on {esc(plan.get('hardware', {}).get('device'))}.</p>",
            table([{"kind": s["kind"], "location": s["location"]} for s in plan.get("sources", [])]),
            f"<p>Estimate: ~{esc(est.get('examples'))} examples, ~{esc(est.get('tokens'))} tokens; minutes "
            f"{esc(json.dumps(est.get('minutes', {})))}</p>",
            "<h3>Sweep grid</h3>" + table(plan.get("grid", [])),
            f"<details><summary>Task spec</summary><pre>{esc(json.dumps(spec, indent=2))}</pre></details>"]


def _data_section(dataset: dict[str, Any] | None) -> list[str]:
    if not dataset:
        return []
    report = dataset.get("report") or {}
    counts = {k: dataset.get(k) for k in ("n_train", "n_val", "n_test")}
    return ["<h2>Data</h2>", table([counts]),
            f"<p>Dataset {esc(dataset.get('dataset_id'))}; the test hold-out is stored apart and never trained on."
            "</p>", f"<details><summary>Validation report</summary><pre>{esc(json.dumps(report, indent=2))[:20000]}"
            "</pre></details>"]


def _sweep_section(sweep: dict[str, Any] | None, training: dict[str, Any] | None) -> list[str]:
    parts = []
    if sweep:
        rows = [{"trial": t["name"], **t["overrides"], "status": t["status"], "val loss": t["val_loss"],
                 "train loss": t["train_loss"], "metric": t["metric"], "tok/s": t["tokens_per_s"],
                 "wall s": t["wall_seconds"]} for t in sweep["trials"]]
        columns = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
        where = f"<br>Executor: {esc(sweep['executor'])}" if sweep.get("executor") else ""
        parts += ["<h2>Sweep</h2>", f"<p>Winner <strong>{esc(sweep.get('winner'))}</strong>: "
                  f"{esc(sweep.get('reason'))}{where}</p>", table(rows, columns),
                  sweep_plot(sweep["trials"], sweep.get("winner"))]
    if training:
        curves = {"final": training.get("loss_curve") or []}
        parts += ["<h2>Training</h2>",
                  f"<p>{esc(training.get('steps'))} steps, {esc(round(training.get('tokens_per_s') or 0))} tokens/s, "
                  f"{esc(training.get('precision'))} on {esc(training.get('backend'))}, "
                  f"{esc(round(training.get('wall_seconds') or 0))} s, peak RSS {esc(training.get('peak_rss_mb'))} MB."
                  "</p>"]
        if curves["final"]:
            parts.append(loss_curve_plot(curves))
        if training.get("goal_curve"):
            parts += [f"<p>Goal metric on the validation sample (scored during training): kept the weights of "
                      f"step {esc(training.get('best_goal_step'))} (goal metric "
                      f"{esc(training.get('best_goal_metric'))}); "
                      f"stopped: {esc(training.get('stop_reason'))}.</p>", table(training["goal_curve"])]
    return parts


def _evaluation_section(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return []
    verdict = evaluation.get("verdict", {})
    status = verdict.get("status", "?")
    parts = ["<h2>Evaluation</h2>",
             f"<p>Verdict: <span class='{esc(status)}'>{esc(status)}</span></p>",
             "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in verdict.get("reasons", [])) + "</ul>"]
    metrics = evaluation.get("metrics") or {}
    if metrics:
        rows = [{"metric": name, "base": _interval(m["base"]), "tuned": _interval(m["tuned"]),
                 "tuned − base": _interval(m["delta"]), "n": m["base"].get("n")} for name, m in metrics.items()]
        parts += [f"<p>Primary metric for this objective: <strong>{esc(evaluation.get('primary_metric'))}"
                  "</strong>; 95% bootstrap intervals (widened when the hold-out is small).</p>", table(rows),
                  metric_bars([{"name": name, "base": m["base"]["mean"], "tuned": m["tuned"]["mean"]}
                               for name, m in metrics.items() if name != "holdout_nll"])]
    knowledge = evaluation.get("knowledge") or {}
    if knowledge:
        base_sources = (knowledge.get("base") or {}).get("by_source", {})
        tuned_sources = (knowledge.get("tuned") or {}).get("by_source", {})
        excerpts = knowledge.get("base_with_excerpts")
        rows = [{"source": source, "questions": tuned.get("n"),
                 "base recall": base_sources.get(source, {}).get("recall"),
                 **({"base with excerpts": excerpts["by_source"].get(source, {}).get("recall")} if excerpts else {}),
                 "tuned recall": tuned.get("recall")}
                for source, tuned in tuned_sources.items()]
        parts += ["<h3>Knowledge recall per source (reply holds the fact)</h3>", table(rows)]
        if excerpts:
            parts.append(f"<p>The tuned model is asked with the sources' nearest sentences above each question, as "
                         f"it is served. The base given the same excerpts answers {excerpts['recall']:.0%}, the "
                         f"tuned model {(knowledge.get('tuned') or {}).get('recall', 0):.0%}: the difference is what "
                         "training adds to the excerpts.</p>")
    style = evaluation.get("style") or {}
    if style:
        base_rates = (style.get("base") or {}).get("per_check", {})
        tuned_rates = (style.get("tuned") or {}).get("per_check", {})
        required = set((style.get("required") or {}).get("checks", []))
        rows = [{"check": check, "required": "yes" if check in required else "optional",
                 "base pass rate": base_rates.get(check), "tuned pass rate": rate}
                for check, rate in sorted(tuned_rates.items(), key=lambda kv: kv[0] not in required)]
        rows.append({"check": "overall", "base pass rate": (style.get("base") or {}).get("overall"),
                     "tuned pass rate": (style.get("tuned") or {}).get("overall")})
        parts += ["<h3>Style profile (what “in style” was taken to mean)</h3>",
                  f"<pre>{esc(style.get('description'))}</pre>", table(rows)]
    regression = evaluation.get("regression") or {}
    if regression:
        parts += ["<h3>Regression suite</h3>",
                  "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in regression.get("reasons", [])) + "</ul>",
                  table([{k: regression.get(k) for k in ("pass_rate_base", "pass_rate_tuned", "nll_base",
                                                         "nll_tuned", "lost", "gained")}])]
    samples = evaluation.get("samples") or []
    if samples:
        parts += ["<h3>Before / after (hold-out)</h3>", table(samples, cls="sample")]
    return parts


def _interval(ci: dict[str, Any]) -> str:
    return f"{ci['mean']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _deployment_section(deployment: dict[str, Any] | None) -> list[str]:
    if not deployment:
        return []
    name = esc(deployment["name"])
    curl = ("curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' "
            "-H 'Authorization: Bearer $INGRAIN_KEY' "
            f"-d '{{\"model\": \"{name}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'")
    snippet = ("from openai import OpenAI\n"
               "client = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key=KEY)\n"
               f"reply = client.chat.completions.create(model='{name}', "
               "messages=[{'role': 'user', 'content': 'Hello'}])\nprint(reply.choices[0].message.content)")
    state = "promoted to production" if deployment.get("promoted") else "registered as a candidate"
    return ["<h2>Deployment</h2>", f"<p>Version <strong>{name}</strong> {state}: {esc(deployment.get('reason'))}</p>",
            "<p>Serve it with <code>ingrain serve</code> (create a key with <code>ingrain keys create --name me"
            "</code>), then:</p>", f"<pre>{curl}</pre>", f"<pre>{esc(snippet)}</pre>"]


def write_nightly_report(path: Path, nightly: dict[str, Any]) -> Path:
    """A nightly's report: what mining found, which pattern runs started, their verdicts, what was promoted."""
    mining = nightly.get("mining") or {}
    rows = [{"pattern": p["pattern_id"], "goal": p["goal"], "action": p["action"], "run": p.get("run_id"),
             "examples": (p.get("data") or {}).get("n_examples"), "verdict": p.get("verdict"),
             "promoted": "yes" if p.get("promoted") else "no", "minutes": p.get("minutes"), "reason": p["reason"]}
            for p in nightly.get("patterns", [])]
    parts = [f"<h1>ingrain nightly {esc(nightly.get('nightly_id'))}</h1>",
             f"<p>{esc(nightly.get('message'))}<br><strong>Production:</strong> "
             f"{esc(nightly.get('production_before') or 'none')} → {esc(nightly.get('production_after') or 'none')}"
             f" · <strong>Wall time:</strong> {esc(nightly.get('wall_seconds'))} s · "
             f"<strong>Written:</strong> {time.strftime('%Y-%m-%d %H:%M')}</p>",
             "<h2>Pattern runs</h2>", table(rows),
             "<h2>Mining</h2>", f"<pre>{esc(json.dumps(mining, indent=2, default=str))}</pre>"]
    if nightly.get("recovered"):
        parts.append(f"<p>Interrupted nightlies found and closed: {esc(nightly['recovered'])}</p>")
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>ingrain nightly "
                f"{esc(nightly.get('nightly_id'))}</title><style>{CSS}</style></head><body>{''.join(parts)}"
                "</body></html>")
    return atomic_write_text(Path(path), document)
