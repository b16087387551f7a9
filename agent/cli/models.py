"""`ingrain models ...`: the model registry (list, promote, roll back) and exporting a version."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.common import JsonOpt, app, emit_json, err, out

models_app = typer.Typer(help="The model registry: list, promote, roll back, export.", invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List model versions (production marked); `promote NAME` and `rollback` change production."""
    if ctx.invoked_subcommand:
        return
    from agent.render import models_table
    from memory import Store

    with Store.open() as store:
        rows = store.models()
    if as_json:
        emit_json({"models": rows})
    else:
        out.print(models_table(rows))


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="Version name from `ingrain models`.")]) -> None:
    """Make NAME the production version; a running `ingrain serve` switches to it without a restart."""
    from memory import Store

    with Store.open() as store:
        row = store.promote(name)
    out.print(f"{row['name']} is now in production.")


@models_app.command("rollback")
def models_rollback() -> None:
    """Put the previous production version back, instantly."""
    from memory import Store

    with Store.open() as store:
        row = store.rollback()
    out.print(f"Rolled back: {row['name']} is in production again.")


@models_app.command("export")
def models_export(
    name: Annotated[str, typer.Argument(help="Version name from `ingrain models` (or a base model name).",
                                        show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="hf: a Hugging Face folder for vLLM / transformers; "
                                     "gguf: one file for llama.cpp / Ollama / LM Studio.")] = "hf",
    quant: Annotated[str | None, typer.Option("--quant", help="GGUF only: f32 | f16 (default; as the float "
                                              "model) | q8_0 (half of f16) | q4_k_m (needs llama-cpp-python).")]
    = None,
    out_path: Annotated[str | None, typer.Option("--out", help="Folder (hf), or .gguf file or folder (gguf). "
                                                 "Default: $INGRAIN_HOME/exports/.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version with its adapter merged in: an HF folder for vLLM, or a GGUF file for llama.cpp."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from memory import Store
    from tools.export.version import export_version

    store = Store.open()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task(f"exporting {name}", total=None)
            result = export_version(
                store, name, fmt, out=Path(out_path) if out_path else None, quant=quant,
                progress=lambda stage, done, total: bar.update(task, description=stage, completed=done,
                                                               total=total))
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
        return
    size = f"{result.bytes / 1e6:,.1f} MB"
    out.print(f"Exported {result.name} ({result.kind}) as {result.format}"
              f"{' ' + result.quant if result.quant else ''}: {result.path} ({size}, {result.seconds:.1f}s)",
              highlight=False, soft_wrap=True)
    if result.format == "hf":
        out.print(f"Serve it on a GPU machine: vllm serve {result.path} --served-model-name {result.name}",
                  highlight=False, soft_wrap=True)
    else:
        out.print(f"Serve it with llama.cpp: llama-server -m {result.path}", highlight=False, soft_wrap=True)
    if result.note:
        out.print(f"Note: {result.note}", highlight=False, soft_wrap=True)
