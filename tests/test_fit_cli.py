"""`eegalign fit` (LightningCLI): help, config errors, a tiny run's directory and checkpoints, configs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from eegalign.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "eegalign" / "configs"

TINY = [
    "--model.encoder", "eegalign.models.MLPEncoder",
    "--model.encoder.init_args.preset", "small",
    "--model.loss", "eegalign.losses.CombinedLoss",
    "--trainer.max_epochs", "1",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--data.batch_size", "8",
]


def test_fit_help_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--config", "--model.encoder", "--model.loss", "--model.lr", "--model.t_max", "--model.eta_min",
                   "--model.warmup_epochs", "--data.cache", "--data.route", "--data.batch_size",
                   "--trainer.max_epochs", "--trainer.devices", "--trainer.strategy", "--trainer.precision",
                   "--trainer.accumulate_grad_batches", "--trainer.gradient_clip_val", "--checkpoint.save_top_k",
                   "--ckpt_path", "--seed_everything"):
        assert option in out, option
    flat = " ".join(out.split())
    assert "--model.encoder.help eegalign.models.NervFormer" in flat and "--model.encoder.init_args.NAME" in flat


def _fit_help_blocks(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """`eegalign fit --help`'s epilog: encoder class name -> its block, whitespace collapsed."""
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    epilog = out[out.index("\nEncoder hyperparameters"):]
    blocks = re.split(r"\n(?=eegalign\.models\.\w+ \()", epilog)[1:]
    return {b.split()[0].split(".")[-1]: " ".join(b.split()) for b in blocks}


def _doc_line(cls: type, name: str) -> str:
    """The docstring's ``Args:`` entry for ``name``, whitespace collapsed (read independently of eegalign)."""
    doc = inspect.getdoc(cls) or ""
    entry = re.search(rf"\n    {name}: (.*?)(?=\n    \w+: |\n\S|\Z)", doc, re.S)
    assert entry, f"{cls.__name__}.{name} has no docstring entry"
    return " ".join(entry.group(1).split())


def test_fit_help_lists_every_encoders_hyperparameters(capsys: pytest.CaptureFixture[str]) -> None:
    from eegalign.models import list_models, model_class

    blocks = _fit_help_blocks(capsys)
    assert sorted(blocks) == sorted(model_class(n).__name__ for n in list_models())
    for name in list_models():
        cls = model_class(name)
        block, default = blocks[cls.__name__], cls.presets[cls.default_preset]
        params = inspect.signature(cls.__init__).parameters
        hyper = [n for n in params if n not in ("self", "n_chans", "n_times", "out_shape", "preset")]
        assert hyper and sorted(hyper) == sorted(default), name
        assert f"--model.encoder.init_args.preset: str = {cls.default_preset}" in block
        for n in hyper:
            kind = str(params[n].annotation).replace(" | None", "")
            assert f"--model.encoder.init_args.{n}: {kind} = {default[n]!r}" in block, (name, n)
            assert _doc_line(cls, n) in block, (name, n)


def test_models_name_agrees_with_fit_help(capsys: pytest.CaptureFixture[str]) -> None:
    from eegalign.models import list_models, model_class

    blocks = _fit_help_blocks(capsys)
    for name in list_models():
        cls = model_class(name)
        assert main(["models", name, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["default_preset"] == cls.default_preset
        assert sorted(h["name"] for h in shown["hyperparameters"]) == sorted(cls.presets[cls.default_preset])
        for h in shown["hyperparameters"]:
            line = f"{h['flag']}: {h['type']} = {h['default']!r}"
            assert line in blocks[cls.__name__] and h["doc"] in blocks[cls.__name__], (name, h["name"])
            assert h["presets"] == {p: cls.presets[p][h["name"]] for p in h["presets"]}
        assert main(["models", name]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for h in shown["hyperparameters"]:
            assert f"{h['name']} {h['type']} {h['default']!r}" in text and h["doc"] in text, (name, h["name"])


def test_encoder_help_lists_typed_hyperparameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model.encoder.help", "eegalign.models.NervFormer"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("d_model", "n_heads", "n_layers", "kernel_size", "dropout"):
        assert f"--model.encoder.{name}" in out, name
    assert "attention heads of the temporal transformer" in out and "type: int | null" in out


def test_unknown_key_exits_nonzero_without_traceback(small_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", "--data.cache", str(small_cache), *TINY, "--model.no_such_option", "3"])
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]  # one ConfigError line, not jsonargparse's usage text
    assert last.startswith("eegalign: error: invalid configuration") and "no_such_option" in last
    assert "Traceback" not in err and "usage:" not in err


def test_missing_cache_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", "--data.cache", str(tmp_path / "nope"), *TINY, "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    last = err.strip().splitlines()[-1]  # (earlier lines may be pytest-capture logging noise)
    assert last.startswith("eegalign: error:") and "nope" in last


def test_tiny_fit_writes_run_dir_and_loadable_checkpoints(
    small_cache: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from eegalign.system import load_encoder

    run = tmp_path / "run"
    assert main(["fit", "--data.cache", str(small_cache), *TINY, "--trainer.default_root_dir", str(run)]) == 0
    printed = "".join(capfd.readouterr())
    assert "Tip:" not in printed and "LeafSpec" not in printed  # Lightning's product tip and its own deprecation
    # one directory holds the resolved config, both loggers and the checkpoints
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("epoch*.ckpt"))) == 1  # best-k on val/loss, k = 1
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"]["cache"] == str(small_cache)
    assert cfg["model"]["encoder"]["init_args"]["preset"] == "small"
    assert "val/top1" in (run / "metrics.csv").read_text().splitlines()[0]

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # nothing needs unpickling
    assert ckpt["eegalign"]["route"] == "image"
    encoder, info = load_encoder(run / "checkpoints" / "last.ckpt")
    assert info["encoder"]["name"] == "mlp" and info["encoder"]["preset"] == "small"
    assert info["encoder"]["n_chans"] == 128 and info["encoder"]["out_shape"] == [1024]  # linked from the data
    assert info["epoch"] == 0 and info["cache"] == str(small_cache)
    assert info["preprocessing"]["norm"] == "global" and info["preprocessing"]["n_times"] == 440  # issue #13
    assert info["loss"]["class_path"] == "eegalign.losses.CombinedLoss"
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        assert encoder(x).shape == (2, 1024)

    # validate / predict reuse the same parser and the checkpoint's weights
    assert main(["validate", "--data.cache", str(small_cache), *TINY, "--trainer.default_root_dir", str(tmp_path / "v"),
                 "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0


@pytest.mark.parametrize("name", ["eegformer_reference", "eegformer_contrastive", "nervformer_reference",
                                  "eegnet_transformer_text", "demo", "demo_text", "things_nervformer", "things_nice"])
def test_shipped_configs_parse(name: str, small_cache: Path) -> None:
    """Every shipped config parses against the current classes (no training: run=False)."""

    from eegalign.commands.fit import _cli_class
    from eegalign.data.datamodule import EEGDataModule
    from eegalign.system import AlignmentModule

    cli = _cli_class()(
        AlignmentModule, EEGDataModule, run=False,
        args=["--config", str(CONFIGS / f"{name}.yaml"), "--data.cache", str(small_cache)],
        save_config_kwargs={"overwrite": True},
    )
    assert cli.model.route == cli.datamodule.route
    enc = cli.model.encoder
    assert (enc.n_chans, enc.n_times, tuple(enc.out_shape)) == (128, 440, tuple(cli.datamodule.target_shape))


def test_encoder_hyperparameter_set_on_the_command_line(small_cache: Path) -> None:
    from eegalign.commands.fit import _cli_class
    from eegalign.data.datamodule import EEGDataModule
    from eegalign.system import AlignmentModule

    cli = _cli_class()(
        AlignmentModule, EEGDataModule, run=False,
        args=["--config", str(CONFIGS / "nervformer_reference.yaml"), "--data.cache", str(small_cache),
              "--model.encoder.init_args.preset", "small", "--model.encoder.init_args.n_heads", "8",
              "--model.encoder.init_args.d_model", "64"],
        save_config_kwargs={"overwrite": True},
    )
    enc = cli.model.encoder
    assert enc.hyper["n_heads"] == 8 and enc.hyper["d_model"] == 64 and enc.embed.out_features == 64


def test_reference_configs_match_the_seed() -> None:
    cfg = {p.stem: yaml.safe_load(p.read_text()) for p in CONFIGS.glob("*.yaml")}
    ef = cfg["eegformer_reference"]
    assert ef["model"]["loss"]["init_args"] == {"mse_weight": 0.5, "cosine_weight": 0.5}
    assert (ef["model"]["lr"], ef["model"]["weight_decay"], ef["model"]["t_max"]) == (1e-3, 1e-4, 100)
    assert ef["trainer"]["max_epochs"] == 310 and ef["data"]["batch_size"] == 32
    assert cfg["eegformer_contrastive"]["model"]["loss"]["class_path"] == "eegalign.losses.InfoNCELoss"
    nf = cfg["nervformer_reference"]
    assert nf["model"]["loss"]["init_args"] == {"mse_weight": 0.6, "cosine_weight": 0.4}
    assert (nf["model"]["lr"], nf["model"]["t_max"], nf["model"]["eta_min"]) == (3e-4, 500, 1e-4)
    assert nf["trainer"]["accumulate_grad_batches"] == 2
    assert nf["trainer"]["callbacks"][0]["init_args"]["patience"] == 15
    tx = cfg["eegnet_transformer_text"]
    assert tx["data"]["route"] == "text" and tx["model"]["loss"]["init_args"] == {"mse_weight": 0.8}
    assert (tx["model"]["lr"], tx["model"]["t_max"], tx["model"]["eta_min"]) == (3e-4, 500, 2e-5)
    assert tx["trainer"]["precision"] == "16-mixed" and tx["trainer"]["max_epochs"] == 250
    assert tx["trainer"]["callbacks"][0]["init_args"]["patience"] == 10


@pytest.mark.slow
def test_demo_config_beats_chance(tmp_path: Path) -> None:
    """configs/demo.yaml on the default synthetic set: validation retrieval well above chance."""
    import csv

    from eegalign.data.cache import prepare_cache
    from eegalign.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "synth", progress=False)
    cache = prepare_cache(tmp_path / "synth", tmp_path / "cache")
    run = tmp_path / "run"
    assert main(["fit", "--config", str(CONFIGS / "demo.yaml"), "--data.cache", str(cache),
                 "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false"]) == 0
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/top1")]
    last = rows[-1]
    assert float(last["val/top1"]) > 4 * float(last["val/chance_top1"])


def test_predict_residual_offset_reaches_checkpoint_and_evaluation(small_cache: Path, tmp_path: Path) -> None:
    """--model.predict_residual: the encoder learns deviations from the train-mean target; the mean
    is stored in the checkpoint and load_encoder applies it, so evaluation sees the same outputs."""
    import numpy as np
    import torch

    from eegalign.data.datamodule import EEGDataModule
    from eegalign.system import ResidualEncoder, load_encoder

    run = tmp_path / "run"
    argv = ["fit", "--data.cache", str(small_cache), *TINY, "--data.route", "text",
            "--model.predict_residual", "true", "--trainer.default_root_dir", str(run)]
    assert main(argv) == 0
    encoder, info = load_encoder(run / "checkpoints" / "last.ckpt")
    assert isinstance(encoder, ResidualEncoder) and encoder.out_shape == (77, 768)
    mean = EEGDataModule(str(small_cache), route="text").train_target_mean()
    np.testing.assert_allclose(encoder.offset.numpy(), mean, rtol=0, atol=1e-6)
    x = torch.randn(2, encoder.n_chans, encoder.n_times)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), encoder.encoder(x) + encoder.offset)
    out = tmp_path / "eval"
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--cache", str(small_cache),
                 "--split", "train", "--out", str(out), "--bootstrap", "50", "--permutations", "50"]) == 0
