"""The labelled-positions loss equals the model's own loss, in value and in gradients."""

from __future__ import annotations

import pytest
import torch

from tools.models import load_model
from tools.train.data import IGNORE
from tools.train.loss import labelled_positions_loss, supports_labelled_head


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
