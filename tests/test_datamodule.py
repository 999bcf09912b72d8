"""EEGDataModule: batch dicts, splits, subjects, leave-one-subject-out, memmap mode, DDP sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eegalign.data.cache import Cache
from eegalign.data.datamodule import BatchIndexSampler, EEGDataModule
from eegalign.errors import ConfigError, DataError


def _all(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


@pytest.mark.parametrize("route,shape", [("image", (1024,)), ("text", (77, 768))])
def test_batches_and_shapes(small_cache: Path, route: str, shape: tuple) -> None:
    dm = EEGDataModule(str(small_cache), route=route, batch_size=5)
    assert (dm.n_chans, dm.n_times, dm.target_shape) == (128, 440, shape)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["eeg"].shape == (5, 128, 440) and batch["eeg"].dtype == torch.float32
    assert batch["target"].shape == (5, *shape) and batch["target"].dtype == torch.float32
    for k in ("label", "subject", "index"):
        assert batch[k].shape == (5,) and batch[k].dtype == torch.int64
    c = Cache.open(small_cache)
    idx = batch["index"].numpy()
    np.testing.assert_array_equal(batch["eeg"].numpy(), c.eeg[idx])
    np.testing.assert_array_equal(batch["target"].numpy(), c.trial_targets(route, idx))
    np.testing.assert_array_equal(batch["label"].numpy(), c.meta["label"].to_numpy()[idx])
    np.testing.assert_array_equal(batch["subject"].numpy(), c.meta["subject"].to_numpy()[idx])


def test_splits_cover_once_and_memmap_matches(small_cache: Path) -> None:
    c = Cache.open(small_cache)
    dm = EEGDataModule(str(small_cache), batch_size=7)
    mm = EEGDataModule(str(small_cache), batch_size=7, in_memory=False)
    for split, loader in (("train", "train_dataloader"), ("validation", "val_dataloader"), ("test", "test_dataloader")):
        got = _all(getattr(dm, loader)())
        assert sorted(got["index"].tolist()) == c.split_indices(split).tolist()  # every trial exactly once
        assert set(c.meta["split"].to_numpy()[got["index"].numpy()]) == {split}
        if split != "train":  # deterministic order: compare in-memory and memmap batches
            other = _all(getattr(mm, loader)())
            order = torch.argsort(other["index"])
            assert torch.equal(got["index"], other["index"][order])
            assert torch.equal(got["eeg"], other["eeg"][order])
            assert torch.equal(got["target"], other["target"][order])


def test_subject_selection_and_loso(small_cache: Path) -> None:
    c = Cache.open(small_cache)
    dm = EEGDataModule(str(small_cache), subjects=[2])
    for split in ("train", "validation", "test"):
        assert set(c.meta["subject"].to_numpy()[dm.indices(split)]) == {2}
    loso = EEGDataModule(str(small_cache), leave_out_subject=1)
    tr, va, te = (loso.indices(s) for s in ("train", "validation", "test"))
    subj = c.meta["subject"].to_numpy()
    assert set(subj[tr]) == {2} and set(subj[va]) == {2} and set(subj[te]) == {1}
    assert not set(tr) & set(te) and not set(va) & set(te)
    img = c.meta["image_id"].to_numpy()
    assert not set(img[tr]) & set(img[te])  # source splits are by image: no test image seen in training
    np.testing.assert_array_equal(te, c.split_indices("test", [1]))
    with pytest.raises(ConfigError, match="not in the cache"):
        EEGDataModule(str(small_cache), leave_out_subject=9)
    with pytest.raises(ConfigError, match="not in the cache"):
        EEGDataModule(str(small_cache), subjects=[7])
    with pytest.raises(ConfigError, match="no subject to train on"):
        EEGDataModule(str(small_cache), subjects=[1], leave_out_subject=1)


def test_train_target_mean(small_cache: Path) -> None:
    dm = EEGDataModule(str(small_cache), route="text")
    c = Cache.open(small_cache)
    expect = c.trial_targets("text", dm.indices("train")).mean(axis=0)
    np.testing.assert_allclose(dm.train_target_mean(), expect, rtol=1e-5, atol=1e-5)


def test_missing_targets(cache_copy: Path) -> None:
    (cache_copy / "targets" / "image.safetensors").unlink()
    with pytest.raises(DataError, match="run `eegalign embed"):
        EEGDataModule(str(cache_copy), route="image")
    with pytest.raises(DataError, match="not a complete eegalign cache|cache not found"):
        EEGDataModule(str(cache_copy / "nope"))


def test_sampler_shuffles_per_epoch_deterministically() -> None:
    a, b = BatchIndexSampler(10, 4, shuffle=True, seed=3), BatchIndexSampler(10, 4, shuffle=True, seed=3)
    e0, e1 = list(a), list(a)
    assert e0 == list(b) and e1 == list(b)  # same seed -> same sequence on every rank
    assert e0 != e1 and sorted(sum(e0, [])) == list(range(10))
    assert [len(x) for x in e0] == [4, 4, 2] and len(a) == 3
    assert list(BatchIndexSampler(5, 2, shuffle=False)) == [[0, 1], [2, 3], [4]]


def test_ddp_wrapper_gives_disjoint_shards(small_cache: Path) -> None:
    """What Lightning injects under DDP: each rank gets a disjoint share of the batches."""
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.utilities.data import _update_dataloader

    dm = EEGDataModule(str(small_cache), batch_size=5)
    assert len(dm.train_dataloader()) % 2 == 0  # else DistributedSampler pads by repeating a batch
    seen = []
    for rank in range(2):
        loader = dm.train_dataloader()
        sampler = _get_distributed_sampler(loader, shuffle=False, overfit_batches=0, num_replicas=2, rank=rank)
        seen.append(_all(_update_dataloader(loader, sampler))["index"].tolist())
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == dm.indices("train").tolist()


def test_lightning_fit_runs(small_cache: Path, tmp_path: Path) -> None:
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(128 * 440, 1024)
            self.seen: list[int] = []

        def training_step(self, batch, i):
            self.seen += batch["index"].tolist()
            return torch.nn.functional.mse_loss(self.lin(batch["eeg"].flatten(1)), batch["target"])

        def validation_step(self, batch, i):
            self.log("val", torch.nn.functional.mse_loss(self.lin(batch["eeg"].flatten(1)), batch["target"]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    dm = EEGDataModule(str(small_cache), batch_size=8)
    model = Tiny()
    trainer = pl.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    assert sorted(model.seen) == dm.indices("train").tolist()
