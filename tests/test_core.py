"""The shared core: atomic writes, the predictions file, the CLI's error contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eegalign.cli import COMMANDS, main
from eegalign.data.classes import cvpr40_classes, wnid_to_imagenet_index
from eegalign.errors import ConfigError, DataError
from eegalign.io import atomic_dir, atomic_file, load_tensors, save_tensors, write_json
from eegalign.predictions import Predictions


def _preds(n: int = 6, route: str = "image") -> Predictions:
    rng = np.random.default_rng(0)
    shape = (n, 8) if route == "image" else (n, 5, 4)
    img = np.arange(n) % 3  # trials of one image share its target and label
    return Predictions(
        pred=rng.normal(size=shape).astype(np.float32),
        true=rng.normal(size=(3, *shape[1:])).astype(np.float32)[img],
        label=(img % 2).astype(np.int64),
        subject=np.ones(n, dtype=np.int64),
        image_ids=[f"img{i % 3}" for i in range(n)],
        route=route,
        model="test",
        classes=["n02106662", "n02124075"],
        cache="/some/cache",
    )


def test_atomic_dir_success_and_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("killed mid-way")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too
    with atomic_dir(final) as tmp:
        (tmp / "done.txt").write_text("x")
    assert (final / "done.txt").read_text() == "x"
    with pytest.raises(ConfigError, match="already exists"):
        with atomic_dir(final):
            pass
    assert sorted(p.name for p in final.iterdir()) == ["done.txt"]  # the refused write left it alone
    with atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("y")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]


def test_atomic_outputs_get_usual_permissions(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            write_json(tmp / "f.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "d" / "f.json").stat().st_mode & 0o777 == 0o644


def test_atomic_file_keeps_old_content_on_failure(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    write_json(f, {"a": 1})
    with pytest.raises(ValueError):
        with atomic_file(f) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert json.loads(f.read_text()) == {"a": 1}


def test_tensors_roundtrip_with_json_metadata(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_tensors(tmp_path / "t.safetensors", {"x": arr}, {"ids": ["a", "b", "c"], "model": "m"})
    out, meta = load_tensors(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(out["x"], arr)
    assert json.loads(meta["ids"]) == ["a", "b", "c"] and meta["model"] == "m"


def test_load_tensors_rejects_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="not a readable safetensors"):
        load_tensors(bad)
    with pytest.raises(DataError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("route", ["image", "text"])
def test_predictions_roundtrip(tmp_path: Path, route: str) -> None:
    p = _preds(route=route)
    p.save(tmp_path / "p.safetensors")
    q = Predictions.load(tmp_path / "p.safetensors")
    np.testing.assert_array_equal(p.pred, q.pred)
    np.testing.assert_array_equal(p.label, q.label)
    assert (q.image_ids, q.route, q.classes, q.cache, q.model) == (p.image_ids, route, p.classes, p.cache, "test")


def test_predictions_validation() -> None:
    p = _preds()
    with pytest.raises(DataError, match="differ in shape"):
        Predictions(p.pred, p.true[:, :4], p.label, p.subject, p.image_ids)
    with pytest.raises(DataError, match="image_ids"):
        Predictions(p.pred, p.true, p.label, p.subject, p.image_ids[:-1])
    with pytest.raises(DataError, match="3-D"):
        Predictions(p.pred, p.true, p.label, p.subject, p.image_ids, route="text")
    nan = p.pred.copy()
    nan[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        Predictions(nan, p.true, p.label, p.subject, p.image_ids)


def test_class_table_is_packaged() -> None:
    classes = cvpr40_classes()
    assert len(classes) == 40 and len({c.wnid for c in classes}) == 40
    assert wnid_to_imagenet_index()["n02510455"] == 388  # giant panda


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_cli_help_does_not_import_torch() -> None:
    code = "import sys; from eegalign.cli import main\ntry:\n main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_cli_unknown_command_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted({m for m, _ in COMMANDS.values()}))
def test_every_command_module_exists_and_has_help(name: str) -> None:
    import importlib

    module = importlib.import_module(name)
    assert hasattr(module, "run_lightning") or (hasattr(module, "add_arguments") and hasattr(module, "run"))


def test_resolve_pretrained(tmp_path: Path) -> None:
    from eegalign.errors import WeightsError
    from eegalign.hub import resolve_pretrained

    assert resolve_pretrained("h94/IP-Adapter/models/image_encoder", "x", "--x") == "h94/IP-Adapter/models/image_encoder"
    assert resolve_pretrained(str(tmp_path), "x", "--x") == str(tmp_path.resolve())
    with pytest.raises(WeightsError, match="directory not found: ./nope; .* --image-model PATH"):
        resolve_pretrained("./nope", "CLIP image encoder", "--image-model")
    (tmp_path / "f.bin").write_bytes(b"")
    with pytest.raises(WeightsError, match="is a file"):
        resolve_pretrained(str(tmp_path / "f.bin"), "x", "--x")


def test_device_and_dtype_resolution() -> None:
    import torch

    from eegalign.devices import resolve_device, resolve_dtype
    from eegalign.errors import ConfigError, first_line

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown --device"):
        resolve_device("gpu0")
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) is torch.float16
    with pytest.raises(ConfigError, match="unknown --dtype"):
        resolve_dtype("half-ish", torch.device("cpu"))
    assert first_line(ValueError("one\ntwo")) == "one" and first_line(KeyError()) == "KeyError"
