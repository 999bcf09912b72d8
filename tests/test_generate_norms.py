"""--match-norm: predictions of norm-free losses are rescaled to the training targets' mean norm by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eegalign.errors import ConfigError
from eegalign.generation.norms import prepare_predictions, rescale
from eegalign.predictions import Predictions

INFONCE = json.dumps({"class_path": "eegalign.losses.InfoNCELoss", "init_args": {"temperature": 0.07}})
MSE = json.dumps({"class_path": "eegalign.losses.MSELoss", "init_args": {}})


def _preds(shape: tuple[int, ...] = (5, 8), **extra: str) -> Predictions:
    rng = np.random.default_rng(0)
    n = shape[0]
    return Predictions(pred=(rng.standard_normal(shape) * 0.01).astype(np.float32),
                       true=(rng.standard_normal(shape) * 3.0).astype(np.float32), label=np.arange(n),
                       subject=np.ones(n, np.int64), image_ids=[f"i{k}" for k in range(n)],
                       route="image" if len(shape) == 2 else "text", extra=dict(extra))


def _norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1)


def test_rescale_keeps_direction_and_sets_the_norm_per_token() -> None:
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((5, 8))
    out = rescale(pred, np.array(4.0))
    assert np.allclose(_norms(out), 4.0, rtol=1e-5)
    cos = (out * pred).sum(1) / _norms(out) / _norms(pred)
    assert np.allclose(cos, 1.0, atol=1e-5)
    ref = np.array([10.0, 1.0, 2.0])  # e.g. a start token with a much larger norm keeps its own reference
    assert np.allclose(_norms(rescale(rng.standard_normal((4, 3, 6)), ref)), ref[None], rtol=1e-5)


def test_train_norm_and_loss_survive_the_file(tmp_path: Path) -> None:
    p = _preds(loss=INFONCE)
    train = np.random.default_rng(1).standard_normal((20, 8)) * 7.0
    p.record_train_norm(train)
    p.save(tmp_path / "p.safetensors")
    back = Predictions.load(tmp_path / "p.safetensors")
    assert back.training_loss == "InfoNCELoss"
    assert back.train_target_norm == pytest.approx(_norms(train).mean())


def test_auto_rescales_infonce_predictions_to_the_training_norm_only() -> None:
    p = _preds(loss=INFONCE)
    train = np.random.default_rng(1).standard_normal((20, 8)) * 7.0
    p.record_train_norm(train)
    pred, rec = prepare_predictions(p, "auto")
    assert rec["applied"] == "train" and rec["training_loss"] == "InfoNCELoss"
    assert np.allclose(_norms(pred), _norms(train).mean(), rtol=1e-5)
    assert rec["reference_norm"] == pytest.approx(_norms(train).mean()) and "norm-free" in rec["reason"]
    assert rec["prediction_norm"] == pytest.approx(_norms(p.pred).mean(), rel=1e-5)
    # test mode: the true embeddings' mean norm instead; off: untouched
    pred, rec = prepare_predictions(p, "test")
    assert rec["applied"] == "test" and np.allclose(_norms(pred), _norms(p.true).mean(), rtol=1e-5)
    pred, rec = prepare_predictions(p, "off")
    assert rec["applied"] is None and np.array_equal(pred, p.pred)


@pytest.mark.parametrize("extra", [{"loss": MSE}, {}])
def test_auto_leaves_mse_and_unknown_losses_alone(extra: dict) -> None:
    p = _preds(**extra)
    p.record_train_norm(np.ones((3, 8)))
    pred, rec = prepare_predictions(p, "auto")
    assert rec["applied"] is None and np.array_equal(pred, p.pred)
    assert ("MSELoss" in rec["reason"]) if extra else ("not recorded" in rec["reason"])


def test_auto_without_a_recorded_norm_warns_and_train_mode_refuses(capsys: pytest.CaptureFixture) -> None:
    p = _preds(loss=INFONCE)
    pred, rec = prepare_predictions(p, "auto")
    assert rec["applied"] is None and np.array_equal(pred, p.pred)
    assert "--match-norm test" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="records no training-target norm"):
        prepare_predictions(p, "train")
    with pytest.raises(ConfigError, match="must be one of"):
        prepare_predictions(p, "sometimes")


def test_text_route_norm_per_token_and_shape_check() -> None:
    p = _preds((4, 3, 6), loss=INFONCE)
    train = np.random.default_rng(2).standard_normal((10, 3, 6)) * np.array([9.0, 1.0, 2.0])[None, :, None]
    p.record_train_norm(train)
    pred, rec = prepare_predictions(p, "auto")
    assert np.allclose(_norms(pred), _norms(train).mean(0)[None], rtol=1e-5) and len(rec["reference_norm"]) == 3
    p.record_train_norm(np.ones((2, 5, 6)))
    with pytest.raises(ConfigError, match="recorded for other targets"):
        prepare_predictions(p, "auto")


def test_evaluate_records_the_training_norm(tmp_path: Path) -> None:
    from eegalign.evaluate import TrainTargets, evaluate_to_dir

    p = _preds((6, 8))
    train = np.random.default_rng(3).standard_normal((12, 8)).astype(np.float32) * 5
    evaluate_to_dir(p, tmp_path / "ev", train=TrainTargets(train, np.arange(12) % 6, "test"), n_boot=10, n_perm=10,
                    kway_draws=2)
    back = Predictions.load(tmp_path / "ev" / "predictions.safetensors")
    assert back.train_target_norm == pytest.approx(_norms(train).mean(), rel=1e-6)


def test_generate_records_what_was_done(tmp_path: Path) -> None:
    from _tinysd import save_tiny_sd
    from eegalign.cli import main

    p = _preds((2, 77, 768), loss=INFONCE)
    p.record_train_norm(np.full((3, 77, 768), 0.5, np.float32))
    p.save(tmp_path / "p.safetensors")
    out = tmp_path / "gen"
    assert main(["generate", "--predictions", str(tmp_path / "p.safetensors"), "--sd-model", str(save_tiny_sd(tmp_path)),
                 "--out", str(out), "--steps", "1", "--size", "16", "--device", "cpu", "--skip-true"]) == 0
    index = json.loads((out / "generation.json").read_text())
    assert index["settings"]["match_norm"] == "auto"
    rec = index["match_norm"]
    assert rec["applied"] == "train" and rec["training_loss"] == "InfoNCELoss"
    assert rec["reference_norm"] == pytest.approx([0.5 * np.sqrt(768)] * 77, rel=1e-6)
