"""GGUF export of a Llama-family HF folder (llama.cpp, Ollama, LM Studio): metadata, tensor names, quantisation."""

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
from tools.models import CACHE_MARKER

if TYPE_CHECKING:
    import gguf
    import numpy as np
    import torch

GGUF_QUANTS = ("f32", "f16", "q8_0", "q4_k_m")
# f16 by default: in llama.cpp it reproduces the float model (SmolLM2-135M: same top token at 99.75 % of
# positions), while q8_0 (94 %) and q4_k_m (87 %) already change greedy answers of a model this small.
DEFAULT_GGUF_QUANT = "f16"
# Keys the writer sets itself, or that must describe the new file rather than the original one.
_REWRITTEN_KEYS = ("general.architecture", "general.file_type", "general.quantization_version", "general.name",
                   "tokenizer.chat_template")
# llama.cpp names its pre-tokenizers; these are the tokenizer.json pre_tokenizer shapes we can name for sure.
_PRE_TOKENIZERS = {
    (("ByteLevel", True),): "gpt-2",
    (("Digits", True), ("ByteLevel", True)): "smollm",
}
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
            _copy_metadata(writer, template, metadata, config)
        else:
            _metadata_from_hf(writer, hf_dir, config)
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


_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}  # gguf.LlamaFileType values


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
          12: "<f8"}


def read_gguf_metadata(path: Path) -> dict[str, tuple[Any, gguf.GGUFValueType, gguf.GGUFValueType | None]]:
    """key -> (value, GGUFValueType, array item type) of a little-endian GGUF v2/v3 file's header.

    gguf.GGUFReader takes seconds on a 49k-token vocabulary (it memory-maps every string separately);
    this reads the same header in a fraction of a second and leaves the tensors alone.
    """
    import struct

    import gguf
    import numpy as np

    with open(path, "rb") as handle:
        head = handle.read(24)
        if head[:4] != b"GGUF" or struct.unpack_from("<I", head, 4)[0] not in (2, 3):
            raise ToolError(f"{path} is not a GGUF v2/v3 file ingrain can read.")
        n_kv = struct.unpack_from("<Q", head, 16)[0]
        data = head + handle.read(64 << 20)  # the header of any model's GGUF fits; tensors are not needed
    pos = 24

    def string() -> str:
        nonlocal pos
        size = struct.unpack_from("<Q", data, pos)[0]
        pos += 8 + size
        return data[pos - size:pos].decode("utf-8")

    def scalar(vtype: int) -> Any:
        nonlocal pos
        value = struct.unpack_from(_SCALARS[vtype], data, pos)[0]
        pos += struct.calcsize(_SCALARS[vtype])
        return value

    fields: dict[str, tuple[Any, int, int | None]] = {}
    for _ in range(n_kv):
        key = string()
        vtype = scalar(4)
        if vtype == 8:
            fields[key] = (string(), vtype, None)
        elif vtype == 9:
            item, count = scalar(4), scalar(10)
            if item == 8:
                fields[key] = ([string() for _ in range(count)], vtype, item)
            else:
                values = np.frombuffer(data, dtype=_NUMPY[item], count=count, offset=pos)
                pos += values.nbytes
                fields[key] = (values.tolist(), vtype, item)
        else:
            fields[key] = (scalar(vtype), vtype, None)
    kind = gguf.GGUFValueType
    return {key: (value, kind(vtype), kind(item) if item is not None else None)
            for key, (value, vtype, item) in fields.items()}


def _copy_metadata(writer: gguf.GGUFWriter, template: Path, metadata: dict[str, Any], config: dict[str, Any]
                   ) -> None:
    if metadata.get("general.architecture", (None,))[0] != "llama":
        raise ToolError(f"{template} is not a llama GGUF; export with --format hf and convert that folder with "
                        "llama.cpp's convert_hf_to_gguf.py.")
    expected = {"llama.block_count": config["num_hidden_layers"], "llama.embedding_length": config["hidden_size"],
                "llama.feed_forward_length": config["intermediate_size"],
                "llama.attention.head_count": config["num_attention_heads"],
                "llama.attention.head_count_kv": config.get("num_key_value_heads", config["num_attention_heads"])}
    for key, value in expected.items():
        found = metadata.get(key, (None,))[0]
        if found != value:
            raise ToolError(f"The weights do not fit the base's GGUF {template.name}: {key} is {found} there and "
                            f"{value} in config.json.")
    tokens = len(metadata.get("tokenizer.ggml.tokens", ([],))[0])
    if tokens != config["vocab_size"]:
        raise ToolError(f"The vocabulary changed ({config['vocab_size']} tokens, the base GGUF has {tokens}): "
                        "export with --format hf and convert it with llama.cpp's convert_hf_to_gguf.py.")
    for key, (value, vtype, item) in metadata.items():
        if key not in _REWRITTEN_KEYS:
            writer.add_key_value(key, value, vtype, sub_type=item)


def _pre_tokenizer(tokenizer_json: dict[str, Any]) -> str | None:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    shape = tuple((s.get("type"), bool(s.get("use_regex", s.get("individual_digits", False)))) for s in steps)
    return _PRE_TOKENIZERS.get(shape)


def _metadata_from_hf(writer: gguf.GGUFWriter, hf_dir: Path, config: dict[str, Any]) -> None:
    import gguf

    tokenizer_file = hf_dir / "tokenizer.json"
    tokenizer_json = json.loads(tokenizer_file.read_text()) if tokenizer_file.is_file() else {}
    model = tokenizer_json.get("model", {})
    pre = _pre_tokenizer(tokenizer_json)
    if model.get("type") != "BPE" or model.get("byte_fallback") or pre is None:
        raise ToolError(
            f"{hf_dir} has no GGUF it came from and its tokenizer is not a GPT-2-style byte-level BPE that ingrain "
            "can describe to llama.cpp exactly. GGUF export works for the built-in smollm2-135m and anything "
            "trained from it, and for Llama models with a plain byte-level BPE tokenizer. For this one, run "
            "`ingrain models export NAME --format hf --out DIR`, then llama.cpp's "
            "`python convert_hf_to_gguf.py DIR --outtype q8_0`.")
    n_vocab = int(config["vocab_size"])
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, token_id in model["vocab"].items():
        if token_id < n_vocab:
            tokens[token_id], types[token_id] = text, gguf.TokenType.NORMAL
    for added in tokenizer_json.get("added_tokens", []):
        if added["id"] < n_vocab:
            tokens[added["id"]] = added["content"]
            types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    rope = config.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or config.get("rope_scaling"):
        raise ToolError(f"{hf_dir} uses RoPE scaling ({rope.get('rope_type') or config.get('rope_scaling')}), "
                        "which ingrain does not write into GGUF: export with --format hf and convert it with "
                        "llama.cpp's convert_hf_to_gguf.py.")
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=n_vocab)
    special.chat_template = None  # written by the caller, without generation markers
    special.add_to_gguf(writer, quiet=True)
    if "bos" not in special.add_special_token:
        # Say it either way: llama.cpp's default for BPE vocabularies differs between pre-tokenizers.
        tokenizer_config = hf_dir / "tokenizer_config.json"
        add_bos = json.loads(tokenizer_config.read_text()).get("add_bos_token") if tokenizer_config.is_file() else None
        writer.add_add_bos_token(bool(add_bos))


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
