"""GGUF export of a Llama-family model (llama.cpp, Ollama, LM Studio): tensor names, Q/K order, quantisation."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError
from tools.export.gguf_metadata import copy_metadata, metadata_from_hf, read_gguf_metadata
from tools.models import CACHE_MARKER

if TYPE_CHECKING:
    import gguf
    import numpy as np
    import torch

GGUF_QUANTS = ("f32", "f16", "q8_0", "q4_k_m")
# f16 by default: in llama.cpp it reproduces the float model (SmolLM2-135M: same top token at 99.75 % of
# positions), while q8_0 (94 %) and q4_k_m (87 %) already change greedy answers of a model this small.
DEFAULT_GGUF_QUANT = "f16"
_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}  # gguf.LlamaFileType values
_GENERATION_MARKERS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
Progress = Callable[[int, int], None]


def plain_chat_template(template: str) -> str:
    """The template without transformers' `{% generation %}` markers, which other Jinja engines reject."""
    return _GENERATION_MARKERS.sub("", template)


def hf_chat_template(hf_dir: Path) -> str | None:
    """The chat template a saved tokenizer carries (transformers 5 writes chat_template.jinja)."""
    if (hf_dir / "chat_template.jinja").is_file():
        return (hf_dir / "chat_template.jinja").read_text(encoding="utf-8")
    config = hf_dir / "tokenizer_config.json"
    template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None
    return template if isinstance(template, str) else None


def original_gguf(base_dir: Path) -> Path | None:
    """The GGUF file a cached base was converted from (its marker names it), if it is still there."""
    marker = Path(base_dir) / CACHE_MARKER
    if not marker.is_file():
        return None
    source = json.loads(marker.read_text()).get("source")
    return Path(source) if source and source.endswith(".gguf") and Path(source).is_file() else None


def write_gguf(hf_dir: Path, out_file: Path, *, quant: str, name: str, template: Path | None = None,
               weights: Mapping[str, torch.Tensor] | None = None, progress: Progress | None = None) -> Path:
    """Write the model in `hf_dir` as one GGUF file at `out_file` (atomically).

    `weights` (a merged state dict already in memory) replaces the folder's safetensors; the folder still
    gives config.json and the tokenizer. With `template` (the GGUF the base came from) its metadata is kept:
    hparams, vocabulary, merges, pre-tokenizer and special ids stay exactly what llama.cpp knew. Without it
    they come from config.json and tokenizer.json, for Llama models whose BPE pre-tokenizer we can name.
    """
    import gguf

    if quant not in GGUF_QUANTS:
        raise ToolError(f"Unknown GGUF quantisation {quant!r}: use one of {', '.join(GGUF_QUANTS)}.")
    config = json.loads((hf_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ToolError(f"GGUF export supports Llama-architecture models; {hf_dir} is "
                        f"{config.get('model_type')!r}. Export with --format hf and convert it with llama.cpp's "
                        "convert_hf_to_gguf.py.")
    if quant == "q4_k_m":
        return _write_q4_k_m(hf_dir, out_file, name=name, template=template, weights=weights, progress=progress)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".tmp", dir=out_file.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        metadata = read_gguf_metadata(template) if template is not None else {}
        if template is not None:
            copy_metadata(writer, template, metadata, config)
        else:
            metadata_from_hf(writer, hf_dir, config)
        writer.add_name(name)
        writer.add_file_type(_FILE_TYPES[quant])
        if quant != "f32":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        template_text = hf_chat_template(hf_dir)
        if template_text:
            writer.add_chat_template(plain_chat_template(template_text))
        elif "tokenizer.chat_template" in metadata:
            writer.add_key_value("tokenizer.chat_template", *metadata["tokenizer.chat_template"])
        tensors = _memory_tensors(weights) if weights is not None else _hf_tensors(hf_dir)
        _write_tensors(writer, tensors, config, quant, progress)
        writer.close()
        tmp.chmod(0o644)  # mkstemp's 0600 would hide the model from a server running as another user
        os.replace(tmp, out_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_file


def _hf_tensors(hf_dir: Path) -> list[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]]:
    """(name, shape, loader) of every tensor in the folder's safetensors files, read one at a time."""
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ToolError(f"{hf_dir} has no *.safetensors weights to export.")
    tensors = []
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in list(handle.keys()):
                tensors.append((name, tuple(handle.get_slice(name).get_shape()),
                                lambda file=file, name=name: _read_tensor(file, name)))
    return tensors


def _memory_tensors(weights: Mapping[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]]:
    import torch

    return [(name, tuple(tensor.shape), lambda tensor=tensor: tensor.detach().to(torch.float32).numpy())
            for name, tensor in weights.items()]


def _read_tensor(file: Path, key: str) -> np.ndarray:
    import torch
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        return handle.get_tensor(key).to(torch.float32).numpy()


def permute_for_gguf(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order: the inverse of the permutation transformers undoes when it loads a GGUF."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _plan(tensors: list[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]], config: dict[str, Any]
          ) -> list[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]]:
    """(gguf name, shape, loader) for each tensor to write."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))
    tied = bool(config.get("tie_word_embeddings", False))
    plan = []
    for hf_name, shape, loader in tensors:
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ToolError(f"No GGUF name for tensor {hf_name}: export with --format hf and convert it with "
                            "llama.cpp's convert_hf_to_gguf.py.")
        plan.append((gguf_name, shape, loader))
    return plan


def _target_type(quant: str, shape: tuple[int, ...]) -> gguf.GGMLQuantizationType:
    import gguf

    kind = gguf.GGMLQuantizationType
    if len(shape) < 2 or quant == "f32":
        return kind.F32  # norms stay f32, as llama.cpp writes them
    if quant == "q8_0" and shape[-1] % gguf.GGML_QUANT_SIZES[kind.Q8_0][0] == 0:
        return kind.Q8_0
    return kind.F16


def _write_tensors(writer: gguf.GGUFWriter, tensors: list[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]],
                   config: dict[str, Any], quant: str, progress: Progress | None) -> None:
    import gguf
    import numpy as np

    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    plan = _plan(tensors, config)
    types = {}
    # Header first: every tensor's name, shape and type; the data is then converted one tensor at a time.
    for gguf_name, shape, _ in plan:
        qtype = types[gguf_name] = _target_type(quant, shape)
        nbytes = int(np.prod(gguf.quant_shape_to_byte_shape(shape, qtype)))
        writer.add_tensor_info(gguf_name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for done, (gguf_name, _, loader) in enumerate(plan, 1):
        data = loader()
        if gguf_name.endswith("attn_q.weight"):
            data = permute_for_gguf(data, heads)
        elif gguf_name.endswith("attn_k.weight"):
            data = permute_for_gguf(data, kv_heads)
        qtype = types[gguf_name]
        if qtype == gguf.GGMLQuantizationType.F32:
            data = np.ascontiguousarray(data, dtype=np.float32)
        elif qtype == gguf.GGMLQuantizationType.F16:
            data = np.ascontiguousarray(data, dtype=np.float16)
        else:
            data = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)
        writer.write_tensor_data(data)
        if progress:
            progress(done, len(plan))


def _write_q4_k_m(hf_dir: Path, out_file: Path, *, name: str, template: Path | None,
                  weights: Mapping[str, torch.Tensor] | None, progress: Progress | None) -> Path:
    """Q4_K_M needs llama.cpp's k-quant search: write f16, then quantise it with llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError as exc:
        broken = "" if exc.name == "llama_cpp" else f" (llama_cpp is installed but does not import: {exc})"
        raise ToolError(f"--quant q4_k_m needs llama.cpp's quantiser: `pip install llama-cpp-python` (it builds "
                        f"llama.cpp){broken}, or export with --quant q8_0 (no extra install) and run llama.cpp's "
                        "`llama-quantize MODEL.gguf MODEL-Q4_K_M.gguf Q4_K_M` where it is installed.") from None
    import ctypes

    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=f".{out_file.name}.") as scratch:
        f16 = write_gguf(hf_dir, Path(scratch) / "f16.gguf", quant="f16", name=name, template=template,
                         weights=weights, progress=progress)
        quantized = Path(scratch) / "q4_k_m.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = os.cpu_count() or 1
        # llama.cpp writes ~500 lines per model straight to fd 2; keep them for the error message only.
        log = Path(scratch) / "llama.log"
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(log, "wb") as sink:
                os.dup2(sink.fileno(), 2)
                code = llama_cpp.llama_model_quantize(str(f16).encode(), str(quantized).encode(),
                                                      ctypes.byref(params))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if code != 0 or not quantized.is_file():
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ToolError(f"llama.cpp could not quantise {name} to Q4_K_M (code {code}): {' | '.join(tail)}. "
                            "--quant q8_0 writes a file without llama.cpp.")
        os.replace(quantized, out_file)
    return out_file
