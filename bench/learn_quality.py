"""Does ingrain learn the goal within its budget? Side by side in one run, per generated task:

  ingrain: `ingrain run GOAL --data FILE --policy auto --budget-minutes B`, then the deployed model asked
           unseen prompts through `ingrain serve` with the openai client;
  trl:     a plain TRL + PEFT LoRA script (r 16, batch 8, lr 1e-3, TRL's own loop) given the same data and
           the same wall time ingrain took, asked the same prompts with greedy `generate`.

Usage:  .venv/bin/python bench/learn_quality.py [--tasks rigid_format,classification,extraction]
                                                [--budget-minutes 10] [--examples 80] [--unseen 10] [--skip-trl]
Prints one line per task and side: goal metric on unseen prompts (k/n) and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evals.learn_tasks import TASKS, LearnTask, unseen_prompts  # noqa: E402

INGRAIN = [sys.executable, "-m", "agent.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask_endpoint(home: Path, prompts: list[dict]) -> list[str]:
    """Serve the production version on loopback and ask each prompt through the openai client."""
    from openai import OpenAI

    from tools.serve.server import wait_until_healthy

    port = free_port()
    env = {**os.environ, "INGRAIN_HOME": str(home)}
    server = subprocess.Popen([*INGRAIN, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", timeout_s=120, process=server)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local")
        model = client.models.list().data[0].id
        return [client.chat.completions.create(model=model, messages=ex["messages"][:-1], max_tokens=160,
                                               temperature=0).choices[0].message.content or "" for ex in prompts]
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_ingrain(task: LearnTask, data: Path, home: Path, budget: float) -> tuple[dict, float]:
    env = {**os.environ, "INGRAIN_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.run([*INGRAIN, "run", task.goal.format(data=data), "--data", str(data), "--policy", "auto",
                           "--budget-minutes", str(budget), "--json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    try:
        outcome = json.loads(proc.stdout)
    except json.JSONDecodeError:
        outcome = {"error": proc.stderr[-2000:]}
    return outcome, seconds


def run_trl(train: list[dict], prompts: list[dict], seconds: float, out: Path) -> list[str]:
    """The plain recipe: TRL's SFTTrainer + a PEFT LoRA, stopped when the wall time ingrain took is used up."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tools.models import convert_smollm2, load_model, load_tokenizer

    started = time.perf_counter()
    base = convert_smollm2(REPO / ".cache" / "models" / "smollm2-135m")
    tokenizer, model = load_tokenizer(base), load_model(base, dtype=torch.float32)
    reserve = 8 + len(prompts) * 6.0  # leave the time its own greedy answers take

    class Deadline(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = time.perf_counter() - started > seconds - reserve
            return control

    args = SFTConfig(output_dir=str(out), learning_rate=1e-3, num_train_epochs=50, per_device_train_batch_size=8,
                     use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=5,
                     assistant_only_loss=True, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train), processing_class=tokenizer,
                         peft_config=LoraConfig(r=16, lora_alpha=16, target_modules="all-linear",
                                                task_type="CAUSAL_LM"), callbacks=[Deadline()])
    trainer.train()
    model = trainer.model.eval()
    replies = []
    for ex in prompts:
        ids = tokenizer.apply_chat_template(ex["messages"][:-1], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.inference_mode():
            out_ids = model.generate(**ids, max_new_tokens=160, do_sample=False,
                                     eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
        replies.append(tokenizer.decode(out_ids[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--budget-minutes", type=float, default=10)
    parser.add_argument("--examples", type=int, default=80)
    parser.add_argument("--unseen", type=int, default=10)
    parser.add_argument("--skip-trl", action="store_true")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ingrain-learn-"))
    print(f"task            side     score   wall s   (work in {root})")
    for name in opts.tasks.split(","):
        task = TASKS[name]
        train = task.make(opts.examples, 0)
        prompts = unseen_prompts(task, opts.unseen, train=train)
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in train))
        home = root / f"home-{name}"
        outcome, seconds = run_ingrain(task, data, home, opts.budget_minutes)
        if outcome.get("verdict") == "pass" and not outcome.get("error"):
            replies = ask_endpoint(home, prompts)
            ok = sum(task.score(r, ex["messages"][-1]["content"]) for r, ex in zip(replies, prompts, strict=True))
            (root / f"{name}-ingrain-replies.json").write_text(json.dumps(replies, indent=1))
            print(f"{name:15s} ingrain  {ok:2d}/{len(prompts):<3d} {seconds:7.0f}", flush=True)
        else:
            print(f"{name:15s} ingrain  not deployed ({outcome.get('verdict') or outcome.get('error')}) "
                  f"{seconds:7.0f}", flush=True)
        if not opts.skip_trl:
            started = time.perf_counter()
            replies = run_trl(train, prompts, seconds, root / f"trl-{name}")
            ok = sum(task.score(r, ex["messages"][-1]["content"]) for r, ex in zip(replies, prompts, strict=True))
            (root / f"{name}-trl-replies.json").write_text(json.dumps(replies, indent=1))
            print(f"{name:15s} trl      {ok:2d}/{len(prompts):<3d} {time.perf_counter() - started:7.0f}", flush=True)


if __name__ == "__main__":
    main()
