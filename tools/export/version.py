"""Export a model version for other runtimes: a standalone HF folder (vLLM, transformers) or one GGUF file."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memory import Store, Workspace
from memory.errors import StoreError
from memory.workspace import atomic_dir
from tools.errors import ToolError
from tools.export.gguf import (
    DEFAULT_GGUF_QUANT,
    GGUF_QUANTS,
    hf_chat_template,
    original_gguf,
    plain_chat_template,
    write_gguf,
)
from tools.models import ALIASES, DEFAULT_BASE, is_adapter_dir, resolve_base
from tools.progress import Progress

FORMATS = ("hf", "gguf")
EXPORT_MARKER = "ingrain-export.json"
# What a standalone HF folder needs; optimizer state, training args and checkpoints stay behind.
HF_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model",
            "added_tokens.json", "model.safetensors.index.json")
ExportProgress = Progress
"""Called as `progress(stage, done, total)` while an export runs (the tools' one progress callback type)."""


@dataclass
class ExportResult:
    """What `export_version` wrote."""

    name: str
    """The version (or base model) that was exported."""
    format: str
    """hf | gguf."""
    path: str
    """The folder (hf) or file (gguf) written."""
    quant: str | None
    """GGUF quantisation (f32 | f16 | q8_0 | q4_k_m); None for hf (float32 weights as trained)."""
    bytes: int
    """Size on disk."""
    kind: str
    """What the version was: base | adapter (merged on export) | merged | full."""
    source: str
    """The weights it was made from."""
    seconds: float
    """Wall time of the export."""
    note: str = ""
    """What the export leaves out that serving does (a knowledge version's excerpt index)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExportSource:
    """Where a version's weights are: a complete HF folder, or an adapter plus the base it needs."""

    name: str
    kind: str
    base: str | None
    """The base model's name or folder, as registered."""
    hf_dir: Path | None
    """A complete model folder (merged, full or base); None for a bare adapter."""
    adapter_dir: Path | None = None
    workspace: Workspace | None = None
    """Whose model cache holds the base."""

    def base_dir(self) -> Path:
        """The base's folder, converted into the cache first if it is the built-in one."""
        if self.base is None:
            raise ToolError(f"Model version {self.name} records no base model to merge its adapter into.")
        return resolve_base(self.base, self.workspace).path


def resolve_source(store: Store, name: str, workspace: Workspace | None = None) -> ExportSource:
    """A registered version by name, else a built-in base name or a model folder; unknown names list the versions."""
    try:
        row = store.model(name)
    except StoreError as exc:
        if name.lower() in ALIASES or (Path(name).expanduser() / "config.json").is_file():
            return ExportSource(name, "base", name, resolve_base(name, workspace).path, workspace=workspace)
        raise ToolError(f"{exc} `ingrain models` lists them; base models export too "
                        f"(`{DEFAULT_BASE}` or a model folder).") from None
    path = Path(row["path"])
    if not path.exists():
        raise ToolError(f"Model version {name} points at {path}, which is missing: nothing to export.")
    if row["kind"] == "adapter" or is_adapter_dir(path):
        return ExportSource(name, "adapter", row["base"], None, path, workspace)
    return ExportSource(name, row["kind"], row["base"], path, workspace=workspace)


def default_out(workspace: Workspace, name: str, fmt: str, quant: str | None) -> Path:
    safe = Path(name).name
    if fmt == "gguf":
        return workspace.root / "exports" / f"{safe}-{(quant or DEFAULT_GGUF_QUANT).upper()}.gguf"
    return workspace.root / "exports" / safe


def export_version(store: Store, name: str, fmt: str = "hf", *, out: Path | None = None, quant: str | None = None,
                   workspace: Workspace | None = None, progress: ExportProgress | None = None) -> ExportResult:
    """Export version `name` as a standalone HF folder or one GGUF file; adapters are merged into their base."""
    started = time.time()
    if fmt not in FORMATS:
        raise ToolError(f"Unknown export format {fmt!r}: use --format hf (vLLM, transformers) or --format gguf "
                        "(llama.cpp, Ollama, LM Studio).")
    if fmt == "hf" and quant not in (None, "f32"):
        raise ToolError(f"--quant {quant} applies to GGUF only: the HF folder keeps the float32 weights as trained "
                        "(vLLM casts at load time with --dtype bfloat16 or float16). For a quantised file use "
                        "--format gguf.")
    if fmt == "gguf":
        quant = quant or DEFAULT_GGUF_QUANT
        if quant not in GGUF_QUANTS:
            raise ToolError(f"Unknown GGUF quantisation {quant!r}: use one of {', '.join(GGUF_QUANTS)}.")
    ws = workspace or Workspace.from_env()
    source = resolve_source(store, name, ws)
    target = _target(Path(out).expanduser() if out else default_out(ws, name, fmt, quant), name, fmt, quant)
    report = progress or (lambda stage, done, total: None)
    if fmt == "hf":
        with atomic_dir(target) as tmp:
            _write_hf(source, tmp, report)
            if (index := _grounding_dir(source)) is not None:
                shutil.copytree(index, tmp / index.name)
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    else:
        with _gguf_inputs(source, target.parent, report) as (hf_dir, weights):
            write_gguf(hf_dir, target, quant=quant or DEFAULT_GGUF_QUANT, name=name, template=_gguf_template(source),
                       weights=weights, progress=lambda done, total: report("writing GGUF tensors", done, total))
        size = target.stat().st_size
    origin = source.adapter_dir or source.hf_dir
    return ExportResult(name, fmt, str(target), quant if fmt == "gguf" else None, size, source.kind, str(origin),
                        round(time.time() - started, 1), note=_grounding_note(source, fmt, target))


def _grounding_dir(source: ExportSource) -> Path | None:
    """A knowledge version's excerpt index, kept beside its weights."""
    from tools.deploy import GROUNDING_DIR

    origin = source.adapter_dir or source.hf_dir
    index = origin.parent / GROUNDING_DIR if origin is not None else None
    return index if index is not None and index.is_dir() else None


def _grounding_note(source: ExportSource, fmt: str, target: Path) -> str:
    """A knowledge version is served with excerpts from its index; weights alone answer without them."""
    index = _grounding_dir(source)
    if index is None:
        return ""
    where = f"it is copied to {target / index.name}" if fmt == "hf" else f"it stays in {index}"
    return (f"{source.name} was trained and judged with excerpts from its sources above each question "
            f"(tools.grounding; {where}). The exported weights do not carry them: served elsewhere, put the nearest "
            "sentences above each question the same way, or expect the lower recall of the weights alone.")


def _target(path: Path, name: str, fmt: str, quant: str | None) -> Path:
    """Where to write, refusing to replace anything that is not an earlier export."""
    path = path.resolve()
    if fmt == "gguf":
        if path.is_dir() or path.suffix != ".gguf":
            path = path / f"{Path(name).name}-{(quant or DEFAULT_GGUF_QUANT).upper()}.gguf"
        if path.exists() and not path.is_file():
            raise ToolError(f"{path} exists and is not a file: choose another --out.")
        return path
    if path.is_file() or (path.is_dir() and any(path.iterdir()) and not (path / EXPORT_MARKER).is_file()):
        raise ToolError(f"{path} already exists and is not an ingrain export; refusing to replace it. "
                        "Choose another --out (a new folder) or remove it first.")
    return path


@contextmanager
def _gguf_inputs(source: ExportSource, scratch_parent: Path, report: ExportProgress
                 ) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """(folder with config and tokenizer, merged weights in memory or None to read the folder's safetensors)."""
    if source.hf_dir is not None:
        yield source.hf_dir, None
        return
    from tools.models import adapter_tokenizer_dir, load_merged

    assert source.adapter_dir is not None
    base_dir = source.base_dir()
    report("merging adapter into its base", 0, 1)
    # Merged in memory: writing the merged safetensors only to read them back would double the disk traffic.
    weights = load_merged(base_dir, source.adapter_dir).state_dict()
    report("merging adapter into its base", 1, 1)
    tokenizer_dir = adapter_tokenizer_dir(base_dir, source.adapter_dir)
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=scratch_parent) as scratch:
        for folder in (base_dir, tokenizer_dir):
            for file in (folder / n for n in HF_FILES if n != "model.safetensors.index.json"):
                if file.is_file():
                    shutil.copy2(file, Path(scratch) / file.name)
        yield Path(scratch), weights


def _merge(source: ExportSource, out_dir: Path, report: ExportProgress) -> Path:
    from tools.deploy import merge_adapter

    assert source.adapter_dir is not None
    report("merging adapter into its base", 0, 1)
    merge_adapter(source.base_dir(), source.adapter_dir, out_dir)
    report("merging adapter into its base", 1, 1)
    return out_dir


def _gguf_template(source: ExportSource) -> Path | None:
    """The GGUF the version's base came from, whose vocabulary and metadata the export keeps."""
    if source.kind == "base":
        return original_gguf(source.hf_dir) if source.hf_dir else None
    if source.base is None:
        return None
    try:
        base_dir = source.base_dir()
    except ToolError:
        return None  # the base folder is gone: the export describes the tokenizer from the version's own files
    return original_gguf(base_dir)


def _write_hf(source: ExportSource, tmp: Path, report: ExportProgress) -> None:
    if source.hf_dir is None:
        _merge(source, tmp, report)
    else:
        weights = sorted(source.hf_dir.glob("*.safetensors"))
        if not weights:
            raise ToolError(f"{source.hf_dir} has no *.safetensors weights; re-save it with "
                            "`model.save_pretrained(dir, safe_serialization=True)`.")
        files = [f for f in (source.hf_dir / n for n in HF_FILES) if f.is_file()] + weights
        for done, file in enumerate(files, 1):
            shutil.copy2(file, tmp / file.name)
            report("copying files", done, len(files))
    make_portable(tmp)
    (tmp / EXPORT_MARKER).write_text(json.dumps(
        {"name": source.name, "kind": source.kind, "base": source.base,
         "source": str(source.adapter_dir or source.hf_dir), "exported": time.time()}, indent=2))


def make_portable(folder: Path) -> None:
    """Write the folder so that older transformers releases (and so vLLM's) read it as this one does.

    transformers 5 writes `rope_parameters`, `dtype` and the `TokenizersBackend` class; 4.x reads `rope_theta`
    (silently defaulting to 10000 without it), `torch_dtype` and `PreTrainedTokenizerFast`. The chat
    template loses its `{% generation %}` training markers, which renders the same text.
    """
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config.pop("quantization_config", None)
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope and "rope_theta" not in config:
        config["rope_theta"] = rope["rope_theta"]
    if "dtype" in config and "torch_dtype" not in config:
        config["torch_dtype"] = config["dtype"]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = folder / "generation_config.json"
    if not generation.is_file():
        keys = ("bos_token_id", "eos_token_id", "pad_token_id")
        generation.write_text(json.dumps({k: config[k] for k in keys if config.get(k) is not None}, indent=2))
    tokenizer_config_file = folder / "tokenizer_config.json"
    if tokenizer_config_file.is_file():
        tokenizer_config = json.loads(tokenizer_config_file.read_text())
        if tokenizer_config.get("tokenizer_class") in ("TokenizersBackend", None):
            tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        template = hf_chat_template(folder)
        if template:
            template = plain_chat_template(template)
            (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
            tokenizer_config["chat_template"] = template
        tokenizer_config_file.write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")
