"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from eegalign.errors import ConfigError
from eegalign.losses import (
    CombinedLoss,
    CosineLoss,
    InfoNCELoss,
    MSEInfoNCELoss,
    MSELoss,
    TokenLoss,
    build_loss,
    loss_config,
)

# pred row 0 is orthogonal to its target, row 1 identical: cos = (0, 1).
PRED = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
TRUE = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
# squared errors: row 0 -> 1 + 1, row 1 -> 0; mean over 4 elements = 0.5
MSE = 0.5
COS_DIST = (1.0 + 0.0) / 2


def test_mse_and_cosine_hand_values() -> None:
    assert MSELoss()(PRED, TRUE)["loss"].item() == pytest.approx(MSE)
    out = CosineLoss()(PRED, TRUE)
    assert out["loss"].item() == pytest.approx(COS_DIST)
    assert set(out) == {"loss", "cos_dist"}


def test_combined_weights() -> None:
    out = CombinedLoss(0.6, 0.4)(PRED, TRUE)
    assert out["loss"].item() == pytest.approx(0.6 * MSE + 0.4 * COS_DIST)
    assert out["mse"].item() == pytest.approx(MSE)
    assert out["cos_dist"].item() == pytest.approx(COS_DIST)


def test_cosine_flattens_trailing_dims() -> None:
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2) flattened (1, 0, 0, 1)
    t = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # flattened (1, 0, 0, 0): cos = 1/sqrt(2)
    assert CosineLoss()(p, t)["loss"].item() == pytest.approx(1 - 1 / math.sqrt(2))


def test_infonce_hand_value_and_normalisation() -> None:
    # two trials, two distinct unit targets; scale fixed at 1/T = 2 (T = 0.5)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[3.0, 0.0], [0.0, 5.0]])  # norms differ: must not matter after normalising
    loss = InfoNCELoss(temperature=0.5, learnable=False)(p, t)
    # logits = 2 * I -> each row: -log(e^2 / (e^2 + e^0)); both directions equal
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert loss["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert loss["temperature"].item() == pytest.approx(0.5)
    # the reference's defect (raw dot products) would give a different value for rescaled inputs
    assert InfoNCELoss(0.5, learnable=False)(10 * p, t)["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_infonce_temperature_learnable_and_clamped() -> None:
    loss = InfoNCELoss()
    assert loss.logit_scale.requires_grad
    assert loss.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)  # exp(10) >> 100
    assert loss.scale().item() == pytest.approx(100.0, rel=1e-5)
    p = torch.randn(4, 8, requires_grad=True)
    loss.logit_scale.data.fill_(1.0)
    loss(p, torch.randn(4, 8))["loss"].backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.abs().item() > 0


def test_infonce_duplicate_targets_are_shared_positives() -> None:
    # rows 0 and 1 share a target; a prediction equal to it is a perfect answer for both
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = t.clone()
    loss = InfoNCELoss(temperature=1.0, learnable=False)(p, t)["loss"].item()
    # p->t rows 0,1: logits (1, 1, 0), labels (1/2, 1/2, 0): -log(e/(2e+1)); row 2: -log(e/(e+2))
    a = -math.log(math.e / (2 * math.e + 1))
    b = -math.log(math.e / (math.e + 2))
    assert loss == pytest.approx((2 * a + b) / 3, rel=1e-6)  # t->p is the same matrix (symmetric)


def test_mse_infonce_is_weighted_sum() -> None:
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    out = MSEInfoNCELoss(mse_weight=0.3, infonce_weight=0.7, temperature=0.5, learnable=False)(p, t)
    nce = InfoNCELoss(0.5, learnable=False)(p, t)["loss"].item()
    assert out["mse"].item() == pytest.approx(0.25)
    assert out["loss"].item() == pytest.approx(0.3 * 0.25 + 0.7 * nce, rel=1e-6)


def test_token_loss_per_token() -> None:
    # one trial, two tokens: token 0 identical (cos 1), token 1 opposite (cos -1, distance 2)
    p = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    t = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    out = TokenLoss(0.8)(p, t)
    mse = (0 + 0 + 4 + 0) / 4
    cos_dist = (0 + 2) / 2
    assert out["token_mse"].item() == pytest.approx(mse)
    assert out["token_cos_dist"].item() == pytest.approx(cos_dist)
    assert out["loss"].item() == pytest.approx(0.8 * mse + 0.2 * cos_dist)
    with pytest.raises(ValueError):
        TokenLoss()(PRED, TRUE)  # 2-D input is not a token sequence


def test_shape_mismatch_and_registry() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        MSELoss()(PRED, TRUE[:1])
    assert isinstance(build_loss("combined", mse_weight=0.6, cosine_weight=0.4), CombinedLoss)
    assert isinstance(build_loss("TokenLoss"), TokenLoss)
    with pytest.raises(ConfigError):
        build_loss("nope")
    cfg = loss_config(CombinedLoss(0.6, 0.4))
    assert cfg == {"class_path": "eegalign.losses.CombinedLoss", "init_args": {"mse_weight": 0.6, "cosine_weight": 0.4}}


def test_infonce_text_shaped_targets_stay_finite() -> None:
    """77 x 768 targets with a large shared component (like CLIP text states): a unit vector's
    float32 dot with itself can fall below 1 - 1e-6; each row must still be its own positive."""
    import torch.nn.functional as F

    from eegalign.losses import InfoNCELoss, MSEInfoNCELoss

    g = torch.Generator().manual_seed(0)
    target = 1 + 0.04 * torch.randn(32, 77, 768, generator=g)
    t = F.normalize(target.flatten(1), dim=-1)
    assert ((t @ t.T).diagonal() <= 1 - 1e-6).any(), "fixture no longer exercises the float32 case"
    pred = target + 0.1 * torch.randn(32, 77, 768, generator=g)
    for loss in (InfoNCELoss(), MSEInfoNCELoss(1.0, 0.1)):
        out = loss(pred, target)
        assert torch.isfinite(out["loss"]), loss
