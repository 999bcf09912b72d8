"""An interrupted run resumed with `--ckpt_path last` ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import torch

from eegalign.cli import main

ARGS = [
    # dropout 0.3 and a shuffling sampler: the RNG state and the epoch must both be restored
    "--model.encoder", "eegalign.models.MLPEncoder",
    "--model.encoder.init_args.preset", "small",
    "--model.loss", "eegalign.losses.InfoNCELoss",  # a learnable temperature is resumed too
    "--model.warmup_epochs", "1",
    "--model.t_max", "2",  # fixed: an interrupted run keeps its schedule (t_max null = max_epochs)
    "--trainer.accelerator", "cpu",
    "--trainer.deterministic", "true",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--trainer.accumulate_grad_batches", "2",
    "--data.batch_size", "8",
    "--seed_everything", "7",
]


def _fit(cache: Path, root: Path, epochs: int, *extra: str) -> dict[str, torch.Tensor]:
    argv = ["fit", "--data.cache", str(cache), *ARGS, "--trainer.max_epochs", str(epochs),
            "--trainer.default_root_dir", str(root), *extra]
    assert main(argv) == 0
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)


def test_resume_reaches_the_same_weights(small_cache: Path, tmp_path: Path) -> None:
    straight = _fit(small_cache, tmp_path / "straight", 2)
    first = _fit(small_cache, tmp_path / "resumed", 1)
    assert first["epoch"] == 0
    resumed = _fit(small_cache, tmp_path / "resumed", 2, "--ckpt_path", "last")
    assert resumed["epoch"] == straight["epoch"] == 1
    assert resumed["global_step"] == straight["global_step"]
    a, b = straight["state_dict"], resumed["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs after resume")
    # optimiser moments and the LR schedule were restored, not restarted
    sa, sb = straight["lr_schedulers"][0], resumed["lr_schedulers"][0]
    assert sa["last_epoch"] == sb["last_epoch"] and sa["_last_lr"] == sb["_last_lr"]
    # and the check can fail: the weights after 1 epoch are not those after 2
    assert not torch.equal(first["state_dict"]["encoder.net.0.weight"], a["encoder.net.0.weight"])
    # the run's metrics.csv keeps the interrupted part's rows
    epochs = {line.split(",")[0] for line in (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()[1:]}
    assert {"0", "1"} <= epochs
