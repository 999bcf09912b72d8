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
import time
from pathlib import Path

import pytest

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
    rc = main(["data", "synth", "--out", str(cache_copy), "--overwrite", "--subjects", "1", "--classes", "2",
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
    dead = _dead_pid()
    old = time.time() - 3600
    stale = tmp_path / f".tmp-eval-{dead}-abcd_123"
    live = tmp_path / f".tmp-eval-{os.getppid()}-abcd_456"  # a running process's: never touched
    young = tmp_path / f".tmp-eval-{dead}-abcd_789"  # too recent to be sure
    other = tmp_path / f".tmp-evaluation-{dead}-abcd_000"  # another output's
    for d in (stale, live, young, other):
        d.mkdir()
        (d / "x").write_text("partial")
    for d in (stale, live, other):
        os.utime(d, (old, old))
    assert main(["evaluate", "--predictions", str(outputs["preds"]), "--out", str(tmp_path / "eval"), *FAST_EVAL]) == 0
    assert not stale.exists()
    assert live.exists() and young.exists() and other.exists()


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
