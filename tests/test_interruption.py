"""Interruption, as it happens to users: a process killed with SIGKILL (no cleanup runs).

- `fit` killed during training and resumed with `--ckpt_path last` loses at most the work since
  the last checkpoint and ends with exactly the weights of an uninterrupted run.
- `data prepare` killed mid-way leaves nothing that looks like a cache, and a re-run completes and
  removes the killed process's temporary directory.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from eegalign.data.cache import Cache, prepare_cache
from eegalign.data.synthetic import write_synthetic_dataset
from eegalign.errors import DataError

FIT = [
    "--model.encoder", "eegalign.models.MLPEncoder", "--model.encoder.init_args.preset", "small",
    "--model.loss", "eegalign.losses.CombinedLoss", "--model.t_max", "3", "--trainer.max_epochs", "3", "--trainer.accelerator", "cpu",
    "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--data.batch_size", "4", "--seed_everything", "3",
]


@pytest.fixture(scope="module")
def medium_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt")
    write_synthetic_dataset(root / "ds", subjects=2, classes=8, images_per_class=5, seed=1, progress=False)
    return prepare_cache(root / "ds", root / "cache", progress=False)


def _fit_cmd(cache: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "eegalign", "fit", "--data.cache", str(cache), *FIT,
            "--trainer.default_root_dir", str(root), *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"process ended before {path} appeared: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def test_fit_killed_and_resumed_ends_at_the_same_weights(medium_cache: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    subprocess.run(_fit_cmd(medium_cache, straight), check=True, capture_output=True, timeout=600)
    want = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_fit_cmd(medium_cache, run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(run / "checkpoints" / "last.ckpt", proc)  # the end of epoch 0: epoch 1 is running now
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    partial = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert partial["epoch"] < want["epoch"], "the run finished before it was killed: the test proved nothing"

    subprocess.run(_fit_cmd(medium_cache, run, "--ckpt_path", "last"), check=True, capture_output=True, timeout=600)
    got = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (got["epoch"], got["global_step"]) == (want["epoch"], want["global_step"])
    for k, v in want["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][k], v, rtol=0, atol=0, msg=f"{k} differs after kill + resume")


def test_prepare_killed_leaves_no_cache_and_rerun_completes(medium_cache: Path, tmp_path: Path) -> None:
    src = medium_cache.parent / "ds"
    out = tmp_path / "cache"
    cmd = [sys.executable, "-m", "eegalign", "data", "prepare", "--source", str(src), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not list(tmp_path.glob(".tmp-cache-*")):  # the temporary cache is being written
        assert proc.poll() is None, "prepare ended before it could be killed"
        assert time.monotonic() - t0 < 120
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not out.exists()
    with pytest.raises(DataError):
        Cache.open(out)
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert Cache.open(out).eeg.shape[0] == Cache.open(medium_cache).eeg.shape[0]
    # the killed process's temporary (same host, dead PID) was removed by the re-run, not left to fill the disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
