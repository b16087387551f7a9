"""Training throughput: ingrain's training path against a plain HF Trainer + PEFT LoRA reference.

Run: .venv/bin/python bench/train_throughput.py [--steps N] [--json]

Both sides train the real SmolLM2-135M (tools.models.resolve_base()) with the same LoRA shape
(r=16 on all linear projections), learning rate and seed, on the same generated mix of short and long
chat examples, with the loss on assistant tokens only.

- reference: `transformers.Trainer`, fp32, 8 examples per step padded to the longest in the batch,
  no packing, torch's default thread count.
- ingrain: `tools.train.trainer.train` with the lora-cpu preset: packed rows (no pad tokens), the LM head run
  on labelled positions only, no gradient checkpointing and no LoRA dropout on a CPU, BF16 only on CPUs
  with native BF16, threads picked from the machine's load.

Comparison choice: with packing a "step" holds a different number of examples, so both sides train
exactly ONE EPOCH over the same examples (equal real tokens seen), and ingrain's rows per step are
chosen so the number of optimizer steps is as close to the reference's as packing allows (both
step counts are printed). Throughput counts real (non-pad) tokens per second of training time.
Both final validation losses come from the same evaluation function (token-weighted mean over the
assistant tokens of the same validation examples), so their relative difference is like for like.
Peak RSS is the process high-water mark after each phase; ingrain runs first, so its figure is its own
and the reference's is max(both). The reference then gets torch's default thread count back.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.models import load_model, load_tokenizer, resolve_base
from tools.train.config import ALL_LINEAR, TrainConfig
from tools.train.data import IGNORE, build_dataset
from tools.train.trainer import train

EXAMPLES_PER_STEP = 8
TOPICS = ["caching", "retries", "logging", "pagination", "rate limits", "timeouts", "migrations", "indexes"]


def make_examples(count: int, seed: int) -> list[dict]:
    """Chat examples: 3 of 4 short (~40 tokens), 1 of 4 long (~300 tokens), answers in one bullet style."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        if i % 4 == 3:
            question = f"Explain {topic} in our service in detail. " + " ".join(
                f"Consider case {k}: the {rng.choice(TOPICS)} setting changes under load." for k in range(8))
            answer = "\n".join(f"- {topic} point {k}: keep the {rng.choice(TOPICS)} bounded and measured."
                               for k in range(8)) + "\nHope this helps."
        else:
            question = f"What about {topic}?"
            answer = f"- {topic}: keep it simple.\nHope this helps."
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answer}]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def val_loss(model, dataset) -> float:
    """Token-weighted mean cross-entropy over assistant tokens, one example at a time."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in dataset:
            ids = torch.tensor([row["input_ids"]])
            labels = torch.tensor([row["labels"]])
            logits = model(input_ids=ids).logits[0, :-1].float()
            target = labels[0, 1:]
            keep = target != IGNORE
            total += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    return total / count


def run_reference(base, tokenizer, train_set, val_set, lr: float, out: Path, threads: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    torch.set_num_threads(threads)  # torch's default; the ingrain run before it picked its own
    torch.manual_seed(0)
    model = get_peft_model(load_model(base.path), LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05,
                                                             target_modules=list(ALL_LINEAR),
                                                             task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=EXAMPLES_PER_STEP,
                             num_train_epochs=1, learning_rate=lr, warmup_steps=0.03, weight_decay=0.01,
                             lr_scheduler_type="linear", use_cpu=True, bf16=False, save_strategy="no",
                             eval_strategy="no", logging_steps=1, report_to="none", disable_tqdm=True,
                             seed=42, remove_unused_columns=False)
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE)
    trainer = Trainer(model=model, args=args, train_dataset=train_set, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # --json must print one document only
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    tokens = sum(len(r["input_ids"]) for r in train_set)
    lengths = [len(r["input_ids"]) for r in train_set]
    batches = [lengths[i:i + EXAMPLES_PER_STEP] for i in range(0, len(lengths), EXAMPLES_PER_STEP)]
    padded = sum(max(b) * len(b) for b in batches)  # the trainer shuffles; this is the unshuffled figure
    return {"tokens_per_s": tokens / seconds, "train_seconds": seconds, "steps": output.global_step,
            "real_tokens": tokens, "padded_tokens_upper_bound": padded, "threads": torch.get_num_threads(),
            "precision": "fp32", "val_loss": val_loss(model, val_set), "peak_rss_mb": peak_rss_mb()}


def run_ingrain(base, tokenizer, paths, val_set, steps: int, lr: float, out: Path, tokens: int) -> dict:
    from peft import PeftModel

    max_length = 512
    rows = math.ceil(tokens / max_length * 1.05)  # bfd fills rows nearly full
    config = TrainConfig.from_yaml("lora-cpu", lr=lr, epochs=1, batch_size=1,
                                   grad_accum=max(1, round(rows / steps)), max_length=max_length,
                                   eval_steps=10_000, save_steps=10_000, early_stopping_patience=0, seed=42)
    result = train(config, base.path, paths[0], paths[1], out, progress=False)
    tuned = PeftModel.from_pretrained(load_model(base.path), result.weights_path)
    return {"tokens_per_s": result.tokens_per_s, "train_seconds": result.train_tokens / result.tokens_per_s,
            "steps": result.steps, "real_tokens": result.train_tokens, "threads": result.threads,
            "precision": result.precision, "val_loss": val_loss(tuned, val_set), "peak_rss_mb": peak_rss_mb(),
            "rows_per_step": config.grad_accum, "max_length": max_length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="reference optimizer steps (8 examples each)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--lr", type=float, default=2e-4)
    options = parser.parse_args()

    import torch

    default_threads = torch.get_num_threads()
    base = resolve_base()
    tokenizer = load_tokenizer(base.path)
    with tempfile.TemporaryDirectory(prefix="ingrain-bench-") as tmp:
        folder = Path(tmp)
        paths = (write_jsonl(folder / "train.jsonl", make_examples(options.steps * EXAMPLES_PER_STEP, 1)),
                 write_jsonl(folder / "val.jsonl", make_examples(16, 2)))
        train_set = build_dataset(tokenizer, paths[0], 1024)
        val_set = build_dataset(tokenizer, paths[1], 1024)
        tokens = sum(len(r["input_ids"]) for r in train_set)
        ingrain = run_ingrain(base, tokenizer, paths, val_set, options.steps, options.lr, folder / "ingrain", tokens)
        reference = run_reference(base, tokenizer, train_set, val_set, options.lr, folder / "ref", default_threads)
    report = {
        "model": base.name, "examples": len(train_set), "reference": reference, "ingrain": ingrain,
        "speedup": ingrain["tokens_per_s"] / reference["tokens_per_s"],
        "val_loss_rel_diff": (ingrain["val_loss"] - reference["val_loss"]) / reference["val_loss"],
    }
    if options.json:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"LoRA training, {base.name}, {len(train_set)} examples, one epoch")
    for column in ("", "reference (Trainer, padded, fp32)", "ingrain"):
        table.add_column(column)
    for key, fmt in (("tokens_per_s", "{:.1f}"), ("steps", "{}"), ("real_tokens", "{}"),
                     ("train_seconds", "{:.1f}"), ("threads", "{}"), ("precision", "{}"),
                     ("val_loss", "{:.4f}"), ("peak_rss_mb", "{:.0f}")):
        table.add_row(key, fmt.format(reference[key]), fmt.format(ingrain[key]))
    Console().print(table)
    Console().print(f"speedup {report['speedup']:.2f}x, val loss relative difference "
                    f"{report['val_loss_rel_diff']:+.2%}")


if __name__ == "__main__":
    main()
