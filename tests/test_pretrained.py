"""Model directories: save_pretrained / from_pretrained, `eegalign export`, ONNX Runtime parity, --model inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eegalign.cli import main
from eegalign.models import build_model, encoder_config, from_pretrained, list_models, model_class

pytest.importorskip("onnxruntime")


def _ckpt(path: Path, cache: Path, name: str = "mlp", residual: bool = False, **kw) -> torch.nn.Module:
    """A checkpoint in the layout `eegalign fit` writes (tiny registry encoder)."""
    torch.manual_seed(0)
    enc = build_model(name, n_chans=128, n_times=440, **kw)
    state = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    if residual:
        state["target_offset"] = torch.randn(1024)
    torch.save({"state_dict": state, "eegalign": {"encoder": encoder_config(enc), "route": "image",
                "loss": {"name": "mse"}, "cache": str(cache)}, "epoch": 2, "global_step": 8}, path)
    return enc.eval()


def test_save_and_load_round_trip(small_cache: Path, tmp_path: Path) -> None:
    from eegalign.checkpoints import load_encoder
    from eegalign.pretrained import preprocess_from_cache, read_config, save_pretrained

    _ckpt(tmp_path / "m.ckpt", small_cache, residual=True, hidden=8)
    enc, _ = load_encoder(tmp_path / "m.ckpt")
    out = save_pretrained(enc, tmp_path / "model", preprocess=preprocess_from_cache(small_cache), route="image")
    assert {"config.json", "model.safetensors", "preprocess.json"} <= {p.name for p in out.iterdir()}
    back = from_pretrained(out)
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        assert torch.equal(back(x), enc(x))  # residual offset included
    cfg = read_config(out)
    assert cfg["encoder"] == encoder_config(enc.encoder) and cfg["residual"] is True
    assert cfg["montage"]["n_chans"] == 128 and cfg["montage"]["sfreq"] == 1000.0 and cfg["output_shape"] == [1024]
    pre = json.loads((out / "preprocess.json").read_text())
    stats = json.loads((small_cache / "stats.json").read_text())
    assert pre["normalisation"] == stats["normalisation"] and pre["epoch"]["start_samples"] == 0


def test_export_cli_with_onnx_then_evaluate_model_dir(small_cache: Path, tmp_path: Path) -> None:
    enc = _ckpt(tmp_path / "m.ckpt", small_cache, hidden=8)
    out = tmp_path / "model"
    assert main(["export", "--ckpt", str(tmp_path / "m.ckpt"), "--out", str(out), "--format", "onnx"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["onnx"]["dynamic_batch"] and cfg["onnx"]["max_rel_diff"] <= 1e-4
    from eegalign.onnx_export import ort_session

    x = torch.randn(5, 128, 440)
    with torch.no_grad():
        ref = enc(x).numpy()
    got = ort_session(out / "model.onnx").run(None, {"eeg": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    ev = tmp_path / "eval"
    fast = ["--bootstrap", "50", "--permutations", "19", "--kway-draws", "2"]
    assert main(["evaluate", "--model", str(out), "--cache", str(small_cache), "--split", "test", "--out", str(ev), *fast]) == 0
    assert json.loads((ev / "metrics.json").read_text())["n"] > 0


def test_export_errors_leave_nothing(small_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.save({"state_dict": {}, "eegalign": {"encoder": {"class_path": "x.Y"}}}, tmp_path / "custom.ckpt")
    assert main(["export", "--ckpt", str(tmp_path / "custom.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("eegalign: error:")
    _ckpt(tmp_path / "m.ckpt", tmp_path / "gone", hidden=8)
    assert main(["export", "--ckpt", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "--cache" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    with pytest.raises(Exception, match="not an eegalign model directory"):
        from_pretrained(tmp_path / "bad")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".tmp-*"))


def test_export_refuses_a_cache_other_than_the_training_cache(small_cache: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    """preprocess.json copies the cache's z-score statistics: they must come from the training cache."""
    _ckpt(tmp_path / "m.ckpt", small_cache, hidden=8)
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=True)
    ckpt["eegalign"]["cache_fingerprint"] = "0123456789abcdef"  # trained on another cache
    torch.save(ckpt, tmp_path / "other.ckpt")
    assert main(["export", "--ckpt", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (after the warning that this test checkpoint has no preprocessing record)
    assert last.startswith("eegalign: error:") and "fingerprint 0123456789abcdef" in last and not (tmp_path / "o").exists()
    assert main(["export", "--ckpt", str(tmp_path / "other.ckpt"), "--out", str(tmp_path / "o"),
                 "--allow-preprocessing-mismatch"]) == 0
    assert "eegalign: warning:" in capsys.readouterr().err
    manifest = json.loads((small_cache / "manifest.json").read_text())
    ckpt["eegalign"]["cache_fingerprint"] = manifest["fingerprint"]
    ckpt["eegalign"]["preprocessing"] = {**dict.fromkeys(("format", "norm", "bandpass", "sfreq", "n_chans", "n_times")),
                                         "norm": "channel"}  # trained on another normalisation
    torch.save(ckpt, tmp_path / "norm.ckpt")
    assert main(["export", "--ckpt", str(tmp_path / "norm.ckpt"), "--out", str(tmp_path / "o2")]) == 2
    assert "prepared differently" in capsys.readouterr().err and not (tmp_path / "o2").exists()


# ONNX Runtime parity of every registered encoder: one fast case per encoder (small preset), the
# reference presets marked slow.
def _out_shape(name: str) -> tuple[int, ...]:
    return model_class(name).default_out_shape


@pytest.mark.parametrize("preset", ["small", pytest.param("reference", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list_models())
def test_onnx_parity(name: str, preset: str, tmp_path: Path) -> None:
    from eegalign.onnx_export import export_onnx, parity

    torch.manual_seed(0)
    enc = build_model(name, preset=preset, out_shape=_out_shape(name)).eval()
    record = export_onnx(enc, tmp_path / "m.onnx", tolerance=1e-4)
    assert record["max_rel_diff"] <= 1e-4
    batches = (1, 4) if record["dynamic_batch"] else (1,)
    assert parity(enc, tmp_path / "m.onnx", batches=batches, seed=1) <= 1e-4
    if not record["dynamic_batch"]:
        assert name == "braindecode_atcnet"  # the one network whose graph bakes in the batch size (documented)


def test_convert_seed_cli(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from seed_reference import NervFormerV2

    torch.manual_seed(0)
    seed = NervFormerV2().eval()
    torch.save({"state_dict": {f"model.{k}": v for k, v in seed.state_dict().items()}}, tmp_path / "seed.ckpt")
    assert main(["convert-seed", "--ckpt", str(tmp_path / "seed.ckpt"), "--model", "nervformer", "--out", str(tmp_path / "m")]) == 0
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        torch.testing.assert_close(from_pretrained(tmp_path / "m")(x), seed(x), rtol=1e-4, atol=1e-5)


def test_per_token_heads_export_as_matmuls(tmp_path: Path) -> None:
    """EEGNetTransformer's 77 heads reach ONNX as batched MatMul on the stored weights, never Einsum (ORT's
    CPU Einsum re-lays out the (77, out, in) weight on every call, ~4x slower)."""
    import onnx

    from eegalign.onnx_export import export_onnx, parity

    torch.manual_seed(0)
    enc = build_model("eegnet_transformer", preset="small", n_chans=128, n_times=440).eval()
    export_onnx(enc, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "Einsum" not in ops and ops.count("MatMul") >= 2  # baddbmm: MatMul + Add
    assert parity(enc, tmp_path / "m.onnx", batches=(1, 4), seed=3) <= 1e-4
