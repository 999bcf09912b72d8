"""Outputs are never inputs, and nothing is lost: one regression test per class of failure (issue #13).

Each refusal is one `eegalign: error:` line with a non-zero exit, and the directory it protects is
byte-for-byte what it was. Fast cases run the CLI in-process; the run-directory cases run `fit` as
a subprocess, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import lightning.pytorch  # noqa: F401 - imported at collection: its log handler binds to the session stderr, not a test's
import torch

from eegalign.cli import main
from eegalign.outputs import MARKER

FAST_EVAL = ["--bootstrap", "20", "--permutations", "20", "--kway-draws", "2"]


def _one_error_line(rc: int, err: str) -> str:
    assert rc != 0, err
    assert "Traceback" not in err and "\x1b[" not in err, err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("eegalign: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), to show nothing changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.fixture(scope="module")
def outputs(small_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ridge output and its evaluation, made once from the tiny cache."""
    root = tmp_path_factory.mktemp("outs")
    ridge = root / "ridge"
    assert main(["baseline", "ridge", "--cache", str(small_cache), "--out", str(ridge), "--alphas", "1", "100"]) == 0
    ev = root / "eval"
    assert main(["evaluate", "--predictions", str(ridge / "predictions.safetensors"), "--out", str(ev), *FAST_EVAL]) == 0
    return {"ridge": ridge, "eval": ev, "preds": ridge / "predictions.safetensors"}


def test_every_output_carries_its_marker(outputs: dict[str, Path], small_cache: Path) -> None:
    for kind, d in (("ridge", outputs["ridge"]), ("evaluation", outputs["eval"]), ("cache", small_cache)):
        rec = json.loads((d / MARKER).read_text())
        assert rec["kind"] == kind and rec["eegalign_version"] and rec["created"] and rec["pid"] > 0


def test_evaluate_into_its_own_cache_is_refused(small_cache: Path, outputs: dict[str, Path], tmp_path: Path,
                                                capsys) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(small_cache, cache)
    before = _snapshot(cache)
    rc = main(["evaluate", "--predictions", str(outputs["preds"]), "--train-targets", str(cache), "--out", str(cache),
               "--overwrite", *FAST_EVAL])
    assert "input of this command" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(cache) == before


def test_ridge_into_its_own_cache_is_refused(cache_copy: Path, capsys) -> None:
    before = _snapshot(cache_copy)
    rc = main(["baseline", "ridge", "--cache", str(cache_copy), "--out", str(cache_copy), "--overwrite"])
    assert "input of this command" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(cache_copy) == before


def test_compare_into_a_compared_run_is_refused(outputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    ev = tmp_path / "eval"
    shutil.copytree(outputs["eval"], ev)
    before = _snapshot(ev)
    rc = main(["compare", str(ev), "--out", str(ev), "--overwrite"])
    assert "input of this command" in _one_error_line(rc, capsys.readouterr().err)
    rc = main(["compare", str(ev / "metrics.json"), "--out", str(tmp_path), "--overwrite"])  # a parent of an input
    assert "contains an input" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(ev) == before


def test_synth_over_a_cache_is_refused(cache_copy: Path, capsys) -> None:
    before = _snapshot(cache_copy)
    rc = main(["data", "synth", "--out", str(cache_copy), "--overwrite", "--subjects", "1", "--classes", "3",
               "--images-per-class", "1"])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert "is an eegalign cache" in line and "replaces only an earlier synthetic data set" in line
    assert _snapshot(cache_copy) == before


def test_out_dot_is_refused(outputs: dict[str, Path], tmp_path: Path, monkeypatch, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    for out in (".", str(tmp_path)):
        rc = main(["evaluate", "--predictions", str(outputs["preds"]), "--out", out, "--overwrite", *FAST_EVAL])
        assert "current directory" in _one_error_line(rc, capsys.readouterr().err)
    assert (work / "notes.txt").read_text() == "mine"


def test_unrelated_folder_is_never_replaced(outputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    mine = tmp_path / "thesis"
    (mine / "chapters").mkdir(parents=True)
    (mine / "chapters" / "one.tex").write_text("\\chapter{One}")
    before = _snapshot(mine)
    for argv in (
        ["evaluate", "--predictions", str(outputs["preds"]), *FAST_EVAL],
        ["audit", "--cache", str(outputs["ridge"].parent)],  # never reached: refused before reading the cache
        ["compare", str(outputs["eval"])],
        ["data", "synth"],
    ):
        rc = main([*argv, "--out", str(mine), "--overwrite"])
        assert "not an eegalign output" in _one_error_line(rc, capsys.readouterr().err), argv
    assert _snapshot(mine) == before
    # another kind of eegalign output is not replaced either
    before = _snapshot(outputs["ridge"])
    rc = main(["compare", str(outputs["eval"]), "--out", str(outputs["ridge"]), "--overwrite"])
    assert "is an eegalign `eegalign baseline ridge` output" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(outputs["ridge"]) == before


def test_out_that_is_or_is_under_a_file(outputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    f = tmp_path / "results.txt"
    f.write_text("keep")
    for out in (f, f / "eval"):
        rc = main(["evaluate", "--predictions", str(outputs["preds"]), "--out", str(out), "--overwrite", *FAST_EVAL])
        _one_error_line(rc, capsys.readouterr().err)
    assert f.read_text() == "keep"
    _no_leftovers(tmp_path)


def test_overwrite_of_the_same_kind_replaces_atomically(outputs: dict[str, Path], tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    shutil.copytree(outputs["eval"], ev)
    (ev / "stale.txt").write_text("from the old output")
    assert main(["evaluate", "--predictions", str(outputs["preds"]), "--out", str(ev), "--overwrite",
                 *FAST_EVAL]) == 0
    assert not (ev / "stale.txt").exists() and (ev / "metrics.json").is_file()
    assert json.loads((ev / MARKER).read_text())["kind"] == "evaluation"
    _no_leftovers(tmp_path)


def test_stale_temporaries_of_killed_writers_are_cleaned(outputs: dict[str, Path], tmp_path: Path) -> None:
    from eegalign.io import process_space_tag

    dead, tag = _dead_pid(), process_space_tag()
    old = time.time() - 3600
    stale = tmp_path / f".tmp-eval-{dead}-abcd_123"  # no tag (or another host's), dead PID, old: removed
    ours = tmp_path / f".tmp-eval-{dead}-{tag}-abcd_321"  # this host's, dead PID, recent: removed at once
    trash = tmp_path / f".trash-eval-{dead}-{tag}-0badf00d"
    live = tmp_path / f".tmp-eval-{os.getppid()}-{tag}-abcd_456"  # a running process's: never touched
    young = tmp_path / f".tmp-eval-{dead}-abcd_789"  # no tag and recent: maybe a live writer on another host
    foreign = tmp_path / f".tmp-eval-{dead}-0123abcd-abcd_654"  # another host's tag, recent: the same
    other = tmp_path / f".tmp-evaluation-{dead}-{tag}-abcd_000"  # another output's
    for d in (stale, ours, trash, live, young, foreign, other):
        d.mkdir()
        (d / "x").write_text("partial")
    for d in (stale, live, other):
        os.utime(d, (old, old))
    assert main(["evaluate", "--predictions", str(outputs["preds"]), "--out", str(tmp_path / "eval"), *FAST_EVAL]) == 0
    assert not stale.exists() and not ours.exists() and not trash.exists()
    assert live.exists() and young.exists() and foreign.exists() and other.exists()


def _dead_pid() -> int:
    """A PID no process has (the highest possible, checked)."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) - 1 if Path("/proc/sys/kernel/pid_max").exists() else 4194303
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


# --------------------------------------------------------------------------- run directories (fit)

FIT = [
    "--model.encoder", "eegalign.models.MLPEncoder", "--model.encoder.init_args.preset", "small",
    "--model.loss", "eegalign.losses.CombinedLoss", "--model.t_max", "3", "--trainer.accelerator", "cpu",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--data.batch_size", "8",
    "--seed_everything", "1",
]


def _fit(cache: Path, root: Path, *extra: str, popen: bool = False):
    cmd = [sys.executable, "-m", "eegalign", "fit", "--data.cache", str(cache), *FIT,
           "--trainer.default_root_dir", str(root), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"fit ended before {path} appeared: {proc.stderr.read()}"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def _fake_run(root: Path, state: dict | None = None, truncate: bool = False) -> Path:
    """A run directory as `fit` leaves it (records, marker, last.ckpt), without the cost of training."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "config.yaml").write_text("trainer:\n  max_epochs: 1\n")
    (root / "hparams.yaml").write_text("lr: 0.001\n")
    (root / "metrics.csv").write_text("epoch,step,val/loss\n0,3,1.5\n")
    (root / MARKER).write_text(json.dumps({"kind": "run"}))
    last = root / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": state or {"encoder.w": torch.zeros(64, 64)}, "epoch": 0}, last)
    if truncate:
        last.write_bytes(last.read_bytes()[:500])
    return root


def _fit_inproc(cache: Path, root: Path, *extra: str) -> int:
    return main(["fit", "--data.cache", str(cache), *FIT, "--trainer.max_epochs", "1",
                 "--trainer.default_root_dir", str(root), *extra])


def test_fresh_fit_into_an_existing_run_or_a_folder_changes_nothing(small_cache: Path, tmp_path: Path,
                                                                    capsys) -> None:
    run = _fake_run(tmp_path / "run")
    before = _snapshot(run)
    rc = _fit_inproc(small_cache, run)
    assert "already holds a run" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(run) == before and not (run / ".eegalign-run.lock").exists()
    (run / "checkpoints" / "last.ckpt").unlink()  # a run that failed before its first checkpoint: kept, and said so
    before = _snapshot(run)
    rc = _fit_inproc(small_cache, run)
    assert "saved no checkpoint" in _one_error_line(rc, capsys.readouterr().err) and _snapshot(run) == before
    rc = _fit_inproc(small_cache, run, "--ckpt_path", "last")  # nothing to resume: not a silent fresh start
    assert "no checkpoint to resume" in _one_error_line(rc, capsys.readouterr().err) and _snapshot(run) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for extra in ((), ("--ckpt_path", "last")):
        rc = _fit_inproc(small_cache, mine, *extra)
        assert "not a run directory" in _one_error_line(rc, capsys.readouterr().err)
        assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_run_directory_inside_the_input_cache_is_refused(cache_copy: Path, capsys) -> None:
    """The cache is an input: a run (fit, or validate's records) never writes into it, also through a symlink."""
    before = _snapshot(cache_copy)
    link = cache_copy.parent / "link"
    link.symlink_to(cache_copy)
    for root in (cache_copy, cache_copy / "run", link / "run"):
        rc = _fit_inproc(cache_copy, root)
        assert "is, or is inside, --data.cache" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(cache_copy) == before and not (cache_copy / "run").exists()


def test_validate_into_a_run_adds_suffixed_records_only(small_cache: Path, tmp_path: Path) -> None:
    """validate writes config/hparams/metrics-validate-K beside the run's own files, which stay byte-identical
    (no stray hparams.yaml from the TensorBoard logger either)."""
    run = tmp_path / "run"
    assert _fit_inproc(small_cache, run, "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1") == 0
    before = _snapshot(run)
    for k in (1, 2):
        assert main(["validate", "--data.cache", str(small_cache), *FIT, "--trainer.limit_val_batches", "1",
                     "--trainer.default_root_dir", str(run), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0
        new = sorted(set(_snapshot(run)) - set(before))
        assert [n for n in new if not n.startswith("events.out.tfevents")] == sorted(
            f"{stem}-validate-{j}.{ext}" for j in range(1, k + 1)
            for stem, ext in (("config", "yaml"), ("hparams", "yaml"), ("metrics", "csv")))
    assert {n: h for n, h in _snapshot(run).items() if n in before} == before
    mine = tmp_path / "mine"  # a directory without hparams.yaml: the TensorBoard logger used to add one
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["validate", "--data.cache", str(small_cache), *FIT, "--trainer.limit_val_batches", "1",
                 "--trainer.default_root_dir", str(mine), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0
    assert sorted(n for n in _snapshot(mine) if not n.startswith("events.out.tfevents")) == [
        "config-validate-1.yaml", "hparams-validate-1.yaml", "metrics-validate-1.csv", "notes.txt"]


def test_resume_from_a_truncated_or_foreign_checkpoint_changes_nothing(small_cache: Path, tmp_path: Path,
                                                                       capsys) -> None:
    for name, truncate, expect in (("cut", True, "cannot resume"), ("other", False, "do not fit this model")):
        run = _fake_run(tmp_path / name, truncate=truncate)
        before = _snapshot(run)
        rc = _fit_inproc(small_cache, run, "--ckpt_path", "last")
        line = _one_error_line(rc, capsys.readouterr().err)
        assert expect in line and "last.ckpt" in line
        assert _snapshot(run) == before


@pytest.fixture(scope="module")
def run_dir(small_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run."""
    root = tmp_path_factory.mktemp("run") / "run"
    r = _fit(small_cache, root, "--trainer.max_epochs", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    return root


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


@pytest.mark.slow
def test_real_run_refusals_and_resume_keep_the_first_runs_records(small_cache: Path, run_copy: Path) -> None:
    assert json.loads((run_copy / MARKER).read_text())["kind"] == "run"
    assert not (run_copy / ".eegalign-run.lock").exists()  # released at the end
    before = _snapshot(run_copy)
    r = _fit(small_cache, run_copy, "--trainer.max_epochs", "1", "--model.lr", "0.5")
    assert "already holds a run" in _one_error_line(r.returncode, r.stderr)
    # another loss has a learnable temperature: the run's weights do not fit this model
    r = _fit(small_cache, run_copy, "--trainer.max_epochs", "2", "--model.loss", "eegalign.losses.InfoNCELoss",
             "--ckpt_path", "last")
    assert "do not fit this model" in _one_error_line(r.returncode, r.stderr)
    assert _snapshot(run_copy) == before
    rows = (run_copy / "metrics.csv").read_text().count("\n")
    r = _fit(small_cache, run_copy, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("config.yaml", "hparams.yaml"):
        assert _snapshot(run_copy)[name] == before[name]
    assert (run_copy / "config-resume-1.yaml").is_file() and (run_copy / "hparams-resume-1.yaml").is_file()
    assert (run_copy / "metrics.csv").read_text().count("\n") > rows


@pytest.mark.slow
def test_second_concurrent_fit_is_refused_and_ctrl_c_exits_130(small_cache: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    first = _fit(small_cache, root, "--trainer.max_epochs", "500", popen=True)
    try:
        _wait_for(root / "checkpoints" / "last.ckpt", first)
        second = _fit(small_cache, root, "--trainer.max_epochs", "1")
        line = _one_error_line(second.returncode, second.stderr)
        assert "in use" in line and f"PID {first.pid}" in line
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        if first.poll() is None:
            first.kill()
    assert "eegalign: interrupted" in first.stderr.read()
    torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)  # complete
    assert not list(root.rglob(".tmp-*")) and not (root / ".eegalign-run.lock").exists()
    # the interrupted run is resumable, and a stale lock of a dead process is taken over
    (root / ".eegalign-run.lock").write_text(f"fit PID {first.pid} (dead)\n")
    epoch = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    r = _fit(small_cache, root, "--trainer.max_epochs", str(epoch + 2), "--ckpt_path", "last")
    assert r.returncode == 0, r.stderr[-2000:]


def test_ctrl_c_in_a_command_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT while `data synth` writes: exit 130, `eegalign: interrupted` on its own line, no output, no temporary."""
    out = tmp_path / "synth"
    proc = subprocess.Popen([sys.executable, "-m", "eegalign", "data", "synth", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        t0 = time.monotonic()
        while not list(tmp_path.glob(".tmp-synth-*")):  # it is writing now
            assert proc.poll() is None and time.monotonic() - t0 < 120, "synth ended before it could be interrupted"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().replace("\r", "\n")
    assert "eegalign: interrupted" in err.splitlines() and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A small tmpfs mount (root only); the test is skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()[:80]})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill the file system at ``mnt`` until ``leave`` bytes are free."""
    filler = mnt / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(mnt).free - leave))
    return filler


@pytest.mark.slow
def test_full_disk_during_fit_keeps_the_last_checkpoint(small_cache: Path, tmpfs: Path) -> None:
    root = tmpfs / "run"
    proc = _fit(small_cache, root, "--trainer.max_epochs", "500", popen=True)
    try:
        _wait_for(root / "checkpoints" / "last.ckpt", proc)
        filler = _fill(tmpfs, leave=1 << 20)  # 1 MiB: the next checkpoint (7 MiB) does not fit
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    line = _one_error_line(rc, proc.stderr.read())
    assert "not enough free space" in line or "No space left" in line
    last = root / "checkpoints" / "last.ckpt"
    epoch = torch.load(last, weights_only=True)["epoch"]  # the previous one, complete
    assert not list(root.rglob(".tmp-*"))
    filler.unlink()
    r = _fit(small_cache, root, "--trainer.max_epochs", str(epoch + 2), "--ckpt_path", "last")
    assert r.returncode == 0, r.stderr[-2000:]


def test_full_disk_is_refused_before_the_work(small_cache: Path, outputs: dict[str, Path], tmpfs: Path,
                                              capsys) -> None:
    _fill(tmpfs, leave=2 << 20)
    rc = _fit_inproc(small_cache, tmpfs / "run")
    assert "not enough free space" in _one_error_line(rc, capsys.readouterr().err)
    assert not (tmpfs / "run").exists()
    rc = main(["data", "synth", "--out", str(tmpfs / "big")])  # the default set's EEG alone is ~258 MiB
    assert "not enough free space" in _one_error_line(rc, capsys.readouterr().err)
    assert not (tmpfs / "big").exists()
    # an output that does not fit: the write fails, one line, nothing left behind
    (tmpfs / "filler").unlink()
    _fill(tmpfs, leave=8 << 10)
    rc = main(["evaluate", "--predictions", str(outputs["preds"]), "--out", str(tmpfs / "eval"), *FAST_EVAL])
    _one_error_line(rc, capsys.readouterr().err)
    assert not (tmpfs / "eval").exists() and not list(tmpfs.glob(".tmp-*"))
    # a write that passes the up-front estimate (the EEG: 3 trials, 660 KiB) but fails on the rest (targets,
    # images): a library's own disk-full error is the same one line, saying what to do
    (tmpfs / "filler").unlink()
    _fill(tmpfs, leave=1200 << 10)
    rc = main(["data", "synth", "--out", str(tmpfs / "synth"), "--subjects", "1", "--classes", "3",
               "--images-per-class", "1"])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert "No space left on device" in line and "free some space" in line and "Errno" not in line
    assert not (tmpfs / "synth").exists() and not list(tmpfs.glob(".tmp-*"))


@pytest.fixture
def read_only_dir(tmp_path: Path, small_cache: Path):
    """A directory holding a copy of the cache, where nobody can write: a tmpfs remounted read-only when root
    (chmod does not stop root), else mode 555. Skipped where root may not mount."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        shutil.copytree(small_cache, d / "cache")
        for p in (d / "cache" / "targets", d / "cache", d):
            p.chmod(0o555)
        yield d
        for p in (d, d / "cache", d / "cache" / "targets"):
            p.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()[:80]})")
    try:
        shutil.copytree(small_cache, d / "cache")
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True, capture_output=True)
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_read_only_output_is_refused_before_the_work(small_cache: Path, synthetic_dir: Path,
                                                     outputs: dict[str, Path], read_only_dir: Path, capsys) -> None:
    """Every command that writes checks it can, before computing anything: one line naming the option to change."""
    ro = read_only_dir
    commands = {
        "--out": [["evaluate", "--predictions", str(outputs["preds"]), "--out", str(ro / "e"), *FAST_EVAL],
                  ["baseline", "ridge", "--cache", str(small_cache), "--out", str(ro / "r"), "--alphas", "1"],
                  ["data", "prepare", "--source", str(synthetic_dir), "--out", str(ro / "c")],
                  ["data", "synth", "--out", str(ro / "s"), "--subjects", "1", "--classes", "2"],
                  ["compare", str(outputs["eval"]), "--out", str(ro / "cmp")],
                  ["audit", "--cache", str(small_cache), "--out", str(ro / "a")]],
        "--trainer.default_root_dir": [["fit", "--data.cache", str(small_cache), *FIT, "--trainer.default_root_dir",
                                        str(ro / "run")]],
    }
    for option, argvs in commands.items():
        for argv in argvs:
            line = _one_error_line(main(argv), capsys.readouterr().err)
            assert "cannot write in" in line and f"choose a writable {option}" in line, (argv, line)
    ckpt = ro.parent / "m.ckpt"
    torch.save({"state_dict": {}}, ckpt)  # passes the up-front checkpoint checks: the lock is the first write
    rc = main(["validate", "--data.cache", str(small_cache), *FIT, "--trainer.default_root_dir", str(ro / "v"),
               "--ckpt_path", str(ckpt)])
    line = _one_error_line(rc, capsys.readouterr().err)
    if os.geteuid() == 0:  # the read-only mount (mode 555 gives "Permission denied")
        assert "Read-only file system" in line and "writable file system" in line
    line = _one_error_line(main(["embed", "--cache", str(ro / "cache"), "--image-model", str(ro / "no-model")]),
                           capsys.readouterr().err)
    assert "cannot write in" in line and "targets" in line and "choose a writable cache directory" in line
    assert [p.name for p in ro.iterdir()] == ["cache"]


# --------------------------------------------------------------------------- generate --nway-only


def _fake_generation(root: Path) -> Path:
    """A generate output as `eegalign generate` leaves it: images, grids, generation.json, marker."""
    from PIL import Image

    for sub in ("images", "originals", "grids"):
        (root / sub).mkdir(parents=True)
    trials = []
    for i in range(2):
        rec = {"index": i, "image_id": f"im{i}", "label": i, "wnid": None, "class_name": None, "subject": 1,
               "seed": i, "original": f"originals/im{i}.png", "true": f"images/{i:05d}_true.png",
               "eeg": f"images/{i:05d}_eeg.png"}
        for kind in ("original", "true", "eeg"):
            Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(root / rec[kind])
        trials.append(rec)
    Image.new("RGB", (8, 8)).save(root / "grids" / "grid_000.png")
    index = {"predictions": None, "model": "m", "route": "image", "split": "test", "n_trials_total": 2,
             "images_dir": None, "settings": {}, "selection": {}, "trials": trials,
             "grids": ["grids/grid_000.png"], "nway": None}
    (root / "generation.json").write_text(json.dumps(index))
    (root / "generation.html").write_text("<html></html>")
    (root / MARKER).write_text(json.dumps({"kind": "generation"}))
    return root


def test_failed_nway_only_leaves_the_generation_untouched(tmp_path: Path, capsys) -> None:
    gen = _fake_generation(tmp_path / "gen")
    (gen / "images" / "00001_eeg.png").unlink()  # a missing image: the grids cannot be redrawn
    before = _snapshot(gen)
    rc = main(["generate", "--nway-only", "--out", str(gen), "--classifier", str(tmp_path / "vit")])
    assert "00001_eeg.png" in _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(gen) == before
    # all images there, but the classifier cannot be loaded: the grids were redrawn in the copy only
    gen2 = _fake_generation(tmp_path / "gen2")
    before = _snapshot(gen2)
    rc = main(["generate", "--nway-only", "--out", str(gen2), "--classifier", str(tmp_path / "no-classifier")])
    _one_error_line(rc, capsys.readouterr().err)
    assert _snapshot(gen2) == before
    _no_leftovers(tmp_path)
