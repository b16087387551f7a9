"""The training engine: fine-tune a base model on train/val chat JSONL with LoRA or full weights."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory.workspace import atomic_dir, atomic_write_text
from tools.errors import ToolError
from tools.train.config import TrainConfig, cuda_available

if TYPE_CHECKING:
    from tools.train.goal_stop import GoalStop
from tools.train.threads import pick_threads

RESULT_FILE = "train_result.json"
CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    """What a training run produced and how it went; saved as train_result.json beside the weights."""

    output_dir: str
    weights_path: str
    """output_dir/adapter (LoRA) or output_dir/model (full fine-tune), with the tokenizer."""
    method: str
    backend: str
    precision: str
    steps: int
    final_train_loss: float | None
    best_val_loss: float | None
    final_val_loss: float | None
    loss_curve: list[dict[str, Any]] = field(default_factory=list)
    tokens_per_s: float = 0.0
    """Real (non-pad) training tokens per second of training time in the last process."""
    train_tokens: int = 0
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    threads: int = 0
    resumed_from_step: int = 0
    stopped_early: bool = False
    stop_reason: str = "max_steps"
    """max_steps, early_stopping (val loss), deadline, or the goal metric's plateau / success."""
    goal_curve: list[dict[str, Any]] = field(default_factory=list)
    """The objective's metric on the validation sample: {step, metric, seconds} per score."""
    best_goal_metric: float | None = None
    best_goal_step: int | None = None
    """The step whose weights were kept and its goal metric: the best-scoring step, or the final one when it
    scored as well (None: the goal metric was not scored)."""
    init_from: str | None = None
    """Weights training started from (a sweep trial's adapter), if not the base."""
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_backend() -> str:
    """`unsloth` on a CUDA machine with unsloth installed, else `trl` (TRL SFTTrainer + PEFT)."""
    import importlib.util

    if cuda_available() and importlib.util.find_spec("unsloth") is not None:
        return "unsloth"
    return "trl"


def train(config: TrainConfig, base_model_dir: Path | str, train_path: Path | str, val_path: Path | str,
          output_dir: Path | str, *, resume: bool = False, progress: bool = True,
          on_log: Callable[[dict[str, Any]], None] | None = None, goal: GoalStop | None = None,
          init_from: Path | str | None = None) -> TrainResult:
    """Fine-tune `base_model_dir` on `train_path`, validate on `val_path`, save weights + result in `output_dir`.

    With `resume=True` training continues from the newest checkpoint in output_dir/checkpoints. With `goal`,
    the objective's metric is scored every few steps, the best-scoring weights are kept and training stops
    on its plateau or deadline. `init_from` starts from earlier weights (a sweep trial's adapter or model).
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    backend = select_backend()
    if config.method == "qlora" and not cuda_available():
        raise ToolError("qlora needs a CUDA GPU (bitsandbytes); use method=lora here.")
    if backend == "unsloth":
        from tools.train.unsloth_backend import load_unsloth

        model, tokenizer = load_unsloth(config, base_model_dir)
    else:
        model, tokenizer = _load_trl(config, base_model_dir, init_from)
    result = _run(config, model, tokenizer, backend, Path(train_path), Path(val_path), output_dir,
                  resume=resume, progress=progress, on_log=on_log, started=started, goal=goal)
    if init_from is not None:
        result.init_from = str(init_from)
        atomic_write_text(output_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return result


def _load_trl(config: TrainConfig, base_model_dir: Path | str, init_from: Path | str | None = None):
    import torch

    from tools.models import load_model, load_tokenizer

    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(base_model_dir)
    if config.method == "qlora":
        # Reached only with CUDA (TrainConfig refuses qlora elsewhere) and without unsloth installed.
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16 if config.use_bf16() else torch.float16)
        model = prepare_model_for_kbit_training(load_model(base_model_dir, quantization_config=quantization))
    else:
        # A full fine-tune continues from the trial's whole model; LoRA loads the base, then the adapter.
        start = init_from if init_from is not None and config.method == "full" else base_model_dir
        model = load_model(start, dtype=torch.float32)
    if config.method == "full":
        return model, tokenizer
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_from is not None:
        return PeftModel.from_pretrained(model, str(init_from), is_trainable=True), tokenizer

    missing = [m for m in config.target_modules if not any(n.endswith(m) for n, _ in model.named_modules())]
    if missing:
        raise ToolError(f"target_modules {missing} are not layers of {base_model_dir}; "
                        "list the model's linear layer names (e.g. q_proj, v_proj) in the preset.")
    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, lora), tokenizer


def sft_args(config: TrainConfig, checkpoints: Path, *, bf16: bool, has_val: bool = True,
             best_by_loss: bool = True) -> Any:
    """The SFTConfig for `config`: CPU-aware precision, packing, eval/save cadence and early stopping."""
    from trl import SFTConfig

    on_cpu = not cuda_available()
    return SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        # A ratio of the total steps, but never more than 10: max_steps is an upper bound when training stops
        # on the goal metric or a deadline, and a long warmup would spend the real steps at a tiny rate.
        warmup_steps=min(10, int(config.warmup_ratio * config.max_steps)) if config.max_steps > 0
        else config.warmup_ratio,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        max_length=config.max_length,
        # Rows come packed already (tools.train.data.pack_rows, a mix in every row), so TRL's own packing is
        # skipped; packing with "bfd" is what makes its collator padding-free, each example's positions from 0.
        packing=config.packing,
        packing_strategy="bfd",
        dataset_kwargs={"skip_prepare_dataset": True} if config.packing else None,
        seed=config.seed,
        gradient_checkpointing=config.use_gradient_checkpointing(),
        # SFTConfig defaults to bf16=True and fails on a CPU unless use_cpu=True.
        use_cpu=on_cpu,
        bf16=bf16,
        fp16=False,
        eval_strategy="steps" if has_val else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=best_by_loss and has_val and config.early_stopping_patience > 0,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
    )


def _run(config, model, tokenizer, backend, train_path, val_path, output_dir, *, resume, progress, on_log,
         started, goal=None) -> TrainResult:
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback

    from tools.train.data import build_dataset, pack_rows
    from tools.train.progress import ProgressCallback, peak_rss_mb

    threads = pick_threads(config.threads)
    if not cuda_available():
        torch.set_num_threads(threads)
    bf16 = config.use_bf16()
    checkpoints = output_dir / CHECKPOINTS
    last = last_complete_checkpoint(checkpoints) if resume else None
    if not resume and checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*")):
        raise ToolError(f"{checkpoints} already holds checkpoints from an earlier run: pass resume=True "
                        "(`ingrain resume RUN`) to continue it, or choose a fresh output folder.")
    train_set = build_dataset(tokenizer, train_path, config.max_length)
    val_set = build_dataset(tokenizer, val_path, config.max_length)
    if config.packing:
        train_set = pack_rows(train_set, config.max_length, seed=config.seed)
        val_set = pack_rows(val_set, config.max_length, seed=config.seed)
    tracker = ProgressCallback(show=progress, on_log=on_log)
    callbacks: list[Any] = [tracker]
    # With a goal metric, it decides what is kept and when to stop; validation loss is only logged.
    by_goal = goal is not None and goal.score is not None
    if config.early_stopping_patience > 0 and not by_goal:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    goal_cb = None
    if goal is not None:
        from tools.train.goal_stop import GoalStopCallback

        goal_cb = GoalStopCallback(goal, tokenizer)
        callbacks.append(goal_cb)
    args = sft_args(config, checkpoints, bf16=bf16, best_by_loss=not by_goal)
    trainer_class = _sft_trainer_class(labelled_head=not cuda_available(), recall_weight=config.recall_weight)
    trainer = trainer_class(model=model, args=args, train_dataset=train_set, eval_dataset=val_set,
                         processing_class=tokenizer, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our one-line progress replaces its dict dumps
    resumed_from = int(Path(last).name.split("-")[-1]) if last else 0
    output = trainer.train(resume_from_checkpoint=last)
    tracker.show_lines(False)
    final_val = trainer.evaluate()["eval_loss"]
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    val_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    weights = output_dir / ("model" if config.method == "full" else "adapter")
    with atomic_dir(weights) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    steps = trainer.state.global_step
    stop_reason = "early_stopping" if steps < trainer.state.max_steps else "max_steps"
    kept: dict[str, Any] | None = None
    if goal_cb is not None:
        from tools.train.goal_stop import keep_best

        kept = keep_best(goal_cb.trace, goal.best_dir, weights)
        if goal_cb.trace.stop_reason != "max_steps":
            stop_reason = goal_cb.trace.stop_reason
    result = TrainResult(
        output_dir=str(output_dir), weights_path=str(weights), method=config.method, backend=backend,
        precision="bf16" if bf16 else "fp32", steps=steps,
        final_train_loss=train_losses[-1] if train_losses else output.training_loss,
        best_val_loss=min(val_losses) if val_losses else final_val, final_val_loss=float(final_val),
        loss_curve=tracker.curve, train_tokens=tracker.tokens,
        tokens_per_s=round(tracker.tokens / output.metrics["train_runtime"], 1)
        if output.metrics.get("train_runtime") else 0.0,
        wall_seconds=round(time.perf_counter() - started, 2), peak_rss_mb=round(peak_rss_mb(), 1),
        threads=threads if not cuda_available() else 0, resumed_from_step=resumed_from,
        stopped_early=steps < trainer.state.max_steps, stop_reason=stop_reason, config=config.to_dict(),
        goal_curve=goal_cb.trace.curve if goal_cb else [],
        best_goal_metric=kept["metric"] if kept else None,
        best_goal_step=kept["step"] if kept else None,
    )
    atomic_write_text(output_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return result


def _sft_trainer_class(*, labelled_head: bool, recall_weight: float = 1.0) -> type:
    """TRL's SFTTrainer; on a CPU, or with a `recall_weight`, one whose training loss runs the LM head on
    labelled positions only.

    The loss is the same cross-entropy over the same tokens (tools/train/loss.py), weighted by recall_weight;
    evaluation, multi-process runs and models whose logits are rescaled keep TRL's own computation, unweighted.
    """
    from trl import SFTTrainer

    if not labelled_head and recall_weight == 1.0:
        return SFTTrainer

    from tools.train.loss import labelled_positions_loss, supports_labelled_head

    class LabelledHeadSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if (return_outputs or not model.training or self.aux_loss_enabled
                    or self.accelerator.num_processes != 1 or not supports_labelled_head(model)):
                if model.training and recall_weight != 1.0 and not getattr(self, "_said_unweighted", False):
                    self._said_unweighted = True
                    warnings.warn(f"recall_weight={recall_weight} is not applied: this model or setup (rescaled "
                                  "logits, an auxiliary loss or several processes) trains with TRL's own loss. "
                                  "Set recall_weight=1 to silence this.", stacklevel=2)
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            loss, metrics = labelled_positions_loss(model, inputs, num_items_in_batch,
                                                    recall_weight=recall_weight)
            valid = max(1, int(metrics["valid"]))
            logged = self._metrics["train"]
            logged["entropy"].append(float(metrics["entropy"]) / valid)
            logged["mean_token_accuracy"].append(float(metrics["correct"]) / valid)
            # TRL's count of real tokens: attention-mask tokens, or the packed row's length when padding-free.
            if "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            else:
                self._total_train_tokens += int(inputs["position_ids"].size(1))
            logged["num_tokens"] = [self._total_train_tokens]
            return loss

    return LabelledHeadSFTTrainer


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint whose trainer_state.json (written last) is readable; half-written ones are removed.

    A kill -9 during a save leaves a checkpoint folder without its state; resuming from it would fail.
    """
    import shutil

    if not checkpoints.is_dir():
        return None
    found = sorted((p for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for folder in found:
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        return str(folder)
    return None


def estimate(train_tokens: int, epochs: float, tokens_per_s: float, val_tokens: int = 0,
             evals: int = 0) -> dict[str, float]:
    """Planner helper: wall-time estimate from token counts and a measured tokens/s (forward+backward).

    Validation is forward-only, roughly a third of a training step's cost per token.
    """
    if tokens_per_s <= 0:
        raise ToolError("tokens_per_s must be > 0: measure it with a short run (TrainResult.tokens_per_s).")
    train_s = train_tokens * epochs / tokens_per_s
    eval_s = val_tokens * evals / (tokens_per_s * 3)
    return {"train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
            "total_seconds": round(train_s + eval_s, 1)}


def load_result(output_dir: Path | str) -> dict[str, Any]:
    path = Path(output_dir) / RESULT_FILE
    if not path.is_file():
        raise ToolError(f"{path} does not exist: the training run did not finish; resume it or train again.")
    return json.loads(path.read_text())
