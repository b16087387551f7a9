"""The labelled-positions loss equals the model's own loss, in value and in gradients."""

from __future__ import annotations

import pytest
import torch

from tools.models import load_model
from tools.train.data import IGNORE
from tools.train.loss import labelled_positions_loss, recall_weights, supports_labelled_head


@pytest.fixture
def lora_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(tiny_model_dir, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                      task_type="CAUSAL_LM"))
    # Non-zero LoRA B so the adapters take part in the forward pass and receive real gradients.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    model.train()
    return model


def packed_batch(vocab: int) -> dict[str, torch.Tensor]:
    """Two examples packed in one row; only the second half of each is labelled."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (1, 40), generator=generator)
    labels = ids.clone()
    labels[0, :10] = IGNORE
    labels[0, 20:30] = IGNORE
    position_ids = torch.cat([torch.arange(20), torch.arange(20)]).unsqueeze(0)
    return {"input_ids": ids, "labels": labels, "position_ids": position_ids}


def adapter_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_loss_and_gradients_match_the_models_own_loss(lora_model):
    batch = packed_batch(lora_model.config.vocab_size)
    assert supports_labelled_head(lora_model)

    # use_cache=False as in training: with a cache the model does not split packed rows by position_ids.
    expected = lora_model(**batch, use_cache=False).loss
    expected.backward()
    expected_grads = adapter_grads(lora_model)
    lora_model.zero_grad()

    loss, metrics = labelled_positions_loss(lora_model, batch)
    loss.backward()
    grads = adapter_grads(lora_model)

    assert int(metrics["valid"]) == 20  # every labelled token is predicted from the position before it
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert grads.keys() == expected_grads.keys() and grads
    for name, grad in grads.items():
        assert torch.allclose(grad, expected_grads[name], rtol=1e-4, atol=1e-7), name


def test_num_items_in_batch_sets_the_denominator(lora_model):
    batch = packed_batch(lora_model.config.vocab_size)
    per_batch, metrics = labelled_positions_loss(lora_model, batch)
    accumulated, _ = labelled_positions_loss(lora_model, batch, num_items_in_batch=torch.tensor(40))
    assert accumulated.item() == pytest.approx(per_batch.item() * int(metrics["valid"]) / 40, rel=1e-5)


def test_models_with_rescaled_logits_keep_trls_head(tiny_model_dir):
    model = load_model(tiny_model_dir, dtype=torch.float32)
    assert supports_labelled_head(model)
    model.config.final_logit_softcapping = 30.0
    assert not supports_labelled_head(model)


def test_recall_weights_favour_reply_tokens_the_prompt_does_not_hold():
    # Two examples packed in one row: prompt [5, 6, 7] reply [6, 9, 2]; prompt [9, 3] reply [9, 5, 4].
    ids = torch.tensor([[5, 6, 7, 6, 9, 2, 9, 3, 9, 5, 4]])
    labels = torch.tensor([[IGNORE] * 3 + [6, 9, 2] + [IGNORE] * 2 + [9, 5, 4]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]])
    weights = recall_weights({"input_ids": ids, "labels": labels, "position_ids": positions}, 3.0)
    # Copyable: 6 (in the first prompt) and 9 (in the second); the rest is new to its own example, 9 in the first
    # reply included though the second example's prompt holds it. Mean over the six labelled tokens is 1.
    raw = torch.tensor([[0, 0, 0, 1, 3, 3, 0, 0, 1, 3, 3]], dtype=torch.float32)
    assert torch.allclose(weights, raw * 6 / raw.sum())
    # Unpacked rows (no position_ids): each row is one example.
    rows = recall_weights({"input_ids": ids[:, :6].repeat(2, 1), "labels": labels[:, :6].repeat(2, 1)}, 3.0)
    assert torch.allclose(rows, torch.tensor([[0, 0, 0, 1, 3, 3]] * 2, dtype=torch.float32) * 6 / 14)


def test_recall_weight_scales_each_tokens_term(lora_model):
    batch = packed_batch(lora_model.config.vocab_size)
    batch["input_ids"][0, 10:13] = batch["input_ids"][0, :3]  # the first reply repeats three prompt tokens
    batch["labels"][0, 10:13] = batch["input_ids"][0, :3]
    plain, _ = labelled_positions_loss(lora_model, batch)
    same, _ = labelled_positions_loss(lora_model, batch, recall_weight=1.0)
    weighted, _ = labelled_positions_loss(lora_model, batch, recall_weight=4.0)
    assert same.item() == plain.item()
    # The weighted loss is the weighted mean of the per-token losses.
    with torch.no_grad():
        logits = lora_model(**batch, use_cache=False).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    token_loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="none")
    weights = recall_weights(batch, 4.0)[:, 1:][mask]
    assert weights.min() < weights.max()  # the random batch has both kinds of token
    assert weighted.item() == pytest.approx((token_loss * weights).mean().item(), rel=1e-5)
    # Near-uniform losses of a random model: the weighting moves the mean little, but well past rounding.
    assert abs(weighted.item() - plain.item()) > 10 * 1e-5 * plain.item()
