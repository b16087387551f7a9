"""`ingrain data ...`: dataset commands (validate, crawl) as a typer sub-app the main CLI mounts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.cli.common import JsonOpt, app, emit_error, emit_json, err
from tools.data.issues import ISSUE_CODES
from tools.data.validate import ValidationReport, validate_dataset
from tools.errors import ToolError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tools.crawl import CrawlSummary

data_app = typer.Typer(help="Dataset commands: validate a dataset before training on it, crawl a site for documents.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

# Typer's rich help keeps single newlines, so each paragraph is one line and each issue code one row.
_SEVERITY_HELP = "\n\n".join(
    f"[bold]{severity}s[/bold] ({'exit 1' if severity == 'error' else 'reported, exit 0'}):\n"
    + "\n".join(f"  {code}: {text}" for code, (sev, text) in ISSUE_CODES.items() if sev == severity)
    for severity in ("error", "warning")
)
_VALIDATE_HELP = (
    "Validate a dataset (JSONL, JSON, CSV, Parquet or a `save_to_disk` folder) and report every issue with "
    "its line (or row) number.\n\n"
    "Accepted record formats: OpenAI `messages`, ShareGPT `conversations`, Alpaca "
    "`instruction`/`input`/`output`, `prompt`/`completion`, and plain `text` (trained as language "
    "modelling, flagged as a warning).\n\n"
    "Exit code 0 when there are no errors, 1 when there is at least one; warnings never fail.\n\n"
    f"{_SEVERITY_HELP}\n\n"
    "Token lengths are estimated (~4 characters per token + 5 per turn) unless --base gives a tokenizer."
)

PathArg = Annotated[Path, typer.Argument(help="Dataset file or saved `datasets` folder.", show_default=False)]
ContextOpt = Annotated[int, typer.Option("--context-length", min=1,
                                         help="Examples longer than this many tokens are flagged.")]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Base model name or folder whose tokenizer and "
                                                            "chat template measure lengths exactly.")]
ValOpt = Annotated[Path | None, typer.Option("--val", help="Validation file to check for overlap with PATH.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=0,
                                       help="Issues to list in the table (--json lists all).")]


_CRAWL_HELP = (
    "Crawl a site politely and save its pages, raw, for training documents.\n\n"
    "robots.txt is obeyed (Disallow, Crawl-delay, Sitemap); one host gets one request per --delay at most; 429 and "
    "5xx are retried with backoff; links are followed on the start URLs' hosts only.\n\n"
    "OUT gets pages/ (one file per page), manifest.jsonl (url, final_url, status, content_type, title, path, "
    "bytes, from_cache), summary.json and .cache/: run the same command again and unchanged pages are "
    "revalidated (304) instead of downloaded, an interrupted crawl continues.\n\n"
    "Private, loopback and link-local addresses are refused unless --allow-private; cloud metadata addresses "
    "always are.\n\n"
    "Exit code 0 when at least one page was saved, 1 when none could be."
)
UrlsArg = Annotated[list[str], typer.Argument(help="Start URLs (http or https).", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for pages/, manifest.jsonl, summary.json and the "
                                                    "cache.", show_default=False)]
MaxPagesOpt = Annotated[int, typer.Option("--max-pages", min=1, help="Pages to save at most.")]
DepthOpt = Annotated[int, typer.Option("--depth", min=0, help="Link hops from a start URL (0: the start URLs "
                                                              "only).")]
DelayOpt = Annotated[float, typer.Option("--delay", min=0.0, help="Seconds between two requests to one host; a "
                                                                  "robots.txt Crawl-delay raises it.")]
AllowPrivateOpt = Annotated[bool, typer.Option("--allow-private", help="Allow private, loopback and link-local "
                                                                       "addresses (an intranet, a local server).")]


@data_app.callback()
def data() -> None:
    """Dataset commands: validate a dataset before training on it, crawl a site for documents."""


@data_app.command("crawl", help=_CRAWL_HELP)
def crawl(urls: UrlsArg, out: OutOpt, max_pages: MaxPagesOpt = 50, depth: DepthOpt = 2,
          delay: DelayOpt = 1.0, allow_private: AllowPrivateOpt = False, as_json: JsonOpt = False) -> None:
    # Imported here: httpx and Protego are not needed for `ingrain --help`.
    from tools.crawl import CrawlConfig, CrawlError
    from tools.crawl import crawl as run_crawl

    config = CrawlConfig(max_pages=max_pages, max_depth=depth, min_interval_s=delay, allow_private=allow_private,
                         progress=True)
    try:
        summary = run_crawl(urls, out, config)
    except CrawlError as exc:
        if as_json:
            emit_json({"error": {"type": "CrawlError", "message": str(exc), "exit_code": 1},
                       "summary": exc.summary})
            raise typer.Exit(code=1) from None
        _fail(str(exc), as_json)
    except KeyboardInterrupt:
        err.print(f"interrupted: what was fetched is in {escape(str(out))}/.cache; run the same command again to "
                  "continue from it.", highlight=False)
        raise typer.Exit(code=130) from None
    if as_json:
        emit_json(summary.to_dict())
    else:
        _render_crawl(Console(highlight=False), summary)


@data_app.command("validate", help=_VALIDATE_HELP)
def validate(path: PathArg, as_json: JsonOpt = False, context_length: ContextOpt = 2048, base: BaseOpt = None,
             val: ValOpt = None, limit: LimitOpt = 50) -> None:
    console = Console(highlight=False)
    try:
        tokenizer = _tokenizer(base) if base else None
    except ToolError as exc:
        _fail(str(exc), as_json)
    report = validate_dataset(path, tokenizer=tokenizer, context_length=context_length, val_path=val)
    unread = [i.message for i in report.issues if i.code in ("missing_file", "unreadable_file")]
    if unread and report.n_records == 0:
        # Nothing was read, so there is no report to give: a table (or document) of zeros would hide the one
        # thing to fix. This is the command failing, in the shape every command fails in.
        _fail(" ".join(unread), as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        _render(console, report, limit)
    if not report.ok:
        raise typer.Exit(code=1)


def _tokenizer(base: str) -> PreTrainedTokenizerBase:
    # Imported here: loading transformers would make `ingrain --help` slow.
    from tools.models import load_tokenizer, resolve_base

    return load_tokenizer(resolve_base(base).path)


def _fail(message: str, as_json: bool) -> NoReturn:
    if as_json:
        emit_error("ToolError", message, 1)
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code=1)


def _render(console: Console, report: ValidationReport, limit: int) -> None:
    summary = Table(title=f"Dataset {escape(report.path)}", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("records", str(report.n_records))
    summary.add_row("valid", str(report.n_valid))
    summary.add_row("formats", ", ".join(f"{k} {v}" for k, v in sorted(report.formats.items())) or "-")
    summary.add_row("errors", f"[red]{len(report.errors)}[/red]" if report.errors else "0")
    summary.add_row("warnings", f"[yellow]{len(report.warnings)}[/yellow]" if report.warnings else "0")
    if report.val_path:
        summary.add_row("checked against", escape(report.val_path))
    console.print(summary)

    if report.lengths:
        s = report.lengths
        lengths = Table(title=f"Token lengths ({s.method})", title_justify="left")
        for column in ("min", "p50", "p95", "max", f"> {s.context_length}"):
            lengths.add_column(column, justify="right")
        lengths.add_row(str(s.min), str(s.p50), str(s.p95), str(s.max), str(s.over_limit))
        console.print(lengths)

    if report.issues:
        counts = Table(title="Issues by kind", title_justify="left")
        for column in ("severity", "code", "count"):
            counts.add_column(column, justify="right" if column == "count" else "left")
        by_kind = sorted(report.issue_counts().items(), key=lambda kv: (ISSUE_CODES[kv[0]][0], kv[0]))
        for code, count in by_kind:
            counts.add_row(_severity(ISSUE_CODES[code][0]), code, str(count))
        console.print(counts)
        table = Table(title=f"Issues ({min(limit, len(report.issues))} of {len(report.issues)})",
                      title_justify="left")
        table.add_column(report.location, justify="right")
        table.add_column("severity")
        table.add_column("code")
        table.add_column("message", overflow="fold")
        for item in report.issues[:limit]:
            table.add_row(str(item.line or "-"), _severity(item.severity), item.code, escape(item.message))
        console.print(table)

    if report.ok:
        console.print(f"[green]ok[/green]: {report.n_valid} valid examples"
                      + (f", {len(report.warnings)} warnings" if report.warnings else ""))
    else:
        console.print(f"[red]{len(report.errors)} errors[/red]: fix the {report.location}s listed above "
                      "(warnings alone do not fail validation).")


def _severity(severity: str) -> str:
    return f"[red]{severity}[/red]" if severity == "error" else f"[yellow]{severity}[/yellow]"


def _render_crawl(console: Console, summary: CrawlSummary) -> None:
    table = Table(title=f"Crawl into {escape(summary.out_dir)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [("pages saved", summary.pages_saved), ("downloaded", summary.fetched),
            ("unchanged (304, from cache)", summary.from_cache), ("skipped by robots.txt", summary.skipped_robots),
            ("skipped (not text)", summary.skipped_type), ("refused (private address)", summary.refused),
            ("retries", summary.retries), ("gave up", summary.gave_up), ("cut at the page cap", summary.truncated),
            ("bytes saved", f"{summary.bytes_saved:,}"), ("bytes downloaded", f"{summary.bytes_downloaded:,}"),
            ("seconds", f"{summary.elapsed_s:.1f}")]
    for name, value in rows:
        table.add_row(name, str(value))
    errors = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.errors.items()))
    table.add_row("errors", f"[red]{errors}[/red]" if errors else "0")
    console.print(table)
    for note in summary.notes:
        console.print(f"[yellow]note[/yellow]: {escape(note)}")
    if summary.failures:
        failures = Table(title=f"Failures ({min(10, len(summary.failures))} of {len(summary.failures)})",
                         title_justify="left")
        failures.add_column("kind")
        failures.add_column("url", overflow="fold")
        failures.add_column("detail", overflow="fold")
        for failure in summary.failures[:10]:
            failures.add_row(failure["kind"], escape(failure["url"]), escape(failure["detail"]))
        console.print(failures)
    console.print(f"[green]ok[/green]: {summary.pages_saved} pages in {escape(summary.pages_dir)}, listed in "
                  f"{escape(summary.manifest_path)}")
