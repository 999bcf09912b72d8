"""Hostile or careless input, part 2 (issue #13, inputs): every case exits non-zero with ONE
`eegalign: error:` line, no traceback, no ANSI codes, and no output. One test per class of failure:
inconsistent cache files, preprocessing mismatch, predictions metadata, ridge options, argparse
and Lightning paths, unsafe pickles, unwritable outputs and generate's up-front checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import lightning.pytorch  # noqa: F401 - imported at collection: its log handler binds to the session stderr, not a test's

from eegalign.cli import main


def _one_error_line(rc: int, err: str) -> str:
    assert rc != 0, err
    assert "Traceback" not in err, err
    assert "\x1b[" not in err, err  # no ANSI colour codes
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("eegalign: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _cli(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the CLI as a user does: a fresh process."""
    return subprocess.run([sys.executable, "-m", "eegalign", *argv], capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- inconsistent cache files


def _drop_rows(c: Path) -> None:
    pd.read_parquet(c / "meta.parquet").iloc[:-2].to_parquet(c / "meta.parquet", index=False)


def _garbage_meta(c: Path) -> None:
    (c / "meta.parquet").write_bytes(b"split,subject,label\ntrain,1,0\n")  # a CSV renamed to .parquet


def _renamed_meta(c: Path) -> None:
    (c / "meta.parquet").rename(c / "meta.old.parquet")


def _labels_out_of_range(c: Path) -> None:
    meta = pd.read_parquet(c / "meta.parquet")
    meta.loc[0, "label"] = 1000
    meta.to_parquet(c / "meta.parquet", index=False)


def _eeg(c: Path, change) -> None:
    eeg = np.load(c / "eeg.npy")
    np.save(c / "eeg.npy", change(eeg))


def _manifest(c: Path, change) -> None:
    m = json.loads((c / "manifest.json").read_text())
    (c / "manifest.json").write_text(json.dumps(change(m)))


def _shuffle_rows(c: Path) -> None:
    """Same rows, same counts per split, other order: only the recorded checksum tells."""
    meta = pd.read_parquet(c / "meta.parquet")
    meta.sample(frac=1.0, random_state=0).to_parquet(c / "meta.parquet", index=False)


def _stats(c: Path, change) -> None:
    s = json.loads((c / "stats.json").read_text())
    change(s["normalisation"]) if callable(change) else s.pop("normalisation")
    (c / "stats.json").write_text(json.dumps(s))


CACHE_CASES = {
    "stats-no-normalisation": (lambda c: _stats(c, None), "'normalisation' must record"),
    "stats-norm-disagrees": (lambda c: _stats(c, lambda n: n.update(norm="channel")), "but manifest.json says 'global'"),
    "stats-std-zero": (lambda c: _stats(c, lambda n: n.update(std=0.0)), "'std' must be"),
    "stats-mean-text": (lambda c: _stats(c, lambda n: n.update(mean="x")), "'mean' must be"),
    "meta-rows-dropped": (_drop_rows, "rows but eeg.npy holds"),
    "meta-rows-shuffled": (_shuffle_rows, "was changed after the cache was prepared"),
    "meta-garbage": (_garbage_meta, "not a readable parquet"),
    "meta-renamed": (_renamed_meta, "no meta.parquet"),
    "labels-out-of-range": (_labels_out_of_range, "labels span"),
    "eeg-float64": (lambda c: _eeg(c, lambda x: x.astype(np.float64)), "float64"),
    "eeg-short": (lambda c: _eeg(c, lambda x: x[:, :, :100]), "samples per trial"),
    "eeg-64-channels": (lambda c: _eeg(c, lambda x: x[:, :64]), "channels"),
    "eeg-2d": (lambda c: _eeg(c, lambda x: x.reshape(len(x), -1)), "(trials, channels, samples)"),
    "manifest-list": (lambda c: (c / "manifest.json").write_text("[1, 2, 3]"), "not a JSON object"),
    "manifest-n-chans-text": (lambda c: _manifest(c, lambda m: {**m, "n_chans": "128"}), "'n_chans'"),
    "manifest-counts-disagree": (
        lambda c: _manifest(c, lambda m: {**m, "counts": {**m["counts"], "test": m["counts"]["test"] + 1}}), "counts"),
}


@pytest.mark.parametrize("case", list(CACHE_CASES))
def test_inconsistent_cache_is_refused_before_work(cache_copy: Path, tmp_path: Path, capsys, case: str) -> None:
    breaker, expect = CACHE_CASES[case]
    breaker(cache_copy)
    out = tmp_path / "ridge"
    rc = main(["baseline", "ridge", "--cache", str(cache_copy), "--out", str(out)])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert expect in line, line
    assert "prepare" in line  # says what to do
    assert not out.exists()


# ----------------------------------------------------------------------------- ridge options


@pytest.mark.parametrize("args, expect", [(["--bins", "0"], "--bins"), (["--alphas", "nan"], "--alphas"),
                                          (["--alphas", "1", "-2"], "--alphas")], ids=["bins-0", "alphas-nan", "alphas-negative"])
def test_ridge_bad_options(small_cache: Path, tmp_path: Path, capsys, args: list[str], expect: str) -> None:
    out = tmp_path / "ridge"
    rc = main(["baseline", "ridge", "--cache", str(small_cache), "--out", str(out), *args])
    assert expect in _one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()


def test_ridge_records_the_bins_it_used(small_cache: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ridge"
    n_times = json.loads((small_cache / "manifest.json").read_text())["n_times"]
    assert main(["baseline", "ridge", "--cache", str(small_cache), "--out", str(out), "--bins", str(n_times + 50),
                 "--alphas", "1", "100"]) == 0
    rec = json.loads((out / "ridge.json").read_text())
    assert rec["bins"] == n_times and rec["bins_requested"] == n_times + 50


# ----------------------------------------------------------------------------- preprocessing fingerprint


def _ckpt_with_record(path: Path, record: dict | None) -> None:
    """A checkpoint in the layout `eegalign fit` writes (tiny registry MLP) with a preprocessing record."""
    import torch

    from eegalign.models import build_model, encoder_config

    torch.manual_seed(0)
    enc = build_model("mlp", n_chans=128, n_times=440, out_shape=(1024,), hidden=8)
    meta = {"encoder": encoder_config(enc), "route": "image", "loss": {"name": "mse"}, "cache": None}
    if record is not None:
        meta["preprocessing"] = record
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in enc.state_dict().items()}, "eegalign": meta,
                "epoch": 1, "global_step": 1}, path)


def test_preprocessing_mismatch_is_refused_unless_allowed(small_cache: Path, tmp_path: Path, capsys) -> None:
    from eegalign.data.preprocessing_record import preprocessing_record

    record = preprocessing_record(json.loads((small_cache / "manifest.json").read_text()))
    assert record["norm"] == "global" and record["n_chans"] == 128
    ckpt = tmp_path / "m.ckpt"
    _ckpt_with_record(ckpt, {**record, "norm": "channel", "bandpass": [1.0, 40.0]})
    out = tmp_path / "eval"
    argv = ["evaluate", "--ckpt", str(ckpt), "--cache", str(small_cache), "--out", str(out),
            "--bootstrap", "20", "--permutations", "19", "--kway-draws", "2"]
    line = _one_error_line(main(argv), capsys.readouterr().err)
    assert "norm: trained on 'channel', this cache 'global'" in line and "bandpass" in line
    assert "--allow-preprocessing-mismatch" in line and not out.exists()
    assert main([*argv, "--allow-preprocessing-mismatch"]) == 0
    assert "prepared differently" in capsys.readouterr().err and (out / "metrics.json").is_file()


def test_old_checkpoint_without_record_warns(small_cache: Path, capsys) -> None:
    from eegalign.data.preprocessing_record import check_preprocessing, preprocessing_record

    manifest = json.loads((small_cache / "manifest.json").read_text())
    check_preprocessing(None, manifest, "checkpoint old.ckpt")  # warns, does not raise
    assert "does not record the preprocessing" in capsys.readouterr().err
    check_preprocessing(preprocessing_record(manifest), manifest, "checkpoint same.ckpt")  # identical: silent
    assert capsys.readouterr().err == ""


def _norm_changed(cache: Path, dst: Path) -> Path:
    """A copy of ``cache`` whose manifest records another normalisation (as `prepare --norm channel` would)."""
    import shutil

    shutil.copytree(cache, dst)
    _manifest(dst, lambda m: {**m, "params": {**m["params"], "norm": "channel"}})
    n = json.loads((dst / "manifest.json").read_text())["n_chans"]
    _stats(dst, lambda z: z.update(norm="channel", mean=[0.0] * n, std=[1.0] * n))  # stats.json agrees (checked)
    return dst


def test_lightning_subcommands_refuse_a_checkpoint_of_another_preprocessing(small_cache: Path, tmp_path: Path,
                                                                           capsys) -> None:
    """validate/test/predict --ckpt_path and a resumed fit check the checkpoint's preprocessing record
    against --data.cache, like evaluate --ckpt (the first case as a fresh process, the others in-process)."""
    run = tmp_path / "run"
    common = ["--model.encoder", "eegalign.models.MLPEncoder", "--model.encoder.init_args.preset", "small",
              "--model.loss", "eegalign.losses.CombinedLoss", *FIT_ONE]
    assert main(["fit", *common, "--data.cache", str(small_cache), "--trainer.default_root_dir", str(run)]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    other = _norm_changed(small_cache, tmp_path / "other")
    r = _cli("validate", *common, "--data.cache", str(other), "--trainer.default_root_dir", str(tmp_path / "v"),
             "--ckpt_path", str(ckpt))
    line = _one_error_line(r.returncode, r.stderr)
    assert "norm: trained on 'global', this cache 'channel'" in line and "--allow-preprocessing-mismatch" in line
    assert not (tmp_path / "v").exists()
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    rc = main(["fit", *common, "--trainer.max_epochs", "2", "--data.cache", str(other), "--trainer.default_root_dir",
               str(run), "--ckpt_path", "last"])
    assert "to resume anyway" in _one_error_line(rc, capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    rc = main(["predict", *common, "--data.cache", str(other), "--trainer.default_root_dir", str(tmp_path / "p"),
               "--ckpt_path", str(ckpt), "--allow-preprocessing-mismatch"])
    assert rc == 0 and "prepared differently" in capsys.readouterr().err


# ----------------------------------------------------------------------------- predictions-file metadata


def _predictions_file(path: Path, *, ids=None, true=None, label=None, tensors=None, classes=None) -> None:
    """A predictions file written with raw safetensors, so that any metadata can be broken."""
    from eegalign.io import save_tensors

    rng = np.random.default_rng(0)
    img = np.repeat(rng.normal(size=(4, 8)).astype(np.float32), 2, axis=0)  # 4 images x 2 trials
    arrays = {"pred": img + 0.1, "true": img if true is None else true, "label": np.repeat(np.arange(4), 2) if label is None else label,
              "subject": np.tile([1, 2], 4)}
    arrays.update(tensors or {})
    meta = {"image_ids": json.dumps([f"i{k // 2}" for k in range(8)] if ids is None else ids), "route": "image"}
    if classes is not None:
        meta["classes"] = json.dumps(classes)
    save_tensors(path, arrays, meta)


def _swap_targets(path: Path) -> None:
    t = np.repeat(np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32), 2, axis=0)
    t[1] = t[2]  # trial 1 (image i0) carries image i1's target
    _predictions_file(path, true=t)


PRED_CASES = {
    "ids-not-a-list": (lambda p: _predictions_file(p, ids={"a": 1}), "list of strings"),
    "ids-numbers": (lambda p: _predictions_file(p, ids=list(range(8))), "list of strings"),
    "ids-too-few": (lambda p: _predictions_file(p, ids=["a"] * 3), "image_ids has 3"),
    "one-id-two-targets": (_swap_targets, "two different targets"),
    "one-id-two-labels": (lambda p: _predictions_file(p, label=np.arange(8)), "two different labels"),
    "labels-float": (lambda p: _predictions_file(p, label=np.repeat(np.arange(4), 2) + 0.5), "integer"),
    "pred-int": (lambda p: _predictions_file(p, tensors={"pred": np.ones((8, 8), np.int32)}), "floating-point"),
    "classes-not-strings": (lambda p: _predictions_file(p, classes=[1, 2]), "'classes'"),
    "labels-beyond-classes": (lambda p: _predictions_file(p, classes=["a", "b"]), "labels span 0..3"),
}


@pytest.mark.parametrize("case", list(PRED_CASES))
def test_predictions_metadata_is_validated(tmp_path: Path, capsys, case: str) -> None:
    write, expect = PRED_CASES[case]
    write(tmp_path / "p.safetensors")
    out = tmp_path / "eval"
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out)])
    assert expect in _one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()




@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_audit_bin_ms_must_be_positive(small_cache: Path, tmp_path: Path, capsys, value: str) -> None:
    """--bin-ms 0 ran with one-sample bins while audit.json said '0 ms bins'."""
    out = tmp_path / "audit"
    rc = main(["audit", "--cache", str(small_cache), "--out", str(out), "--bin-ms", value])
    assert "--bin-ms" in _one_error_line(rc, capsys.readouterr().err) and not out.exists()


# ----------------------------------------------------------------------------- hand-edited outputs read back


def _generation_dir(root: Path, index: object) -> Path:
    root.mkdir()
    (root / "generation.json").write_text(json.dumps(index))
    (root / ".eegalign-output.json").write_text(json.dumps({"kind": "generation"}))
    return root


GEN_CASES = {
    "not-a-mapping": ([1, 2], "expected a mapping"),
    "trials-not-a-list": ({"settings": {}, "trials": 5}, "expected a mapping"),
    "index-not-int": ({"settings": {}, "trials": [{"index": "0", "eeg": "images/0.png"}]}, "integer 'index'"),
    "path-outside": ({"settings": {}, "trials": [{"index": 0, "eeg": "../../outside.png"}]}, "inside the output"),
}


@pytest.mark.parametrize("case", list(GEN_CASES))
def test_generation_json_is_validated_before_use(tmp_path: Path, capsys, case: str) -> None:
    """--nway-only and --merge read generation.json back: a damaged one is one line (it was an internal error),
    and an image path leaving the directory is never followed."""
    index, expect = GEN_CASES[case]
    gen = _generation_dir(tmp_path / "gen", index)
    for argv in (["--nway-only", "--out", str(gen)], ["--merge", str(gen), str(gen), "--out", str(tmp_path / "m")]):
        rc = main(["generate", *argv, "--classifier", str(tmp_path / "no-classifier")])
        assert expect in _one_error_line(rc, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]


@pytest.mark.parametrize("content", [[1], {"source_cache": "cache"}, {"source_cache": {"record": 5}}],
                         ids=["list", "source-not-object", "record-not-object"])
def test_model_directory_preprocess_json_is_validated(small_cache: Path, tmp_path: Path, capsys, content) -> None:
    from eegalign.models import build_model
    from eegalign.pretrained import preprocess_from_cache, save_pretrained

    enc = build_model("mlp", n_chans=128, n_times=440, out_shape=(1024,), hidden=8)
    model = save_pretrained(enc, tmp_path / "model", preprocess=preprocess_from_cache(small_cache), route="image")
    (model / "preprocess.json").write_text(json.dumps(content))
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(model), "--cache", str(small_cache), "--out", str(out)])
    assert "preprocess.json" in _one_error_line(rc, capsys.readouterr().err) and not out.exists()


# ----------------------------------------------------------------------------- argparse and Lightning paths


@pytest.mark.parametrize("argv", [["evaluate"], ["data", "synth", "--out", "x", "--subjects", "two"], ["no-such-command"],
                                  ["baseline", "ridge", "--cache", "c", "--out", "o", "--bins"]],
                         ids=["missing-option", "bad-int-subparser", "unknown-command", "option-without-value"])
def test_argparse_errors_are_one_line(argv: list[str]) -> None:
    r = _cli(*argv)
    line = _one_error_line(r.returncode, r.stderr)
    assert r.returncode == 2 and "--help" in line
    assert r.stderr.strip() == line and "usage:" not in r.stderr  # not argparse's usage text


def _demo_config(tmp_path: Path, lr: str) -> Path:
    from importlib import resources

    text = resources.files("eegalign.configs").joinpath("demo.yaml").read_text()
    cfg = tmp_path / f"lr{lr}.yaml"
    cfg.write_text("\n".join(f"  lr: {lr}" if ln.strip().startswith("lr:") else ln for ln in text.splitlines()))
    return cfg


FIT_ONE = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize("case, expect", [pytest.param("lr-nan", "model.lr", marks=pytest.mark.slow),
                                          pytest.param("lr-negative", "model.lr", marks=pytest.mark.slow),
                                          ("gpu", "--trainer.accelerator cpu"), ("binary-config", "not a text file")])
def test_lightning_configuration_errors(small_cache: Path, tmp_path: Path, case: str, expect: str) -> None:
    from importlib import resources

    demo = str(resources.files("eegalign.configs").joinpath("demo.yaml"))
    extra = {"lr-nan": ["--config", str(_demo_config(tmp_path, ".nan"))],
             "lr-negative": ["--config", str(_demo_config(tmp_path, "-1"))],
             "gpu": ["--config", demo, "--trainer.accelerator", "gpu"]}.get(case)
    if case == "binary-config":
        (tmp_path / "bin.yaml").write_bytes(b"\x00\x01model:\xff\xfe\x80")
        extra = ["--config", str(tmp_path / "bin.yaml")]
    run = tmp_path / "run"
    r = _cli("fit", *extra, "--data.cache", str(small_cache), "--trainer.default_root_dir", str(run), *FIT_ONE)
    assert expect in _one_error_line(r.returncode, r.stderr)
    assert not list(run.rglob("*.ckpt"))


@pytest.mark.parametrize("subcommand, extra, expect", [
    ("test", [], "needs --ckpt_path"),  # would score the untrained model and exit 0
    ("validate", ["--ckpt_path", "no-such.ckpt"], "no such checkpoint file"),  # Lightning noticed after writing records
    ("fit", ["--data.num_workers", "-1"], "num_workers"),  # was an internal ValueError
])
def test_lightning_paths_refused_before_writing(small_cache: Path, tmp_path: Path, capsys, subcommand: str,
                                                extra: list[str], expect: str) -> None:
    from importlib import resources

    demo = str(resources.files("eegalign.configs").joinpath("demo.yaml"))
    run = tmp_path / "run"
    rc = main([subcommand, "--config", demo, *FIT_ONE, "--data.cache", str(small_cache), "--trainer.default_root_dir",
               str(run), *extra])
    assert expect in _one_error_line(rc, capsys.readouterr().err)
    assert not run.exists()


@pytest.mark.parametrize("bad", [{"lr": float("nan")}, {"lr": -1.0}, {"lr": float("inf")}, {"weight_decay": float("inf")},
                                 {"betas": (0.9, 1.5)}, {"warmup_epochs": -1}])
def test_optimiser_settings_are_validated(bad: dict) -> None:
    """What `lr: .nan` / `lr: -1` in a config reach (the subprocess cases above are marked slow)."""
    from eegalign.errors import ConfigError
    from eegalign.losses import MSELoss
    from eegalign.models import build_model
    from eegalign.system import AlignmentModule

    enc = build_model("mlp", n_chans=4, n_times=8, out_shape=(3,), hidden=4)
    with pytest.raises(ConfigError, match=next(iter(bad))):
        AlignmentModule(enc, MSELoss(), **bad)


def _pickle_payload(path: Path, flag: Path, wrap=lambda obj: {"state_dict": {}, "evil": obj}) -> None:
    import torch

    class Payload:  # unpickling this would create `flag`
        def __reduce__(self):
            return (Path.touch, (flag,))

    torch.save(wrap(Payload()), path)


@pytest.mark.parametrize("subcommand", [pytest.param("fit", marks=pytest.mark.slow), "validate",
                                        pytest.param("predict", marks=pytest.mark.slow)])
def test_pickled_ckpt_path_is_refused_without_torch_advice(small_cache: Path, tmp_path: Path, subcommand: str) -> None:
    from importlib import resources

    ckpt, flag = tmp_path / "evil.ckpt", tmp_path / "pwned"
    _pickle_payload(ckpt, flag)
    demo = str(resources.files("eegalign.configs").joinpath("demo.yaml"))
    r = _cli(subcommand, "--config", demo, "--data.cache", str(small_cache), "--trainer.default_root_dir",
             str(tmp_path / "run"), "--ckpt_path", str(ckpt), *FIT_ONE)
    line = _one_error_line(r.returncode, r.stderr)
    assert "never unpickles" in line and "trust" not in r.stderr and "weights_only=False" not in r.stderr
    assert not flag.exists()


# ----------------------------------------------------------------------------- embed: corrupt images, pickled weights


def _tiny_clip_dir(path: Path, pickled_flag: Path | None = None) -> Path:
    """A tiny real CLIPVisionModelWithProjection directory; with a flag, its weights are a malicious pickle."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, projection_dim=4)
    if pickled_flag is None:
        CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    else:
        path.mkdir()
        cfg.save_pretrained(path)
        _pickle_payload(path / "pytorch_model.bin", pickled_flag, wrap=lambda obj: {"x": obj})
    return path


def test_embed_refuses_pickled_bin_weights(small_cache: Path, tmp_path: Path, capsys) -> None:
    flag = tmp_path / "pwned"
    model = _tiny_clip_dir(tmp_path / "clip", flag)
    rc = main(["embed", "--cache", str(small_cache), "--route", "image", "--image-model", str(model), "--device", "cpu"])
    err = capsys.readouterr().err
    line = _one_error_line(rc, err)
    assert "never unpickles" in line and "trust" not in err and not flag.exists()


@pytest.mark.parametrize("damage", ["truncated-header", "truncated-data"])
def test_embed_refuses_corrupt_jpeg(cache_copy: Path, tmp_path: Path, capsys, damage: str) -> None:
    model = _tiny_clip_dir(tmp_path / "clip")
    img = sorted((cache_copy / "images").iterdir())[0]
    data = img.read_bytes()
    img.write_bytes(data[:300] if damage == "truncated-header" else data[: len(data) * 2 // 3])
    before = (cache_copy / "targets" / "image.safetensors").read_bytes()
    rc = main(["embed", "--cache", str(cache_copy), "--route", "image", "--image-model", str(model), "--device", "cpu"])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert img.name in line and "not a readable image" in line
    assert (cache_copy / "targets" / "image.safetensors").read_bytes() == before  # nothing replaced


# ----------------------------------------------------------------------------- prepare: concurrency, output inside the source


def test_second_prepare_into_the_same_out_is_refused_while_the_first_writes(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    from eegalign.data.cache import _exclusive_prepare

    out = tmp_path / "cache"
    with _exclusive_prepare(out):  # what a running `prepare --out cache` holds
        rc = main(["data", "prepare", "--source", str(synthetic_dir), "--out", str(out), "--norm", "channel"])
        line = _one_error_line(rc, capsys.readouterr().err)
    assert "another `eegalign data prepare`" in line and f"pid {__import__('os').getpid()}" in line
    assert not out.exists()
    assert main(["data", "prepare", "--source", str(synthetic_dir), "--out", str(out)]) == 0  # free again


def test_identical_prepare_rerun_inside_its_source_reuses_the_cache(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(synthetic_dir, src)
    argv = ["data", "prepare", "--source", str(src), "--out", str(src / "cache")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing cache" in capsys.readouterr().err


# ----------------------------------------------------------------------------- generate: impossible N-way before any image


@pytest.mark.parametrize("args, expect", [(["--nway", "5000"], "at most 1000"), (["--nway", "10", "--topk", "11"], "--topk"),
                                          (["--nway", "1"], ">= 2")], ids=["nway-above-classes", "topk-above-nway", "nway-1"])
def test_generate_checks_nway_before_generating(tmp_path: Path, capsys, args: list[str], expect: str) -> None:
    """No Stable Diffusion model exists here: the refusal must come first, naming --nway/--topk, not the model."""
    _predictions_file(tmp_path / "p.safetensors")
    out = tmp_path / "gen"
    rc = main(["generate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out), "--classifier",
               str(tmp_path / "no-classifier"), "--sd-model", str(tmp_path / "no-sd"), *args])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert expect in line and "--sd-model" not in line and not out.exists()
    for mode in (["--nway-only"], ["--merge", str(tmp_path / "a"), str(tmp_path / "b")]):
        rc = main(["generate", "--out", str(out), "--classifier", "c", *mode, *args])
        assert expect in _one_error_line(rc, capsys.readouterr().err)
    # without --classifier the options do nothing, but an impossible value is still refused (never silently ignored)
    rc = main(["generate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out), "--sd-model",
               str(tmp_path / "no-sd"), *args])
    err = capsys.readouterr().err
    assert expect in _one_error_line(rc, err) and "without --classifier" in err and not out.exists()


# ----------------------------------------------------------------------------- targets: cache targets and --train-targets


def test_cache_targets_with_nan_are_refused(cache_copy: Path, tmp_path: Path, capsys) -> None:
    from eegalign.io import load_tensors, save_tensors

    arrays, meta = load_tensors(cache_copy / "targets" / "image.safetensors")
    arrays["embeddings"][3, 0] = np.nan
    save_tensors(cache_copy / "targets" / "image.safetensors", arrays, meta)
    rc = main(["baseline", "ridge", "--cache", str(cache_copy), "--out", str(tmp_path / "r")])
    assert "NaN or Inf" in _one_error_line(rc, capsys.readouterr().err) and not (tmp_path / "r").exists()


@pytest.mark.parametrize("tensors, expect", [({"embeddings": np.full((4, 8), np.nan, np.float32)}, "NaN"),
                                             ({"label": np.arange(4) + 0.5}, "integers")], ids=["nan", "float-labels"])
def test_train_targets_file_is_validated(tmp_path: Path, capsys, tensors: dict, expect: str) -> None:
    from eegalign.io import save_tensors

    _predictions_file(tmp_path / "p.safetensors")
    arrays = {"embeddings": np.ones((4, 8), np.float32), "label": np.arange(4)}
    save_tensors(tmp_path / "train.safetensors", {**arrays, **tensors})
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--train-targets",
               str(tmp_path / "train.safetensors"), "--out", str(tmp_path / "e")])
    assert expect in _one_error_line(rc, capsys.readouterr().err)
