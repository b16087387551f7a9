"""The training loss on a CPU: project only the labelled positions through the LM head.

TRL's SFTTrainer computes the loss with a chunked "fused LM head". On Triton devices it scores only the
positions with a label; everywhere else it scores every position, recomputes the logits in backward and
computes the entropy of all of them. With a 49k vocabulary the head is a fifth of a 135M model's forward,
and in chat data about half the positions are prompt tokens with no label. Selecting the labelled hidden
states first and projecting just those gives the same loss (the same cross-entropy over the same tokens)
for less work; `bench/train_throughput.py` measures the difference.
"""

from __future__ import annotations

from typing import Any

from tools.train.data import IGNORE

# Config attributes that rescale or cap the logits; a model with any of them keeps TRL's own head.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


def supports_labelled_head(model: Any) -> bool:
    """Whether `labelled_positions_loss` computes the same loss as the model's own head for `model`."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = causal.config.get_text_config()
    if any(getattr(config, name, None) is not None for name in _LOGIT_TRANSFORMS):
        return False
    return (getattr(causal, causal.base_model_prefix, None) is not None
            and causal.get_output_embeddings() is not None and config is causal.config)


def labelled_positions_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None, *,
                            recall_weight: float = 1.0) -> tuple[Any, dict[str, Any]]:
    """Next-token cross-entropy over the positions whose label is not -100, and per-batch metrics.

    The sum is divided by `num_items_in_batch` (the labelled tokens of the whole accumulated step, as the
    Trainer passes it) or, without it, by this batch's labelled tokens. With `recall_weight` != 1 each token's
    term is weighted by `recall_weights`, whose mean is 1, so the loss keeps its scale. The metrics are the
    ones TRL logs: labelled token count, summed entropy and correct top-1 predictions.
    """
    import torch

    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(causal, causal.base_model_prefix)
    head = causal.get_output_embeddings()
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    forward["use_cache"] = False
    hidden = backbone(**forward).last_hidden_state[:, :-1]
    labels = inputs["labels"][:, 1:].to(hidden.device)
    mask = labels != IGNORE
    targets = labels[mask]
    log_probs = torch.log_softmax(head(hidden[mask]).float(), dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if recall_weight != 1.0:
        picked = picked * recall_weights(inputs, recall_weight)[:, 1:][mask].to(picked.device)
    count = mask.sum()
    denominator = count if num_items_in_batch is None else num_items_in_batch
    loss = -picked.sum() / torch.as_tensor(denominator, device=picked.device).clamp(min=1)
    with torch.no_grad():
        metrics = {"valid": count, "entropy": -(log_probs.exp() * log_probs).sum(),
                   "correct": (log_probs.argmax(-1) == targets).sum()}
    return loss, metrics


def recall_weights(inputs: dict[str, Any], weight: float) -> Any:
    """Per-token loss weights shaped like `inputs["input_ids"]`: `weight` for a labelled token whose id does not
    occur in its own example's prompt (the unlabelled tokens of that example), 1 for one it could copy from
    there, scaled so the labelled tokens' mean weight is 1; 0 where there is no label.

    A fact's answer mostly repeats its question's words; the tokens it must recall (the value, and the words of
    the stored sentence the question does not use) are few, and the model otherwise learns to echo questions.
    Examples are told apart by `position_ids` restarting at 0 in a packed row, else one example per row.
    """
    import torch

    ids, labels = inputs["input_ids"], inputs["labels"]
    positions = inputs.get("position_ids")
    if positions is None:
        starts = torch.zeros_like(ids, dtype=torch.bool)
        starts[:, 0] = True
    else:
        starts = positions.expand_as(ids) == 0
    # One id per example across the batch, so rows and packed examples share a single lookup table.
    example = starts.flatten().long().cumsum(0).view_as(ids) - 1
    vocab = int(ids.max()) + 1
    in_prompt = torch.zeros(int(example.max()) + 1, vocab, dtype=torch.bool, device=ids.device)
    prompt = labels == IGNORE
    in_prompt[example[prompt], ids[prompt]] = True
    labelled = ~prompt
    novel = labelled & ~in_prompt[example, ids]
    weights = torch.where(novel, float(weight), 1.0) * labelled  # scalars: on the batch's device
    count = labelled.sum()
    return weights * (count / weights.sum().clamp(min=1e-6)) if count else weights
