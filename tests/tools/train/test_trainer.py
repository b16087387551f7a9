"""The training engine: config validation, presets, real tiny-model training, resume after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tools.train.conftest import chat, write_split
from tools.errors import ToolError
from tools.train.config import PRESETS_DIR, TrainConfig, preset_names
from tools.train.progress import progress_line
from tools.train.trainer import RESULT_FILE, estimate, load_result, select_backend, train

REPO = Path(__file__).resolve().parents[3]


def fast_config(**overrides) -> TrainConfig:
    values = {"max_steps": 30, "batch_size": 4, "lr": 5e-3, "max_length": 128, "eval_steps": 10,
              "save_steps": 10, "early_stopping_patience": 0, "warmup_ratio": 0.0, "dropout": 0.0}
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lr": 0}, "lr=0 must be > 0"),
    ({"lr": -1e-4}, "lr="),
    ({"r": 0}, "rank r=0"),
    ({"method": "dora"}, "Unknown training method"),
    ({"dropout": 1.0}, "dropout"),
    ({"recall_weight": 0}, "recall_weight=0 must be > 0"),
    ({"target_modules": []}, "target_modules is empty"),
    ({"epochs": 0, "max_steps": -1}, "trains nothing"),
    ({"eval_steps": 10, "save_steps": 15}, "multiple of eval_steps"),
    ({"bf16": "maybe"}, "bf16="),
    ({"gradient_checkpointing": "sometimes"}, "gradient_checkpointing="),
])
def test_invalid_config_says_what_to_fix(overrides, message):
    with pytest.raises(ToolError, match=message):
        TrainConfig(**overrides)


def test_qlora_without_cuda_is_refused_with_a_fix():
    import torch

    if torch.cuda.is_available():
        assert TrainConfig(method="qlora").method == "qlora"
    else:
        with pytest.raises(ToolError, match="Use method=lora"):
            TrainConfig(method="qlora")


def test_gradient_checkpointing_auto_follows_the_hardware_and_reaches_trl(tmp_path):
    import torch

    from tools.train.trainer import sft_args

    config = TrainConfig(gradient_checkpointing="auto")
    assert config.use_gradient_checkpointing() == torch.cuda.is_available()
    assert sft_args(config, tmp_path, bf16=False).gradient_checkpointing == torch.cuda.is_available()
    forced = TrainConfig(gradient_checkpointing="true")
    assert forced.gradient_checkpointing is True and sft_args(forced, tmp_path, bf16=False).gradient_checkpointing


def test_full_fine_tune_ignores_lora_rank():
    assert TrainConfig(method="full", r=0).method == "full"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_opens_with_its_command(name):
    import torch

    path = PRESETS_DIR / f"{name}.yaml"
    assert path.read_text().startswith("# Run: ")
    if name.startswith("qlora") and not torch.cuda.is_available():
        with pytest.raises(ToolError, match="CUDA"):
            TrainConfig.from_yaml(name)
        return
    config = TrainConfig.from_yaml(name)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_preset_option_is_named(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("method: lora\nlearning_rate: 0.1\n")
    with pytest.raises(ToolError, match="learning_rate"):
        TrainConfig.from_yaml(path)
    assert TrainConfig.from_yaml("lora-cpu", lr=1e-3).lr == 1e-3


def test_backend_is_unsloth_only_with_cuda_and_unsloth_installed():
    import importlib.util

    import torch

    cuda = torch.cuda.is_available()
    unsloth = importlib.util.find_spec("unsloth") is not None
    assert select_backend() == ("unsloth" if cuda and unsloth else "trl"), (cuda, unsloth)


def test_progress_line_format():
    assert progress_line(12, 60, 2.3141, 2.401, 412.4, 190) == \
        "step 00012/00060 | loss 2.314 | val 2.401 | 412 tok/s | eta 3m10s"


def test_estimate_scales_with_tokens():
    small, large = estimate(10_000, 1, 500), estimate(20_000, 2, 500, val_tokens=1000, evals=3)
    assert small["train_seconds"] == 20.0 and large["train_seconds"] == 80.0 and large["eval_seconds"] == 2.0
    with pytest.raises(ToolError):
        estimate(1000, 1, 0)


def test_lora_training_lowers_loss_changes_adapter_and_writes_result(tiny_model_dir, repetitive_data, tmp_path):
    from peft import PeftModel

    from tools.models import load_model

    lines = []
    train_path, val_path = repetitive_data
    result = train(fast_config(), tiny_model_dir, train_path, val_path, tmp_path / "out", on_log=lines.append,
                   progress=False)
    losses = [p["loss"] for p in result.loss_curve if "loss" in p]
    assert result.steps == 30 and len(losses) >= 25
    # A random tiny model has near-flat logits, so loss falls steadily but not to zero in 30 steps.
    assert sum(losses[-5:]) / 5 < sum(losses[:3]) / 3 - 0.5
    assert result.final_val_loss < losses[0] - 0.5
    assert result.tokens_per_s > 0 and result.train_tokens > 0 and result.peak_rss_mb > 0
    assert result.precision in ("fp32", "bf16") and result.backend == "trl"
    assert lines[-1]["line"].startswith("step 00030/00030 | loss ")
    saved = json.loads((tmp_path / "out" / RESULT_FILE).read_text())
    assert saved == load_result(tmp_path / "out") and saved["steps"] == 30
    assert saved["loss_curve"] == result.loss_curve
    # The trained LoRA weights moved away from their initialisation (B starts at zero).
    tuned = PeftModel.from_pretrained(load_model(tiny_model_dir), result.weights_path)
    b_norms = [p.abs().sum().item() for n, p in tuned.named_parameters() if "lora_B" in n]
    assert b_norms and min(b_norms) > 0
    assert (Path(result.weights_path) / "tokenizer_config.json").is_file()


def test_full_fine_tune_saves_a_model(tiny_model_dir, repetitive_data, tmp_path):
    train_path, val_path = repetitive_data
    result = train(fast_config(method="full", max_steps=4, lr=1e-3), tiny_model_dir, train_path, val_path,
                   tmp_path / "out", progress=False)
    assert Path(result.weights_path).name == "model"
    assert (Path(result.weights_path) / "model.safetensors").is_file()


def test_packed_losses_equal_the_unpacked_ones(tiny_model_dir, tmp_path):
    # Different examples in one packed row: if one attended to the one before it, its loss would change.
    rows = [chat(f"question number {i} about topic {i * 7}", f"answer {i} is the value {i * 13}") for i in range(6)]
    data = tmp_path / "data"
    train_path, val_path = write_split(data, "train", rows), write_split(data, "val", rows)
    # One step over all six examples (one packed row, or one padded batch of six) at a learning rate too small
    # to move the weights: both runs score the same model on the same tokens.
    def one_step(packing: bool):
        config = fast_config(max_steps=1, lr=1e-12, bf16="false", packing=packing, batch_size=1 if packing else 6,
                             max_length=512)
        return train(config, tiny_model_dir, train_path, val_path, tmp_path / f"out-{packing}", progress=False)

    results = {packing: one_step(packing) for packing in (True, False)}
    first_loss = {packing: result.loss_curve[0]["loss"] for packing, result in results.items()}
    assert first_loss[True] == pytest.approx(first_loss[False], rel=1e-4)
    assert results[True].final_val_loss == pytest.approx(results[False].final_val_loss, rel=1e-4)


def test_a_recall_weight_the_loss_cannot_apply_is_said(tiny_model_dir, repetitive_data, tmp_path):
    # A model that declares rescaled logits trains with TRL's own loss, which has no per-token weights.
    model_dir = tmp_path / "capped"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "final_logit_softcapping": 30.0}))
    train_path, val_path = repetitive_data
    with pytest.warns(UserWarning, match=r"recall_weight=3.0 is not applied"):
        train(fast_config(max_steps=2, recall_weight=3.0), model_dir, train_path, val_path, tmp_path / "out",
              progress=False)


def test_early_stopping_stops_when_val_loss_rises(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    train_path = write_split(data, "train", [chat(f"question {i}", "- the method is good") for i in range(32)])
    val_path = write_split(data, "val", [chat("question", "why when which who does can use give write explain")
                                         for _ in range(4)])
    config = fast_config(max_steps=200, lr=2e-2, eval_steps=2, save_steps=2, early_stopping_patience=2)
    result = train(config, tiny_model_dir, train_path, val_path, tmp_path / "out", progress=False)
    assert result.stopped_early and result.steps < 200
    assert result.best_val_loss <= result.final_val_loss + 1e-6


def test_existing_checkpoints_need_resume(tiny_model_dir, repetitive_data, tmp_path):
    train_path, val_path = repetitive_data
    train(fast_config(max_steps=10), tiny_model_dir, train_path, val_path, tmp_path / "out", progress=False)
    with pytest.raises(ToolError, match="resume"):
        train(fast_config(max_steps=10), tiny_model_dir, train_path, val_path, tmp_path / "out", progress=False)


KILLED_RUN = """
import sys
from tools.train.trainer import train
from tools.train.config import TrainConfig

config = TrainConfig(max_steps=60, batch_size=4, lr=5e-3, max_length=128, eval_steps=5, save_steps=5,
                     early_stopping_patience=0, warmup_ratio=0.0)
train(config, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], progress=False)
"""


def test_resume_after_kill_9_continues_from_the_last_checkpoint(tiny_model_dir, repetitive_data, tmp_path):
    train_path, val_path = repetitive_data
    out = tmp_path / "out"
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    process = subprocess.Popen([sys.executable, str(script), str(tiny_model_dir), str(train_path),
                                str(val_path), str(out)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "checkpoint-15").is_dir():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint written in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / RESULT_FILE).exists()

    resumed = subprocess.run(
        [sys.executable, "-c",
         "import sys, json; from tools.train.trainer import train; from tools.train.config import TrainConfig;"
         "c = TrainConfig(max_steps=60, batch_size=4, lr=5e-3, max_length=128, eval_steps=5, save_steps=5,"
         " early_stopping_patience=0, warmup_ratio=0.0);"
         "r = train(c, *sys.argv[1:5], resume=True, progress=False); print(json.dumps(r.to_dict()))",
         str(tiny_model_dir), str(train_path), str(val_path), str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    # checkpoint-15 may be half-written at the kill; then training resumes from checkpoint-10.
    assert result["resumed_from_step"] >= 10 and result["steps"] == 60
    # The resumed process logged only steps after the checkpoint: it did not start again from 0.
    logged = [p["step"] for p in result["loss_curve"] if "loss" in p]
    assert min(logged) > result["resumed_from_step"] and max(logged) == 60


@pytest.mark.real_model
def test_lora_on_smollm2_learns_a_bullet_style(smollm2_dir, tmp_path):
    import torch
    from peft import PeftModel

    from tools.models import load_model, load_tokenizer

    topics = ["caching", "retries", "logging", "testing", "backups", "indexes", "queues", "timeouts",
              "tracing", "releases", "alerts", "secrets"]
    rows = [chat(f"Give me advice on {t}.", f"- {t}: start small.\n- {t}: measure it.\nCheers, Ingrain")
            for t in topics]
    train_path = write_split(tmp_path / "data", "train", rows[:10] * 2)
    val_path = write_split(tmp_path / "data", "val", rows[10:])
    config = TrainConfig(max_steps=16, batch_size=1, grad_accum=1, max_length=128, lr=2e-3, eval_steps=8,
                         save_steps=8, early_stopping_patience=0, warmup_ratio=0.0, dropout=0.0)
    result = train(config, smollm2_dir, train_path, val_path, tmp_path / "out", progress=False)
    val = [p["val_loss"] for p in result.loss_curve if "val_loss" in p]
    assert len(val) >= 2 and result.final_val_loss < val[0]

    tokenizer = load_tokenizer(smollm2_dir)
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": "you are a helpful model"},
                                            {"role": "user", "content": "Give me advice on deployments."}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)

    def reply(model) -> str:
        with torch.no_grad():
            out = model.eval().generate(**prompt, max_new_tokens=16, do_sample=False)
        return tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)

    base_text = reply(load_model(smollm2_dir))
    tuned_text = reply(PeftModel.from_pretrained(load_model(smollm2_dir), result.weights_path))
    assert not (base_text.startswith("- deployments:") and "measure" in base_text)
    assert tuned_text.startswith("- ") and "measure" in tuned_text, tuned_text
