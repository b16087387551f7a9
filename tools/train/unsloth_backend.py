"""The CUDA training backend: unsloth's fused kernels under the same SFTTrainer loop (never imported on CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.train.config import TrainConfig


def load_unsloth(config: TrainConfig, base_model_dir: Path | str) -> tuple[Any, Any]:
    """Model and tokenizer from unsloth: 4-bit base for qlora, LoRA adapters with its gradient checkpointing."""
    # unsloth patches transformers at import time, so it must be imported before the model is built.
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(base_model_dir),
        max_seq_length=config.max_length,
        dtype=None,  # unsloth picks bf16 where the GPU supports it, else fp16
        load_in_4bit=config.method == "qlora",
        full_finetuning=config.method == "full",
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.method == "full":
        return model, tokenizer
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=config.seed,
    )
    return model, tokenizer
