"""Baselines: ridge maths on arrays, the `eegalign baseline ridge` command, and `eegalign models`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegalign.cli import main
from eegalign.errors import ConfigError
from eegalign.models.baselines import fit_ridge, ridge_features
from eegalign.predictions import Predictions


def _linear_problem(n_train=200, n_val=80, p=30, d=6, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(p, d))
    x = rng.normal(size=(n_train + n_val, p)) * rng.uniform(0.5, 3, size=p) + rng.normal(size=p)
    y = x @ w + 2.0 + noise * rng.normal(size=(n_train + n_val, d))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_ridge_features_are_bin_means():
    eeg = np.arange(2 * 3 * 12, dtype=np.float32).reshape(2, 3, 12)
    f = ridge_features(eeg, bins=4, chunk=1)
    assert f.shape == (2, 12)
    assert np.allclose(f.reshape(2, 3, 4), eeg.reshape(2, 3, 4, 3).mean(-1))


def test_ridge_recovers_a_linear_map_and_matches_the_direct_solution():
    xt, yt, xv, yv = _linear_problem()
    model = fit_ridge(xt, yt, xv, yv, alphas=[1e-3, 1e-1, 10.0, 1e3, 1e5])
    assert [c["alpha"] for c in model.curve] == [1e-3, 1e-1, 10.0, 1e3, 1e5]
    assert model.alpha <= 10.0  # little noise: weak regularisation wins
    pred = model.predict(xv)
    assert np.mean((pred - yv) ** 2) < 0.05
    # the SVD solution equals (Z'Z + aI)^-1 Z'(Y - mean) on standardised features
    z = (xt - xt.mean(0)) / xt.std(0)
    direct = np.linalg.solve(z.T @ z + model.alpha * np.eye(z.shape[1]), z.T @ (yt - yt.mean(0)))
    assert np.allclose(model.coef, direct, atol=1e-8)


def test_ridge_prefers_strong_regularisation_for_noise_and_keeps_target_shape():
    rng = np.random.default_rng(1)
    xt, xv = rng.normal(size=(60, 40)), rng.normal(size=(30, 40))
    yt, yv = rng.normal(size=(60, 3, 4)), rng.normal(size=(30, 3, 4))  # no relation at all
    model = fit_ridge(xt, yt, xv, yv, alphas=[1e-2, 1.0, 1e2, 1e4, 1e6])
    assert model.alpha >= 1e4
    assert model.predict(xv).shape == (30, 3, 4)
    with pytest.raises(ConfigError):
        fit_ridge(xt, yt, xv, yv, alphas=[])


@pytest.mark.parametrize("route", ["image", "text"])
def test_baseline_ridge_cli(small_cache, tmp_path, route):
    out = tmp_path / f"ridge_{route}"
    rc = main(["baseline", "ridge", "--cache", str(small_cache), "--route", route, "--split", "test",
               "--out", str(out), "--alphas", "1", "100", "10000"])
    assert rc == 0
    p = Predictions.load(out / "predictions.safetensors")
    info = json.loads((out / "ridge.json").read_text())
    assert p.route == route and p.split == "test" and p.model == f"ridge(alpha={info['alpha']:g})"
    assert p.cache == str(small_cache) and p.classes is not None
    assert p.pred.shape == p.true.shape and p.pred.shape[1:] == ((1024,) if route == "image" else (77, 768))
    assert [c["alpha"] for c in info["validation_curve"]] == [1.0, 100.0, 10000.0]
    assert main(["baseline", "ridge", "--cache", str(small_cache), "--out", str(out)]) == 2  # exists: one-line error


def test_models_command_lists_reference_counts(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    counts = {(r["model"], r["preset"], r["route"]): r["params"] for r in rows}
    assert counts[("eegformer", "reference", "image")] == 91_771_961
    assert counts[("nervformer", "reference", "image")] == 20_765_424
    assert counts[("eegnet_transformer", "reference", "text")] == 63_257_104
    assert any(r["model"] == "ridge" for r in rows)


def test_models_command_shows_one_encoders_options_and_fit_flags(capsys):
    from eegalign.models import model_class

    assert main(["models", "nervformer"]) == 0
    out = capsys.readouterr().out
    for option, value in model_class("nervformer").presets["small"].items():
        assert option in out and repr(value) in out
    assert "--model.encoder eegalign.models.NervFormer" in out and "--model.encoder.init_args." in out
    assert main(["models", "nervformer", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["presets"] == json.loads(json.dumps(model_class("nervformer").presets))
    assert main(["models", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eegalign: error: unknown model 'no_such_model'") and "\n" not in err
