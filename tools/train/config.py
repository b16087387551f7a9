"""Training configuration: one validated dataclass, YAML presets, and what the hardware supports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.errors import ToolError

METHODS = ("lora", "qlora", "full")
KNOWLEDGE_RECALL_WEIGHT = 3.0
"""recall_weight for knowledge goals. bench/knowledge_curve.py, same seed and data: recall 4, 12, 27, 32, 28, 30, 28,
29, 30, 30 of 40 at steps 17-170 against 3, 8, 20, 24, 23, 23, 29, 27, 28, 28 with plain cross-entropy."""
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class TrainConfig:
    """How to fine-tune: method, LoRA shape, optimiser schedule, batching, evaluation and checkpoints."""

    method: str = field(default="lora", metadata={"help": "lora | qlora (4-bit base, CUDA only) | full"})
    r: int = field(default=16, metadata={"help": "LoRA rank; higher = more capacity, more memory"})
    alpha: int = field(default=16, metadata={"help": "LoRA scale numerator (update scaled by alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR),
                                      metadata={"help": "linear layers that get adapters"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate (linear decay after warmup)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; overrides epochs when > 0"})
    batch_size: int = field(default=4, metadata={"help": "sequences per micro-batch (packed rows when packing)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps with a linear LR warmup"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=1024, metadata={"help": "tokens per sequence; longer examples are cut"})
    packing: bool = field(default=True, metadata={
        "help": "pack several examples per row (no pad tokens, attention kept within each example)"})
    recall_weight: float = field(default=1.0, metadata={
        "help": "loss weight of reply tokens absent from their example's prompt, relative to tokens the reply can "
                "copy from it (1 = plain cross-entropy; the mean weight stays 1). Knowledge goals use "
                "KNOWLEDGE_RECALL_WEIGHT: a fact's value and the words of its sentence the question does not "
                "use are what must be recalled"})
    seed: int = field(default=42, metadata={"help": "seed for shuffling, dropout and LoRA init"})
    eval_steps: int = field(default=50, metadata={"help": "validation loss every N optimizer steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept on disk (plus the best)"})
    early_stopping_patience: int = field(default=3, metadata={
        "help": "stop after N evaluations without a better val loss; 0 disables"})
    logging_steps: int = field(default=1, metadata={"help": "progress line every N optimizer steps"})
    bf16: str | bool = field(default="auto", metadata={
        "help": "auto = on when the CPU has native BF16 (avx512_bf16 / amx_bf16) or CUDA supports it"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 = the cores idle right now"})
    gradient_checkpointing: str | bool = field(default="auto", metadata={
        "help": "recompute activations in backward to save memory; auto = on with CUDA only (on a CPU "
                "memory is plentiful and the recomputation costs about a third of the step)"})

    def __post_init__(self) -> None:
        self.method = str(self.method).lower()
        if self.method not in METHODS:
            raise ToolError(f"Unknown training method {self.method!r}: use one of {', '.join(METHODS)}.")
        self.bf16 = _auto_or_bool("bf16", self.bf16)
        self.gradient_checkpointing = _auto_or_bool("gradient_checkpointing", self.gradient_checkpointing)
        self.target_modules = list(self.target_modules)
        positive = {"lr": self.lr, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "max_length": self.max_length, "eval_steps": self.eval_steps, "save_steps": self.save_steps,
                    "logging_steps": self.logging_steps, "save_total_limit": self.save_total_limit}
        for name, value in positive.items():
            if value <= 0:
                raise ToolError(f"{name}={value} must be > 0; the default is "
                                f"{_DEFAULTS[name]} (set it in the preset or pass a positive value).")
        if self.method != "full":
            if self.r <= 0:
                raise ToolError(f"LoRA rank r={self.r} must be >= 1 (try 8 or 16), or use method=full.")
            if self.alpha <= 0:
                raise ToolError(f"LoRA alpha={self.alpha} must be > 0; alpha = r is a safe default.")
            if not self.target_modules:
                raise ToolError(f"target_modules is empty: LoRA needs layers to adapt, e.g. {list(ALL_LINEAR)}.")
        if not 0 <= self.dropout < 1:
            raise ToolError(f"dropout={self.dropout} must be in [0, 1); 0.05 is the usual value.")
        if not 0 <= self.warmup_ratio < 1:
            raise ToolError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1); 0.03 is the usual value.")
        if self.recall_weight <= 0:
            raise ToolError(f"recall_weight={self.recall_weight} must be > 0; 1 weighs every reply token alike.")
        if self.weight_decay < 0:
            raise ToolError(f"weight_decay={self.weight_decay} must be >= 0.")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ToolError(f"epochs={self.epochs} with max_steps={self.max_steps} trains nothing: "
                            "set epochs > 0 or max_steps > 0.")
        if self.early_stopping_patience < 0 or self.threads < 0:
            raise ToolError("early_stopping_patience and threads must be >= 0 (0 disables / picks automatically).")
        if self.early_stopping_patience > 0 and self.save_steps % self.eval_steps:
            raise ToolError(f"save_steps={self.save_steps} must be a multiple of eval_steps={self.eval_steps} "
                            "so the best checkpoint exists for early stopping; e.g. set save_steps = eval_steps.")
        if self.method == "qlora" and not cuda_available():
            raise ToolError("method=qlora loads the base in 4 bit with bitsandbytes, which needs a CUDA GPU and "
                            "none is visible. Use method=lora on this machine (same adapter, fp32/bf16 base).")

    @classmethod
    def from_yaml(cls, path: Path | str, **overrides: Any) -> TrainConfig:
        """Load a preset (a path, or a name in tools/train/presets/ such as `lora-cpu`), then apply `overrides`."""
        import yaml

        path = resolve_preset(path)
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ToolError(f"{path} must hold a mapping of TrainConfig fields, not {type(data).__name__}.")
        return cls.from_dict({**data, **overrides}, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ToolError(f"{source}: unknown training option(s) {unknown}; valid ones are {sorted(known)}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def use_bf16(self) -> bool:
        """Resolve `bf16="auto"` against the hardware; an explicit value is obeyed."""
        return bf16_supported() if self.bf16 == "auto" else bool(self.bf16)

    def use_gradient_checkpointing(self) -> bool:
        """Resolve `gradient_checkpointing="auto"`: on with CUDA, off on a CPU."""
        return cuda_available() if self.gradient_checkpointing == "auto" else bool(self.gradient_checkpointing)


def _auto_or_bool(name: str, value: Any) -> str | bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "auto"):
        value = value.lower()
        return value if value == "auto" else value == "true"
    if isinstance(value, bool):
        return value
    raise ToolError(f"{name}={value!r} is not valid: use auto, true or false.")


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def resolve_preset(name: Path | str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    candidate = PRESETS_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    raise ToolError(f"No training preset {str(name)!r}: pass a YAML file path or one of {names}.")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native BF16 arithmetic on this CPU (AVX512-BF16 or AMX); without it autocast emulates and loses time."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if "AMX" in capability:
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()
