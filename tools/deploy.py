"""Turn a training output into a registered model version: copy, merge LoRA for serving, promote."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memory import Store, Workspace
from memory.workspace import atomic_dir
from tools.errors import ToolError
from tools.models import is_adapter_dir


@dataclass
class Deployment:
    """What `deploy_version` did."""

    name: str
    """The version's name in the registry."""
    path: str
    """What the server loads (the merged model, or the adapter)."""
    kind: str
    """merged | adapter | full."""
    promoted: bool
    """Whether it is now the production version."""
    reason: str
    """Why it was (or was not) promoted."""
    previous: str | None = None
    """The production version before this one."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


GGUF_FILE = "model.gguf"
"""A version's GGUF copy (f16) beside its `model/` folder, for serving through llama.cpp."""
SERVING_GGUF_QUANT = "f16"
"""On SmolLM2-135M llama.cpp picked the fp32 model's top token 99.75 % of the time from f16 weights, 94 %
from q8_0 and 96 % from the packaged Q4_1 (whose answers to short questions were often wrong)."""


GROUNDING_DIR = "grounding"
"""A knowledge version's excerpt index (tools.grounding), beside its `model/` folder."""


def version_name(base: str, run_id: int) -> str:
    return f"{Path(base).name.lower()}-run{run_id}"


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold a LoRA adapter into the base weights: one plain model, no adapter overhead per token."""
    from tools.models import adapter_tokenizer_dir, load_merged, load_tokenizer

    load_merged(base_dir, adapter_dir).save_pretrained(out_dir, safe_serialization=True)
    load_tokenizer(adapter_tokenizer_dir(base_dir, adapter_dir)).save_pretrained(out_dir)
    return out_dir


def write_serving_gguf(model_dir: Path, out_file: Path, *, name: str, base_dir: Path) -> Path | None:
    """An f16 GGUF copy for llama.cpp serving, when llama-cpp-python is installed and the model is a Llama.

    f16 keeps the replies those of the evaluated fp32 weights; the server falls back to transformers
    when there is no copy, so a model llama.cpp cannot take is served all the same.
    """
    import logging

    from tools.export.gguf import original_gguf, write_gguf
    from tools.serve.llamacpp import llamacpp_available

    if not llamacpp_available():
        return None
    try:
        return write_gguf(model_dir, out_file, quant=SERVING_GGUF_QUANT, name=name, template=original_gguf(base_dir))
    except ToolError as exc:
        logging.getLogger("ingrain.deploy").warning("no GGUF copy for %s, it will be served by transformers: %s",
                                                    name, exc)
        return None


def deploy_version(store: Store, workspace: Workspace, *, run_id: int, base: str, base_dir: Path,
                   trained_dir: Path, metrics: dict[str, Any], verdict: str, config: dict[str, Any],
                   dataset_id: str | None, promote: bool, promote_reason: str,
                   grounding_dir: Path | None = None) -> Deployment:
    """Copy the trained artifacts into versions/NAME (atomically), register them, promote if asked.

    A knowledge run's grounding index goes with them: the model was trained and judged with its excerpts."""
    trained_dir = Path(trained_dir)
    if not trained_dir.exists():
        raise ToolError(f"Nothing to deploy: {trained_dir} does not exist. Re-run training with `ingrain resume`.")
    name = version_name(base, run_id)
    final = workspace.versions_dir / name
    is_adapter = is_adapter_dir(trained_dir)
    if not (final / "version.json").exists():
        with atomic_dir(final) as tmp:
            shutil.copytree(trained_dir, tmp / ("adapter" if is_adapter else "model"))
            if is_adapter:
                merge_adapter(base_dir, tmp / "adapter", tmp / "model")
            write_serving_gguf(tmp / "model", tmp / GGUF_FILE, name=name, base_dir=base_dir)
            if grounding_dir is not None:
                shutil.copytree(grounding_dir, tmp / GROUNDING_DIR)
            (tmp / "version.json").write_text(json.dumps(
                {"name": name, "base": base, "run_id": run_id, "verdict": verdict, "metrics": metrics}, default=str))
    previous = store.production_model()
    store.register_model(name, base=base, kind="merged" if is_adapter else "full", path=str(final / "model"),
                         run_id=run_id, dataset_id=dataset_id, config=config, metrics=metrics, verdict=verdict,
                         parent=previous["name"] if previous else None)
    if promote:
        store.promote(name)
    return Deployment(name, str(final / "model"), "merged" if is_adapter else "full", promote, promote_reason,
                      previous["name"] if previous else None)
