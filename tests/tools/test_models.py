"""Base models: the packaged GGUF converted to safetensors, local folders, and offline failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tools.errors import ToolError
from tools.models import CACHE_MARKER, load_model, load_tokenizer, resolve_base, smollm2_gguf_path

# SmolLM2's own template, as shipped in the GGUF file.
ORIGINAL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def test_gguf_file_is_found_inside_the_installed_package() -> None:
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


@pytest.mark.real_model
def test_converted_smollm2_is_a_plain_trainable_safetensors_model(smollm2_dir: Path) -> None:
    assert (smollm2_dir / CACHE_MARKER).is_file()
    assert list(smollm2_dir.glob("*.safetensors"))
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    model = load_model(smollm2_dir)
    assert getattr(model, "hf_quantizer", None) is None
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.real_model
def test_training_template_renders_exactly_like_the_original(smollm2_dir: Path) -> None:
    tokenizer = load_tokenizer(smollm2_dir)
    conversations = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}],
    ]
    for messages in conversations:
        for add_prompt in (False, True):
            ours = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_prompt)
            theirs = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_prompt,
                                                   chat_template=ORIGINAL_TEMPLATE)
            assert ours == theirs


@pytest.mark.real_model
def test_default_name_resolves_to_the_cache_without_converting_again(smollm2_dir: Path, workspace) -> None:
    started = time.time()
    base = resolve_base("SmolLM2-135M")  # aliases are case-insensitive
    assert base.path == smollm2_dir and base.context_length == 8192
    assert time.time() - started < 2  # the marker says the cache is complete: no second conversion


def test_local_model_folder_is_a_base(tiny_model_dir: Path) -> None:
    base = resolve_base(str(tiny_model_dir))
    assert base.path == tiny_model_dir.resolve()
    assert base.context_length == 1024


def test_hub_id_fails_fast_with_a_way_to_provide_it_locally() -> None:
    started = time.time()
    with pytest.raises(ToolError, match="huggingface-cli download Qwen/Qwen2.5-0.5B-Instruct"):
        resolve_base("Qwen/Qwen2.5-0.5B-Instruct")
    assert time.time() - started < 1


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="no config.json"):
        resolve_base(str(tmp_path))


def test_an_adapter_folder_is_told_from_a_model_and_finds_its_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from tools.models import adapter_tokenizer_dir, is_adapter_dir

    adapter = tmp_path / "adapter"
    get_peft_model(load_model(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(
        adapter)
    assert is_adapter_dir(adapter) and not is_adapter_dir(tiny_model_dir) and not is_adapter_dir(tmp_path / "none")
    assert adapter_tokenizer_dir(tiny_model_dir, adapter) == tiny_model_dir  # no tokenizer saved beside it
    load_tokenizer(tiny_model_dir).save_pretrained(adapter)
    assert adapter_tokenizer_dir(tiny_model_dir, adapter) == adapter
