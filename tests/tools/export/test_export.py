"""Exports: standalone HF folders and GGUF files that other runtimes load with the tuned weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memory import Store
from tools.errors import ToolError
from tools.export.gguf import original_gguf, permute_for_gguf, write_gguf
from tools.export.gguf_metadata import read_gguf_metadata
from tools.export.version import EXPORT_MARKER, export_version
from tools.models import CACHE_MARKER, load_model, load_tokenizer
from tools.train.chat_template import CHATML_TEMPLATE

HI = [{"role": "user", "content": "write a summary of the paper"}]


@pytest.fixture
def store(workspace):
    store = Store.open(workspace)
    yield store
    store.close()


def _adapter(base_dir: Path, out: Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """A LoRA adapter whose B matrices are non-zero, so merging it really changes q/k/v."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(load_model(base_dir), LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * scale)
    model.save_pretrained(out)
    return out


def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer.apply_chat_template(HI, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return model(ids["input_ids"]).logits[0]


def _merged(base_dir: Path, adapter: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(base_dir), str(adapter)).merge_and_unload().eval()


def _load_gguf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()


def test_q_and_k_rows_go_back_to_llama_cpp_order() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    hf = np.arange(12 * 3, dtype=np.float32).reshape(12, 3)  # 2 heads of 6 rows (head_dim 6)
    gguf_order = permute_for_gguf(hf, 2)
    assert not np.array_equal(gguf_order, hf)
    # transformers' loader applies the reverse permutation; the round trip is the identity.
    loaded = LlamaTensorProcessor({"num_attention_heads": 4, "num_key_value_heads": 2}).process(
        gguf_order, "blk.0.attn_k.weight").weights
    assert np.array_equal(loaded, hf)


def test_adapter_version_exports_to_a_standalone_hf_folder(store, workspace, tiny_model_dir, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = _adapter(tiny_model_dir, tmp_path / "adapter")
    store.register_model("tiny-v2", base=str(tiny_model_dir), kind="adapter", path=str(adapter))
    stages = []
    result = export_version(store, "tiny-v2", "hf", progress=lambda stage, done, total: stages.append(stage))
    folder = Path(result.path)
    assert folder == workspace.root / "exports" / "tiny-v2" and result.kind == "adapter" and result.quant is None
    assert result.bytes == sum(f.stat().st_size for f in folder.iterdir()) and "merging adapter" in stages[0]
    assert not (folder / "adapter_config.json").exists() and (folder / EXPORT_MARKER).is_file()

    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # plain transformers, nothing of ingrain
    tokenizer = AutoTokenizer.from_pretrained(folder)
    exported = _logits(model, tokenizer)
    assert torch.allclose(exported, _logits(_merged(tiny_model_dir, adapter), tokenizer), atol=1e-5)
    assert (exported - _logits(load_model(tiny_model_dir), tokenizer)).abs().max() > 0.1

    # The chat template renders what training used, without the training-only generation markers.
    template = (folder / "chat_template.jinja").read_text()
    assert "{% generation %}" not in template and "endgeneration" not in template
    reference, chat = load_tokenizer(tiny_model_dir), [*HI, {"role": "assistant", "content": "ok"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False) == \
        reference.apply_chat_template(chat, tokenize=False, chat_template=CHATML_TEMPLATE)
    config = json.loads((folder / "config.json").read_text())
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    # Keys older transformers (and so vLLM) read: without rope_theta they silently fall back to 10000.
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] and config["torch_dtype"] == "float32"
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast" and tokenizer_config["chat_template"]
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == \
        tokenizer.convert_tokens_to_ids("<|im_end|>")

    again = export_version(store, "tiny-v2", "hf", out=folder)  # an earlier export may be replaced
    assert again.path == result.path
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ToolError, match="refusing to replace"):
        export_version(store, "tiny-v2", "hf", out=foreign)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_gguf_of_a_plain_hf_model_reloads_with_the_same_logits(store, tiny_model_dir, tmp_path) -> None:
    import gguf

    adapter = _adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    store.register_model("tiny-v3", base=str(tiny_model_dir), kind="adapter", path=str(adapter))
    tokenizer = load_tokenizer(tiny_model_dir)
    merged = _logits(_merged(tiny_model_dir, adapter), tokenizer)
    sizes = {}
    for quant, atol in (("f32", 1e-4), ("f16", 2e-2), ("q8_0", 0.15)):
        result = export_version(store, "tiny-v3", "gguf", quant=quant, out=tmp_path / "gguf")
        path = Path(result.path)
        assert path.name == f"tiny-v3-{quant.upper()}.gguf" and result.bytes == path.stat().st_size
        sizes[quant] = result.bytes
        reloaded = _logits(_load_gguf(path), tokenizer)
        assert torch.allclose(reloaded, merged, atol=atol), (quant, (reloaded - merged).abs().max())
    assert sizes["f32"] > sizes["f16"] > sizes["q8_0"]

    reader = gguf.GGUFReader(tmp_path / "gguf" / "tiny-v3-Q8_0.gguf")
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied embeddings stay tied
    assert reader.get_field("general.name").contents() == "tiny-v3"
    assert reader.get_field("tokenizer.ggml.pre").contents() == "gpt-2"  # llama.cpp's name
    assert "endgeneration" not in reader.get_field("tokenizer.chat_template").contents()
    hf_vocab = tokenizer.get_vocab()
    tokens = reader.get_field("tokenizer.ggml.tokens").contents()
    assert [hf_vocab[t] for t in tokens] == list(range(len(tokens)))


def test_exported_gguf_runs_in_llama_cpp_with_the_same_logits(store, tiny_model_dir, tmp_path) -> None:
    require_llama_cpp()
    adapter = _adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    store.register_model("tiny-v3", base=str(tiny_model_dir), kind="adapter", path=str(adapter))
    tokenizer = load_tokenizer(tiny_model_dir)
    merged = _logits(_merged(tiny_model_dir, adapter), tokenizer)
    result = export_version(store, "tiny-v3", "gguf", quant="f32", out=tmp_path / "gguf")
    _check_in_llama_cpp(Path(result.path), tokenizer, merged)


def require_llama_cpp() -> None:
    """llama-cpp-python is a dev dependency that scripts/bootstrap.sh builds: its absence is a failure, not a skip."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python does not import ({exc}): run scripts/bootstrap.sh, which builds it")


def _check_in_llama_cpp(path: Path, tokenizer, expected: torch.Tensor, atol: float = 1e-2) -> None:
    """llama.cpp's own loader, tokenizer, chat template and forward pass on the exported file."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=1)
    try:
        ids = tokenizer.apply_chat_template(HI, add_generation_prompt=True, return_dict=True)["input_ids"]
        text = tokenizer.apply_chat_template(HI, add_generation_prompt=True, tokenize=False)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == list(ids)
        llm.eval(ids)
        scores = torch.tensor(np.array(llm.scores[:len(ids)]))
        assert torch.allclose(scores, expected, atol=atol), (scores - expected).abs().max()
        reply = llm.create_chat_completion(messages=HI, max_tokens=4, temperature=0)
        assert reply["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        llm.close()


def test_gguf_keeps_the_metadata_of_the_gguf_a_base_came_from(store, tiny_model_dir, tmp_path) -> None:
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    # A base converted from a GGUF, as the default one is: its marker names the original file.
    plain = write_gguf(tiny_model_dir, tmp_path / "plain.gguf", quant="f32", name="tiny")
    original = tmp_path / "original.gguf"
    copy_with_new_metadata(gguf.GGUFReader(plain), gguf.GGUFWriter(original, "llama"),
                           {"general.license": MetadataDetails(gguf.GGUFValueType.STRING, "test-license")}, [])
    fast, slow = read_gguf_metadata(original), gguf.GGUFReader(original)
    assert {key: value for key, (value, _, _) in fast.items()} == \
        {key: slow.get_field(key).contents() for key in slow.fields if not key.startswith("GGUF.")}
    base = tmp_path / "tiny-from-gguf"
    shutil.copytree(tiny_model_dir, base)
    (base / CACHE_MARKER).write_text(json.dumps({"source": str(original)}))
    assert original_gguf(base) == original
    adapter = _adapter(base, tmp_path / "adapter", seed=2)
    store.register_model("tiny-v4", base=str(base), kind="adapter", path=str(adapter))
    result = export_version(store, "tiny-v4", "gguf", quant="f32", out=tmp_path / "tiny-v4.gguf")
    reader = gguf.GGUFReader(result.path)
    assert reader.get_field("general.license").contents() == "test-license"
    assert reader.get_field("general.name").contents() == "tiny-v4"
    tokenizer = load_tokenizer(base)
    reloaded = _logits(_load_gguf(Path(result.path)), tokenizer)
    assert torch.allclose(reloaded, _logits(_merged(base, adapter), tokenizer), atol=1e-4)
    assert (reloaded - _logits(load_model(base), tokenizer)).abs().max() > 0.1  # the tuned weights, not the base's


def test_refusals_say_what_to_do(store, tiny_model_dir, tmp_path) -> None:
    store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    with pytest.raises(ToolError, match=r"No model version 'nope' \(known: tiny-v1\)"):
        export_version(store, "nope", "hf")
    with pytest.raises(ToolError, match="GGUF only"):
        export_version(store, "tiny-v1", "hf", quant="q8_0")
    with pytest.raises(ToolError, match="--format hf"):
        export_version(store, "tiny-v1", "onnx")
    with pytest.raises(ToolError, match="f32, f16, q8_0, q4_k_m"):
        export_version(store, "tiny-v1", "gguf", quant="q3")
    # A tokenizer llama.cpp would split differently is refused rather than exported subtly wrong.
    odd = tmp_path / "odd"
    shutil.copytree(tiny_model_dir, odd)
    tokenizer_json = json.loads((odd / "tokenizer.json").read_text())
    tokenizer_json["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}
    (odd / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    (odd / CACHE_MARKER).unlink()
    store.register_model("odd-v1", base=str(odd), kind="full", path=str(odd))
    with pytest.raises(ToolError, match="convert_hf_to_gguf.py"):
        export_version(store, "odd-v1", "gguf", out=tmp_path / "odd.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".odd.gguf*"))


def test_q4_k_m_without_llama_cpp_says_how_to_get_it(store, tiny_model_dir, tmp_path, monkeypatch) -> None:
    # A None entry in sys.modules makes `import llama_cpp` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    with pytest.raises(ToolError, match="pip install llama-cpp-python"):
        export_version(store, "tiny-v1", "gguf", quant="q4_k_m", out=tmp_path)
    assert not list(tmp_path.glob("*.gguf"))


def test_q4_k_m_uses_llama_cpps_quantiser(store, tiny_model_dir, tmp_path) -> None:
    require_llama_cpp()
    store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    import gguf

    result = export_version(store, "tiny-v1", "gguf", quant="q4_k_m", out=tmp_path)
    f16 = export_version(store, "tiny-v1", "gguf", quant="f16", out=tmp_path)
    # The tiny model's 64-wide rows are too short for k-quant blocks of 256, so llama.cpp falls back per
    # tensor; the file is still labelled Q4_K_M and smaller than f16.
    assert gguf.GGUFReader(result.path).get_field("general.file_type").contents() == 15
    assert result.bytes < f16.bytes
    reloaded = _logits(_load_gguf(Path(result.path)), load_tokenizer(tiny_model_dir))
    assert reloaded.shape == _logits(load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)).shape


def _ingrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=os.environ.copy())


def test_cli_export_prints_one_json_document_and_fails_clearly(store, tiny_model_dir, tmp_path) -> None:
    store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
    done = _ingrain("models", "export", "tiny-v1", "--format", "gguf", "--quant", "f16", "--out",
                    str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["format"] == "gguf" and document["quant"] == "f16"
    assert Path(document["path"]) == tmp_path / "out" / "tiny-v1-F16.gguf" and Path(document["path"]).is_file()

    shown = _ingrain("models", "export", "tiny-v1", "--out", str(tmp_path / "hf"))
    assert shown.returncode == 0, shown.stderr
    assert f"vllm serve {tmp_path / 'hf'} --served-model-name tiny-v1" in " ".join(shown.stdout.split())

    unknown = _ingrain("models", "export", "nope", "--format", "gguf")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "known: tiny-v1" in unknown.stderr and "Traceback" not in unknown.stderr


@pytest.mark.real_model
def test_smollm2_lora_exports_to_gguf_with_the_tuned_weights(store, smollm2_dir, tmp_path) -> None:
    from peft import PeftModel

    tokenizer = load_tokenizer(smollm2_dir)
    adapter = _adapter(smollm2_dir, tmp_path / "adapter", scale=0.02)
    tuned_model = PeftModel.from_pretrained(load_model(smollm2_dir), str(adapter)).eval()
    tuned = _logits(tuned_model, tokenizer)
    with tuned_model.disable_adapter():
        base = _logits(tuned_model, tokenizer)
    del tuned_model
    store.register_model("smollm2-135m-run1", base="smollm2-135m", kind="adapter", path=str(adapter))

    result = export_version(store, "smollm2-135m-run1", "gguf", quant="f16", out=tmp_path)
    reloaded_model = _load_gguf(Path(result.path))
    # The vocabulary and hparams came from the packaged GGUF, the weights from the merged adapter.
    assert reloaded_model.config.rope_parameters["rope_theta"] == 100000.0
    assert reloaded_model.config.num_key_value_heads == 3 and reloaded_model.config.vocab_size == 49152
    reloaded = _logits(reloaded_model, tokenizer)
    # f16 rounding moves logits of magnitude ~40 by a few hundredths; the LoRA moves them by far more.
    assert (reloaded - tuned).abs().max() < 0.25
    assert (reloaded - base).abs().max() > 1.0 and (tuned - base).abs().max() > 1.0
    assert torch.equal(reloaded.argmax(-1), tuned.argmax(-1))
    require_llama_cpp()  # last, so every check above has run before a missing llama.cpp is reported
    _check_in_llama_cpp(Path(result.path), tokenizer, tuned, atol=0.25)


def test_a_knowledge_version_exports_its_excerpt_index_or_says_it_is_left_out(store, workspace, tiny_model_dir,
                                                                              tmp_path) -> None:
    from tools.data.chunk import Chunk
    from tools.grounding import GroundingIndex, load_grounding

    folder = tmp_path / "versions" / "tiny-kb"
    shutil.copytree(tiny_model_dir, folder / "model")
    text = "Heron runs the nightly tests at 02:10. Build logs are kept for 45 days."
    GroundingIndex.build([Chunk(text, "build.md", "Build server", "Build server", 0, 16, "build")],
                         tmp_path / "wordllama").save(folder / "grounding")
    store.register_model("tiny-kb", base=str(tiny_model_dir), kind="full", path=str(folder / "model"))
    hf = export_version(store, "tiny-kb", "hf", out=tmp_path / "hf")
    copied = load_grounding(Path(hf.path) / "grounding", tmp_path / "wordllama")
    assert copied is not None and len(copied.passages) == 2 and "copied to" in hf.note
    gguf_file = export_version(store, "tiny-kb", "gguf", quant="f32", out=tmp_path / "gguf")
    assert "do not carry them" in gguf_file.note and str(folder / "grounding") in gguf_file.note
    plain = export_version(store, str(tiny_model_dir), "hf", out=tmp_path / "plain")
    assert plain.note == "" and not (Path(plain.path) / "grounding").exists()
