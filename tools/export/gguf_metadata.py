"""GGUF metadata: read a GGUF header fast, keep a base GGUF's keys, or describe an HF Llama folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError

if TYPE_CHECKING:
    import gguf

# Keys the writer sets itself, or that must describe the new file rather than the original one.
_REWRITTEN_KEYS = ("general.architecture", "general.file_type", "general.quantization_version", "general.name",
                   "tokenizer.chat_template")
# llama.cpp names its pre-tokenizers; these are the tokenizer.json pre_tokenizer shapes we can name for sure.
_PRE_TOKENIZERS = {
    (("ByteLevel", True),): "gpt-2",
    (("Digits", True), ("ByteLevel", True)): "smollm",
}
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


def copy_metadata(writer: gguf.GGUFWriter, template: Path, metadata: dict[str, Any], config: dict[str, Any]
                  ) -> None:
    """Every key of the base's GGUF except those describing the old file, once its shapes match `config`."""
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


def metadata_from_hf(writer: gguf.GGUFWriter, hf_dir: Path, config: dict[str, Any]) -> None:
    """Llama hparams from config.json and the vocabulary from tokenizer.json, as llama.cpp's converter writes them."""
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
