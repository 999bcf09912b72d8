"""The canonical cache: fingerprinted, written atomically, memory-mapped when read.

Layout (see docs/data.md): ``eeg.npy`` float32 ``(N, C, T)``, ``meta.parquet`` (one row per trial,
same order), ``images/<image_id>.jpg|png``, ``stats.json`` (every preprocessing parameter and the
train-only normalisation statistics), ``manifest.json`` (source, format, parameters, package version,
fingerprint, counts; written last) and, after ``eegalign embed`` or when the source ships them,
``targets/{image,text}.safetensors``.

``prepare_cache`` writes everything into a temporary sibling directory and renames it into place, so
an interrupted run never leaves a directory that looks like a complete cache. Re-running it with the
same source and parameters reuses the cache; other parameters into an existing cache are refused
unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.data.cache_check import file_sha256
from eegalign.errors import ConfigError, DataError

ROUTES = ("image", "text")
CACHE_FILES = ("eeg.npy", "meta.parquet", "stats.json", "manifest.json")
META_COLUMNS = ("split", "subject", "label", "label_folder", "caption", "image_id")  # + "repetition" (THINGS-EEG2)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _source_identity(
    source: str | Path, fmt: str, splits: str | Path | None, exclude: str | Path | None = None
) -> dict[str, Any]:
    """What identifies the source's content: file names, sizes and mtimes (local) or the hub id.

    ``exclude``: the output directory, left out when it lies inside the source (a cache written into
    its own source directory must not change the source's identity, or a rerun would look different).
    """
    if fmt == "hub":
        return {"hub_id": str(source)}
    paths = [Path(source)] + ([Path(splits)] if splits is not None else [])
    skip = Path(exclude).resolve() if exclude is not None else None
    files = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if skip is not None and f.resolve().is_relative_to(skip):
                    continue
                if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                    st = f.stat()
                    files.append([str(rel), st.st_size, st.st_mtime_ns])
        elif p.is_file():
            st = p.stat()
            files.append([p.name, st.st_size, st.st_mtime_ns])
    return {"path": str(Path(source).resolve()), "files": files}


def fingerprint(identity: dict[str, Any], params: dict[str, Any], version: str) -> str:
    """SHA-256 (16 hex digits) of the source identity, the parameters and the package version."""
    blob = json.dumps({"source": identity, "params": params, "version": version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _exclusive_prepare(out: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``.NAME.prepare-lock`` beside ``out`` while a cache is prepared into it.

    A second ``prepare`` into the same ``--out`` (other parameters, or the same while the first is still
    writing) is refused with one line instead of racing to replace the first one's cache. The kernel
    drops the lock when its process dies; the lock file is removed on release (and a lock taken on a
    file another process just removed is retried, so two holders never coexist).
    """
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.prepare-lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 100).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataError(f"another `eegalign data prepare` ({holder}) is writing {out} now; wait for it to finish "
                            "(then rerun to reuse its cache) or choose another --out") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed this file between our open and our lock: start again
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # releases the flock


def prepare_cache(source: str | os.PathLike, out: str | os.PathLike, **kwargs: Any) -> Path:
    """Prepare ``source`` into the cache ``out`` (see :func:`_prepare_cache`), one process at a time per ``out``."""
    with _exclusive_prepare(Path(out)):
        return _prepare_cache(source, out, **kwargs)


def _prepare_cache(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "auto",
    bandpass: tuple[float, float] | None = None,
    norm: str = "global",
    sfreq: float | None = None,
    overwrite: bool = False,
    splits: str | os.PathLike | None = None,
    fold: int = 0,
    n_chans: int | None = None,
    strict: bool = False,
    progress: bool = True,
    subjects: list[int] | None = None,
    val_fraction: float = 0.1,
    val_seed: int = 0,
    split_by: str = "source",
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
) -> Path:
    """Read ``source``, preprocess it and write the cache at ``out``; return ``out``.

    ``bandpass`` is ``(low, high)`` in Hz (zero-phase Butterworth); ``norm`` is ``global`` (one mean and
    std, the seed's), ``channel`` or ``none``, always fitted on the train split. Non-finite values are
    replaced by 0 and counted (a warning line), or refused with ``strict``. ``splits``/``fold`` are for
    the release format. If the source directory holds ``targets/{image,text}.safetensors`` (synthetic
    data) they are copied into the cache. ``sfreq`` defaults to 1000 Hz (CVPR40), or for THINGS-EEG2 to
    the rate of the files' ``times``.

    THINGS-EEG2 (``format="things-eeg2"`` or detected) is streamed subject by subject into ``eeg.npy``
    (:func:`_prepare_things`): one row per repetition, ``subjects`` (None: all) selects subjects, and
    the validation split is ``val_fraction`` of the training concepts (seeded by ``val_seed``).

    ``split_by`` re-splits the trials (``eegalign.data.splits``: source, image, block, session) with
    ``split_fractions`` and ``split_seed`` before preprocessing (not for THINGS-EEG2, whose test
    concepts are fixed by the release).
    """
    from eegalign import __version__
    from eegalign.data.sources import read_source

    out = Path(out)
    fmt, things, sfreq, params = _plan_params(
        source, format=format, bandpass=bandpass, norm=norm, sfreq=sfreq, splits=splits, fold=fold,
        n_chans=n_chans, subjects=subjects, val_fraction=val_fraction, val_seed=val_seed, split_by=split_by,
        split_fractions=split_fractions, split_seed=split_seed)
    identity = _source_identity(source, fmt, splits if fmt == "release" else None, exclude=out)
    fp = fingerprint(identity, params, __version__)
    if _reusable_or_refuse(out, fp, overwrite=overwrite):
        _say(f"reusing cache {out} (fingerprint {fp})")
        return out

    if things is not None:
        return _prepare_things(things, Path(source), out, params=params, fp=fp, identity=identity,
                               version=__version__, strict=strict, progress=progress)
    records = read_source(source, format=format, splits=splits, fold=fold, n_chans=n_chans, progress=progress)
    stats = _split_and_preprocess(records, params, bandpass=bandpass, norm=norm, sfreq=sfreq, strict=strict,
                                  progress=progress, split_by=split_by, split_fractions=split_fractions,
                                  split_seed=split_seed)
    meta = records.meta
    counts = _write_cache(records, stats, source, out, fmt=fmt, fp=fp, identity=identity, params=params,
                          version=__version__, progress=progress)
    _say(f"wrote cache {out}: {len(meta)} trials ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
         f"{records.eeg.shape[1]} x {records.eeg.shape[2]}, {meta['image_id'].nunique()} images")
    return out


def _plan_params(
    source: str | os.PathLike,
    *,
    format: str,
    bandpass: tuple[float, float] | None,
    norm: str,
    sfreq: float | None,
    splits: str | os.PathLike | None,
    fold: int,
    n_chans: int | None,
    subjects: list[int] | None,
    val_fraction: float,
    val_seed: int,
    split_by: str,
    split_fractions: tuple[float, float, float],
    split_seed: int,
) -> tuple[str, Any, float, dict[str, Any]]:
    """Check the options, detect the format and build the fingerprinted parameters.

    Arguments are those of :func:`_prepare_cache`. Returns ``(fmt, things, sfreq, params)``: the
    detected format, the THINGS-EEG2 plan (None for other formats), the sampling rate in Hz (default
    1000, or for THINGS-EEG2 the rate of the files' ``times``) and the parameters written into the
    manifest and hashed into the fingerprint. Raises ConfigError for bad options.
    """
    from eegalign.data.preprocess import NORMS
    from eegalign.data.sources import detect_format

    if norm not in NORMS:
        raise ConfigError(f"unknown --norm {norm!r}: expected one of {', '.join(NORMS)}")
    fmt = detect_format(source, format)
    things = None
    if fmt == "things-eeg2":
        from eegalign.data.things import plan_things, require_layout

        if split_by != "source":
            raise ConfigError("--split-by is for CVPR40-style sources; THINGS-EEG2 keeps its release's zero-shot "
                              "test concepts (validation: --val-fraction of the training concepts)")

        if not 0 < val_fraction < 1:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
        things = plan_things(require_layout(source, subjects), val_fraction=val_fraction, val_seed=val_seed)
        if sfreq is None:
            sfreq = things.notes["sfreq_from_times"] or 1000.0
    sfreq = 1000.0 if sfreq is None else sfreq
    params = {
        "format": fmt,
        "bandpass": None if bandpass is None else [float(bandpass[0]), float(bandpass[1])],
        "norm": norm,
        "sfreq": float(sfreq),
        "n_chans": n_chans,
        **({"splits": str(Path(splits).resolve()) if splits else None, "fold": int(fold)} if fmt == "release" else {}),
        **({"subjects": sorted(things.meta["subject"].unique().tolist()), "val_fraction": float(val_fraction),
            "val_seed": int(val_seed)} if things is not None else {}),
        **_split_params(split_by, split_fractions, split_seed),
    }
    return fmt, things, sfreq, params


def _reusable_or_refuse(out: Path, fp: str, *, overwrite: bool) -> bool:
    """Decide what to do with an existing ``out``: True if it is a complete cache with fingerprint ``fp``
    to reuse (and not ``overwrite``), False if it may be (over)written.

    Raises DataError if ``out`` is a non-empty non-cache directory, a cache of other inputs or
    parameters without ``overwrite``, or a file.
    """
    if not out.exists():
        return False
    existing = _read_manifest(out)
    complete = existing is not None and all((out / f).exists() for f in CACHE_FILES)
    if complete and existing.get("fingerprint") == fp and not overwrite:  # type: ignore[union-attr]
        return True
    if not complete and out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not an eegalign cache; choose another --out (it is never overwritten)")
    if complete and not overwrite:
        raise DataError(
            f"{out} holds a cache prepared from other inputs or parameters (fingerprint "
            f"{existing.get('fingerprint')}, now {fp}); pass --overwrite to replace it or choose another --out"  # type: ignore[union-attr]
        )
    if out.is_file():
        raise DataError(f"{out} is a file; --out must be a directory")
    return False


def _split_and_preprocess(
    records: Any,
    params: dict[str, Any],
    *,
    bandpass: tuple[float, float] | None,
    norm: str,
    sfreq: float,
    strict: bool,
    progress: bool,
    split_by: str,
    split_fractions: tuple[float, float, float],
    split_seed: int,
) -> dict[str, Any]:
    """Re-split ``records.meta`` in place (unless ``split_by`` is ``source``) and preprocess
    ``records.eeg`` ``(N, C, T)`` in place with statistics from the train split; return the stats.

    ``params`` is the manifest parameters (for the progress line); a warning line counts replaced
    non-finite values.
    """
    from eegalign.data.preprocess import preprocess
    from eegalign.data.splits import resplit

    meta = records.meta
    if split_by != "source":
        summary = resplit(meta, split_by, tuple(split_fractions), split_seed)
        meta["split"] = summary.split
        records.notes["split_protocol"] = summary.info
    train_idx = np.flatnonzero(meta["split"].to_numpy() == "train")
    if progress:
        _say(f"preprocessing {len(meta)} trials (norm={norm}, bandpass={params['bandpass']}; statistics from train)")
    stats = preprocess(records.eeg, train_idx, bandpass_hz=bandpass, sfreq=sfreq, norm=norm, strict=strict)
    if stats["nonfinite"]["values"]:
        nf = stats["nonfinite"]
        _say(f"eegalign: warning: replaced {nf['values']} NaN/Inf values by 0 in {nf['trials']} trials (counted in stats.json)")
    return stats


def _write_cache(records: Any, stats: dict[str, Any], source: str | os.PathLike, out: Path, *, fmt: str, fp: str,
                 identity: dict[str, Any], params: dict[str, Any], version: str, progress: bool) -> dict[str, int]:
    """Write the preprocessed ``records`` (EEG ``(N, C, T)``, meta, images, source targets), ``stats``
    and the manifest (last) atomically into ``out``; return the trial counts per split.
    """
    from eegalign.io import atomic_dir, write_json
    from eegalign.outputs import check_writable

    meta = records.meta
    if progress:
        _say(f"writing {out} ({records.eeg.nbytes / 2**30:.2f} GiB of EEG)")
    check_writable(out, need_bytes=_needed_bytes(records.eeg.nbytes))
    with atomic_dir(out, overwrite=out.exists(), kind="cache", command="eegalign data prepare") as tmp:
        np.save(tmp / "eeg.npy", records.eeg)
        meta.to_parquet(tmp / "meta.parquet", index=False)
        (tmp / "images").mkdir()
        _write_images(tmp / "images", records.images)
        copied = _copy_source_targets(Path(source), tmp / "targets", set(meta["image_id"])) if fmt != "hub" else {}
        write_json(tmp / "stats.json", stats)
        counts = {s: int((meta["split"] == s).sum()) for s in ("train", "validation", "test")}
        write_json(
            tmp / "manifest.json",
            {
                "eegalign_version": version,
                "fingerprint": fp,
                "source": str(source),
                "source_identity": {k: v for k, v in identity.items() if k != "files"},
                "format": fmt,
                "params": params,
                "n_trials": int(len(meta)),
                "meta_sha256": file_sha256(tmp / "meta.parquet"),
                "n_chans": int(records.eeg.shape[1]),
                "n_times": int(records.eeg.shape[2]),
                "counts": counts,
                "subjects": sorted(int(s) for s in meta["subject"].unique()),
                "n_images": int(meta["image_id"].nunique()),
                "classes": records.classes,
                "images": f"{len(records.images)} stimulus images in images/" if records.images else records.notes.get("images", "none"),
                "targets": copied,
                "notes": records.notes,
            },
        )
    return counts


def _stream_eeg(path: Path, shape: tuple[int, int, int], blocks: Any, train: np.ndarray, *,
                bandpass_hz: tuple[float, float] | None, sfreq: float, norm: str, strict: bool,
                progress: bool) -> dict[str, Any]:
    """Write ``(N, C, T)`` float32 ``eeg.npy`` from ``(row, (n, C, T))`` blocks; return stats.json content.

    Two passes over the file with plain reads and writes (no memory map of the whole array, so the
    resident memory is one block at a time whatever N is): the first scrubs non-finite values,
    band-passes and writes each block while accumulating the train rows' moments (``train`` (N,)
    bool); the second z-scores the file in place with those train-only statistics.
    """
    from tqdm.auto import tqdm

    from eegalign.data.preprocess import RunningMoments, apply_zscore, bandpass, describe, scrub_nonfinite

    n, c, t = shape
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)  # header + sparse file
    offset, row_bytes = mm.offset, c * t * 4
    del mm
    moments, bad_trials, bad_values = RunningMoments(norm), 0, 0
    bar = tqdm(total=2 * n, desc="streaming EEG", unit="trial", disable=not progress, file=sys.stderr)
    with open(path, "r+b") as f:
        for row, x in blocks:  # x: (b, C, T) float32
            bt, bv = scrub_nonfinite(x)
            bad_trials, bad_values = bad_trials + bt, bad_values + bv
            if bandpass_hz is not None:
                bandpass(x, float(bandpass_hz[0]), float(bandpass_hz[1]), sfreq)
            moments.add(x[train[row : row + len(x)]])
            f.seek(offset + row * row_bytes)
            x.tofile(f)
            bar.update(len(x))
        if bad_values and strict:
            raise DataError(f"{bad_trials} trials contain NaN/Inf values ({bad_values} values); refusing under --strict")
        z = moments.stats()
        step = max(1, (64 << 20) // row_bytes)
        for lo in range(0, n, step):
            f.seek(offset + lo * row_bytes)
            x = np.fromfile(f, dtype=np.float32, count=min(step, n - lo) * c * t).reshape(-1, c, t)  # (b, C, T)
            apply_zscore(x, z)
            f.seek(offset + lo * row_bytes)
            x.tofile(f)
            bar.update(len(x))
    bar.close()
    return describe(z, (bad_trials, bad_values), bandpass_hz, sfreq)


def _prepare_things(plan: Any, source: Path, out: Path, *, params: dict[str, Any], fp: str, identity: dict[str, Any],
                    version: str, strict: bool, progress: bool) -> Path:
    """Stream a THINGS-EEG2 plan (:func:`eegalign.data.things.plan_things`) into the cache at ``out``."""
    import shutil

    from eegalign.data.things import iter_blocks
    from eegalign.io import atomic_dir, write_json
    from eegalign.outputs import check_writable

    meta = plan.meta
    if params.get("n_chans") is not None and params["n_chans"] != plan.n_chans:
        raise DataError(f"{source}: trials have {plan.n_chans} channels, --n-chans says {params['n_chans']}")
    shape = (len(meta), plan.n_chans, plan.n_times)
    if progress:
        _say(f"streaming {shape[0]} trials of {shape[1]} x {shape[2]} ({shape[0] * shape[1] * shape[2] * 4 / 2**30:.2f} GiB) "
             f"from {len(params['subjects'])} subject(s) into {out}")
    check_writable(out, need_bytes=_needed_bytes(shape[0] * shape[1] * shape[2] * 4))
    with atomic_dir(out, overwrite=out.exists(), kind="cache", command="eegalign data prepare") as tmp:
        stats = _stream_eeg(tmp / "eeg.npy", shape, iter_blocks(plan), meta["split"].to_numpy() == "train",
                            bandpass_hz=params["bandpass"], sfreq=params["sfreq"], norm=params["norm"], strict=strict,
                            progress=progress)
        if stats["nonfinite"]["values"]:
            nf = stats["nonfinite"]
            _say(f"eegalign: warning: replaced {nf['values']} NaN/Inf values by 0 in {nf['trials']} trials (counted in stats.json)")
        meta.to_parquet(tmp / "meta.parquet", index=False)
        (tmp / "images").mkdir()
        for iid, src in plan.images.items():
            shutil.copyfile(src, tmp / "images" / f"{iid}{src.suffix.lower() if src.suffix.lower() in ('.jpg', '.png', '.jpeg') else '.jpg'}")
        copied = _copy_source_targets(source, tmp / "targets", set(meta["image_id"]))
        write_json(tmp / "stats.json", stats)
        counts = {s: int((meta["split"] == s).sum()) for s in ("train", "validation", "test")}
        write_json(tmp / "manifest.json", {
            "eegalign_version": version, "fingerprint": fp, "source": str(source),
            "source_identity": {k: v for k, v in identity.items() if k != "files"}, "format": "things-eeg2",
            "params": params, "n_trials": int(len(meta)), "meta_sha256": file_sha256(tmp / "meta.parquet"), "n_chans": shape[1], "n_times": shape[2], "counts": counts,
            "subjects": params["subjects"], "n_images": int(meta["image_id"].nunique()), "classes": plan.classes,
            "images": f"{len(plan.images)} stimulus images in images/", "targets": copied, "notes": plan.notes,
        })
    _say(f"wrote cache {out}: {len(meta)} trials ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
         f"{shape[1]} x {shape[2]}, {meta['image_id'].nunique()} images, one row per repetition")
    return out
def _needed_bytes(eeg_bytes: int) -> int:
    """Free space a new cache needs beside ``out``: its EEG plus 5% and 16 MiB for the rest.

    A cache being replaced stays until the new one is complete, so its size is not counted as free.
    """
    return int(eeg_bytes * 1.05) + (16 << 20)


def _split_params(split_by: str, fractions: tuple[float, float, float], seed: int) -> dict[str, Any]:
    """Split-protocol parameters for the fingerprint (none for ``source``: existing caches stay valid)."""
    from eegalign.data.splits import PROTOCOLS

    if split_by not in PROTOCOLS:
        raise ConfigError(f"unknown --split-by {split_by!r}: expected one of {', '.join(PROTOCOLS)}")
    if split_by == "source":
        return {}
    return {"split_by": split_by, "split_fractions": [float(f) for f in fractions], "split_seed": int(seed)}


def _write_images(folder: Path, images: dict[str, bytes]) -> None:
    from eegalign.data.sources import image_suffix

    for iid, data in images.items():
        suffix = image_suffix(data)
        if suffix:
            (folder / f"{iid}{suffix}").write_bytes(data)
        else:  # an encoding we do not keep as is: decode and store as PNG
            import io

            from PIL import Image

            Image.open(io.BytesIO(data)).save(folder / f"{iid}.png")


def _copy_source_targets(source: Path, dest: Path, image_ids: set[str]) -> dict[str, str]:
    """Copy ``source/targets/<route>.safetensors`` (synthetic ground truth) keyed by image_id."""
    from eegalign.io import load_tensors, save_tensors

    copied: dict[str, str] = {}
    folder = source / "targets" if source.is_dir() else None
    if folder is None or not folder.is_dir():
        return copied
    for route in ROUTES:
        f = folder / f"{route}.safetensors"
        if not f.is_file():
            continue
        arrays, meta = load_tensors(f)
        try:
            ids = json.loads(meta["image_ids"])
            emb = arrays["embeddings"]
        except (KeyError, ValueError) as e:
            raise DataError(f"{f} lacks 'embeddings' or the 'image_ids' metadata") from e
        row_of = {iid: i for i, iid in enumerate(ids)}
        missing = image_ids - set(row_of)
        if missing:
            _say(f"eegalign: warning: {f} has no target for {len(missing)} of the cache's images; not copied")
            continue
        keep = sorted(image_ids)
        dest.mkdir(exist_ok=True)
        save_tensors(
            dest / f"{route}.safetensors",
            {"embeddings": emb[[row_of[i] for i in keep]]},
            {"image_ids": keep, "model": meta.get("model", "synthetic"), "route": route},
        )
        copied[route] = f"copied from {f}"
    return copied


@dataclass
class Targets:
    """CLIP targets of a cache: ``embeddings`` (M, ...) with ``image_ids`` in row order."""

    embeddings: np.ndarray
    image_ids: list[str]
    model: str
    route: str

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {iid: i for i, iid in enumerate(self.image_ids)}


class Cache:
    """Read access to a prepared cache; open with :meth:`Cache.open`."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self._targets: dict[str, Targets] = {}

    @classmethod
    def open(cls, path: str | os.PathLike) -> Cache:
        """Open a complete cache, or raise :class:`DataError` saying what is missing."""
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"cache not found: {path} (create it with `eegalign data prepare --source SRC --out {path}`)")
        missing = [f for f in CACHE_FILES if not (path / f).is_file()]
        manifest = _read_manifest(path)
        if missing or manifest is None:
            what = missing[0] if missing else "manifest.json (unreadable)"
            raise DataError(f"{path} is not a complete eegalign cache (no {what}); run `eegalign data prepare` again")
        from eegalign.data.cache_check import check_cache

        cache = cls(path, manifest)
        check_cache(cache)  # the files agree with each other, or one line saying what is wrong
        return cache

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r}, n={len(self.meta)}, shape={self.n_chans}x{self.n_times})"

    @cached_property
    def eeg(self) -> np.ndarray:
        """``(N, C, T)`` float32, memory-mapped read-only."""
        try:
            return np.load(self.path / "eeg.npy", mmap_mode="r")
        except ValueError as e:
            raise DataError(f"{self.path / 'eeg.npy'} is unreadable ({e})") from e

    @cached_property
    def meta(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.path / "meta.parquet")

    @cached_property
    def stats(self) -> dict[str, Any]:
        return json.loads((self.path / "stats.json").read_text())

    @property
    def n_chans(self) -> int:
        return int(self.manifest["n_chans"])

    @property
    def n_times(self) -> int:
        return int(self.manifest["n_times"])

    @property
    def classes(self) -> list[str]:
        """wnid of each integer label (index = label)."""
        return list(self.manifest["classes"])

    def split_indices(self, split: str, subjects: list[int] | None = None) -> np.ndarray:
        """Row indices (int64, ascending) of ``split``, optionally restricted to ``subjects``."""
        from eegalign.data.sources import SPLIT_ALIASES

        name = SPLIT_ALIASES.get(split)
        if name is None:
            raise ConfigError(f"unknown split {split!r}: expected train, validation or test")
        mask = self.meta["split"].to_numpy() == name
        if subjects is not None:
            mask &= np.isin(self.meta["subject"].to_numpy(), np.asarray(list(subjects), dtype=np.int64))
        return np.flatnonzero(mask).astype(np.int64)

    def image_path(self, image_id: str) -> Path:
        for suffix in (".jpg", ".png", ".jpeg"):
            p = self.path / "images" / f"{image_id}{suffix}"
            if p.is_file():
                return p
        raise DataError(f"{self.path}: no stimulus image for image_id {image_id} in images/")

    def targets_path(self, route: str) -> Path:
        if route not in ROUTES:
            raise ConfigError(f"unknown route {route!r}: expected image or text")
        return self.path / "targets" / f"{route}.safetensors"

    def has_targets(self, route: str) -> bool:
        return self.targets_path(route).is_file()

    def _require_targets(self, route: str) -> Path:
        p = self.targets_path(route)
        if not p.is_file():
            raise DataError(
                f"cache {self.path} has no {route} targets: run `eegalign embed --cache {self.path} --route {route}` first "
                "(synthetic data sets ship their targets: prepare the cache from the synthetic directory)"
            )
        return p

    def target_shape(self, route: str) -> tuple[int, ...]:
        """Shape of one target (e.g. ``(1024,)`` or ``(77, 768)``), read without loading the file."""
        from safetensors import safe_open

        p = self._require_targets(route)
        try:
            with safe_open(str(p), framework="numpy") as f:
                return tuple(int(d) for d in f.get_slice("embeddings").get_shape()[1:])
        except Exception as e:
            raise DataError(f"{p} is not a readable targets file ({e})") from e

    def targets(self, route: str) -> Targets:
        if route not in self._targets:
            from eegalign.io import load_tensors

            arrays, meta = load_tensors(self._require_targets(route))
            try:
                t = Targets(
                    embeddings=np.asarray(arrays["embeddings"], dtype=np.float32),
                    image_ids=list(json.loads(meta["image_ids"])),
                    model=meta.get("model", ""),
                    route=meta.get("route", route),
                )
            except (KeyError, ValueError) as e:
                raise DataError(f"{self.targets_path(route)} lacks 'embeddings' or the 'image_ids' metadata") from e
            if len(t.image_ids) != len(t.embeddings):
                raise DataError(f"{self.targets_path(route)}: {len(t.image_ids)} image_ids for {len(t.embeddings)} rows")
            if not all(isinstance(i, str) for i in t.image_ids) or len(set(t.image_ids)) != len(t.image_ids):
                raise DataError(f"{self.targets_path(route)}: 'image_ids' must be distinct strings; run `eegalign embed "
                                f"--cache {self.path} --route {route}` again")
            if not np.isfinite(t.embeddings).all():
                raise DataError(f"{self.targets_path(route)} holds NaN or Inf values; run `eegalign embed --cache "
                                f"{self.path} --route {route}` again")
            self._targets[route] = t
        return self._targets[route]

    def target_rows(self, route: str, indices: np.ndarray) -> np.ndarray:
        """Row of each trial's target in ``targets(route).embeddings`` (int64, looked up by image_id)."""
        t = self.targets(route)
        ids = self.meta["image_id"].to_numpy()[np.asarray(indices, dtype=np.int64)]
        try:
            return np.fromiter((t.row_of[i] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as e:
            raise DataError(
                f"{self.targets_path(route)} has no target for image {e.args[0]}; run `eegalign embed --cache {self.path}` again"
            ) from e

    def trial_targets(self, route: str, indices: np.ndarray) -> np.ndarray:
        """``(len(indices), *target_shape)`` targets of the given trials."""
        return self.targets(route).embeddings[self.target_rows(route, indices)]
