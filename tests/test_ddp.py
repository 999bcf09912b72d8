"""Two-process DDP on CPU (gloo) through the real command: metrics over the gathered validation set."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from eegalign.data.cache import Cache


def test_ddp_two_processes_on_cpu(small_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "eegalign", "fit",
        "--data.cache", str(small_cache),
        "--model.encoder", "eegalign.models.MLPEncoder",
        "--model.encoder.init_args.preset", "small",
        "--model.loss", "eegalign.losses.CombinedLoss",
        "--data.batch_size", "4",
        "--trainer.max_epochs", "1",
        "--trainer.accelerator", "cpu",
        "--trainer.devices", "2",
        "--trainer.strategy", "ddp",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.default_root_dir", str(run),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size: 2" in proc.stderr + proc.stdout or "MEMBER: 2/2" in proc.stderr + proc.stdout
    assert (run / "checkpoints" / "last.ckpt").is_file()
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/n_trials")]
    n_val = len(Cache.open(small_cache).split_indices("validation"))
    # each rank validated half of the trials; the logged metrics cover all of them, each once
    assert rows and float(rows[-1]["val/n_trials"]) == n_val
    assert 0.0 <= float(rows[-1]["val/top1"]) <= 1.0
