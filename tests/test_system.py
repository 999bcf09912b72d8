"""AlignmentModule: training improves retrieval, metrics, predict_step, checkpoints, load_encoder."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from eegalign.errors import WeightsError
from eegalign.losses import CombinedLoss, InfoNCELoss, TokenLoss
from eegalign.system import AlignmentModule, load_encoder, read_checkpoint

C, T = 4, 16


class _Trials(Dataset):
    def __init__(self, eeg: np.ndarray, target: np.ndarray, label: np.ndarray, rows: np.ndarray) -> None:
        self.eeg, self.target, self.label, self.rows = eeg, target, label, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.rows[i])
        return {
            "eeg": torch.from_numpy(self.eeg[r]),
            "target": torch.from_numpy(self.target[r]),
            "label": torch.tensor(self.label[r]),
            "subject": torch.tensor(1),
            "index": torch.tensor(r),
        }


class TinyData(pl.LightningDataModule):
    """8 images x 6 trials; EEG = a fixed linear image of the target + noise (learnable mapping)."""

    def __init__(self, target_shape: tuple[int, ...] = (8,), seed: int = 0, batch_size: int = 8) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        n_img, reps = 8, 6
        self.target_shape = target_shape
        img_targets = rng.standard_normal((n_img, *target_shape)).astype(np.float32)
        mix = rng.standard_normal((C * T, int(np.prod(target_shape)))).astype(np.float32)
        label = np.repeat(np.arange(n_img), reps)
        self.targets = img_targets[label]
        self.eeg = (self.targets.reshape(len(label), -1) @ mix.T).reshape(-1, C, T)
        self.eeg = (self.eeg + 0.3 * rng.standard_normal(self.eeg.shape)).astype(np.float32)
        self.label = label.astype(np.int64)
        rep = np.tile(np.arange(reps), n_img)
        self.rows = {"train": np.flatnonzero(rep < 4), "validation": np.flatnonzero(rep >= 4)}
        self.batch_size = batch_size

    def train_target_mean(self) -> np.ndarray:
        return self.targets[self.rows["train"]].mean(axis=0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = _Trials(self.eeg, self.targets, self.label, self.rows[split])
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", False)

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader


class TinyEncoder(nn.Module):
    def __init__(self, out_shape: tuple[int, ...] = (8,)) -> None:
        super().__init__()
        self.out_shape = out_shape
        self.lin = nn.Linear(C * T, int(np.prod(out_shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)).reshape(x.shape[0], *self.out_shape)  # (B, C, T) -> (B, *out)


def _trainer(tmp_path: Path, epochs: int, **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, deterministic=True, **kw,
    )


def test_training_beats_chance_and_logs_terms(tmp_path: Path) -> None:
    pl.seed_everything(0)
    dm = TinyData()
    module = AlignmentModule(TinyEncoder(), CombinedLoss(0.5, 0.5), lr=3e-2, weight_decay=0.0)
    trainer = _trainer(tmp_path, 30, enable_checkpointing=False)
    trainer.fit(module, datamodule=dm)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("train/loss", "train/mse", "train/cos_dist", "val/loss", "val/mse", "val/cos_dist", "val/cosine", "val/top1"):
        assert key in m, key
    assert m["val/chance_top1"] == pytest.approx(1 / 8)
    assert m["val/top1"] >= 0.75  # chance is 1/8
    assert m["val/cosine"] > 0.8
    assert module.route == "image"
    # cosine schedule: T_max defaults to max_epochs; the LR has decayed to eta_min=0 at the end
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_untrained_model_is_near_chance(tmp_path: Path) -> None:
    """The same validation metric on an untrained model: guards against a metric that always says 'good'."""
    pl.seed_everything(1)
    module = AlignmentModule(TinyEncoder(), CombinedLoss(), lr=0.0)
    trainer = _trainer(tmp_path, 1, enable_checkpointing=False, limit_train_batches=1)
    trainer.fit(module, datamodule=TinyData())
    assert float(trainer.callback_metrics["val/top1"]) <= 0.5


def test_text_route_token_loss_and_predict(tmp_path: Path) -> None:
    pl.seed_everything(0)
    dm = TinyData(target_shape=(3, 4))
    module = AlignmentModule(TinyEncoder((3, 4)), TokenLoss(0.8), lr=3e-2)
    trainer = _trainer(tmp_path, 2, enable_checkpointing=False)
    trainer.fit(module, datamodule=dm)
    assert module.route == "text"
    assert "val/token_mse" in trainer.callback_metrics and "val/top1" in trainer.callback_metrics
    out = trainer.predict(module, datamodule=dm)
    assert set(out[0]) == {"pred", "target", "label", "subject", "index"}
    pred = torch.cat([o["pred"] for o in out])
    assert pred.shape == (16, 3, 4)
    assert torch.cat([o["index"] for o in out]).tolist() == sorted(dm.rows["validation"].tolist())


def test_learnable_temperature_is_optimised(tmp_path: Path) -> None:
    pl.seed_everything(0)
    loss = InfoNCELoss()
    before = loss.logit_scale.item()
    module = AlignmentModule(TinyEncoder(), loss, lr=1e-2)
    trainer = _trainer(tmp_path, 2, enable_checkpointing=False)
    trainer.fit(module, datamodule=TinyData())
    assert loss.logit_scale.item() != before
    assert "train/temperature" in trainer.callback_metrics


def test_checkpoint_is_weights_only_and_warmup(tmp_path: Path) -> None:
    pl.seed_everything(0)
    module = AlignmentModule(TinyEncoder(), CombinedLoss(0.6, 0.4), lr=1e-2, warmup_epochs=1, t_max=4, eta_min=1e-4)
    trainer = _trainer(tmp_path, 2)
    trainer.fit(module, datamodule=TinyData())
    ckpts = list(tmp_path.rglob("*.ckpt"))
    assert ckpts
    ckpt = torch.load(ckpts[0], weights_only=True)
    info = ckpt["eegalign"]
    assert info["loss"] == {"class_path": "eegalign.losses.CombinedLoss", "init_args": {"mse_weight": 0.6, "cosine_weight": 0.4}}
    assert info["encoder"]["class_path"].endswith("TinyEncoder")
    assert info["route"] == "image"
    assert "encoder" not in ckpt["hyper_parameters"] and ckpt["hyper_parameters"]["warmup_epochs"] == 1
    assert read_checkpoint(ckpts[0])["epoch"] == 1
    # a custom (non-registry) encoder cannot be rebuilt from the checkpoint: one clear error
    with pytest.raises(WeightsError, match="not in the eegalign registry"):
        load_encoder(ckpts[0])


class _Evil:
    def __reduce__(self):  # runs a command if ever unpickled with code execution
        return (Path.touch, (Path(_Evil.marker),))


def test_untrusted_or_broken_checkpoints_are_refused(tmp_path: Path) -> None:
    _Evil.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, evil)
    with pytest.raises(WeightsError, match="weights_only"):
        load_encoder(evil)
    assert not (tmp_path / "pwned").exists()
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(WeightsError):
        load_encoder(raw)
    assert not (tmp_path / "pwned").exists()

    good = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, good)
    with pytest.raises(WeightsError, match="not written by eegalign"):
        load_encoder(good)
    truncated = tmp_path / "trunc.ckpt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(WeightsError):
        load_encoder(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save([1, 2, 3], foreign)
    with pytest.raises(WeightsError, match="not a Lightning checkpoint"):
        load_encoder(foreign)
    with pytest.raises(WeightsError, match="not found"):
        load_encoder(tmp_path / "missing.ckpt")


def test_fused_adamw_is_the_same_update() -> None:
    """The fused AdamW kernel (default) takes the same steps as the plain one, up to float rounding."""
    import torch

    torch.manual_seed(0)
    fused = AlignmentModule(TinyEncoder(), CombinedLoss(), lr=1e-2)
    plain = AlignmentModule(TinyEncoder(), CombinedLoss(), lr=1e-2, fused_adamw=False)
    plain.load_state_dict(fused.state_dict())
    opts = []
    for m in (fused, plain):
        m.hparams.t_max = 3  # (no trainer attached: a fixed period)
        opts.append(m.configure_optimizers()["optimizer"])
    assert opts[0].defaults["fused"] is True and not opts[1].defaults["fused"]
    x = torch.randn(8, 4, 16)
    for _ in range(3):
        for m, opt in zip((fused, plain), opts):
            opt.zero_grad()
            m.encoder(x).pow(2).mean().backward()
            opt.step()
    for (k, a), b in zip(fused.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_load_encoder_does_not_import_lightning(tmp_path):
    """eegalign.checkpoints rebuilds an encoder from a checkpoint without the Lightning import (evaluate --ckpt)."""
    import subprocess
    import sys

    script = f"""
import sys, torch
from eegalign.models import build_model, encoder_config
model = build_model("mlp", preset="small")
state = {{"encoder." + k: v for k, v in model.state_dict().items()}}
torch.save({{"state_dict": state, "eegalign": {{"encoder": encoder_config(model), "route": "image"}}}}, r"{tmp_path / 'x.ckpt'}")
from eegalign.checkpoints import load_encoder
encoder, info = load_encoder(r"{tmp_path / 'x.ckpt'}")
x = torch.randn(2, model.n_chans, model.n_times)
assert torch.equal(encoder(x), model.eval()(x)) and info["route"] == "image"
print(sorted(m for m in sys.modules if m.split(".")[0] == "lightning"))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
