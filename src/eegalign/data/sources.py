"""Readers: every supported source -> one canonical :class:`Records` set.

Sources (``detect_format`` picks one):

* ``hub``     -- a Hugging Face hub id such as ``luigi-s/EEG_Image_CVPR_ALL_subj`` (via ``datasets``);
* ``parquet`` -- a local directory of parquet files: ``<split>.parquet``, ``<split>-*.parquet`` or
  ``data/<split>-*.parquet`` (the hub's own layout);
* ``disk``    -- a ``datasets`` ``save_to_disk`` directory (a ``DatasetDict``);
* ``release`` -- the original CVPR40 release ``.pth`` (Spampinato et al. 2017) plus its splits file;
* ``things-eeg2`` -- the THINGS-EEG2 release directory (Gifford et al. 2022), streamed into the cache
  by :mod:`eegalign.data.things` and ``eegalign.data.cache`` (never through :class:`Records`).

The hub schema has columns ``conditioning_image`` (one EEG trial, 440 x 128 or 128 x 440, as nested
lists or a fixed 2-D array), ``image`` (JPEG bytes), ``caption``, ``label_folder`` (wnid), ``label``
and ``subject``. EEG is converted column-wise through pyarrow (never row by row in Python) and is
returned channels first: ``(N, C, T)`` float32. ``image_id`` is the first 16 hex digits of the SHA-1
of the image bytes (hub data) or of the image name (release), so every trial that showed the same
picture shares one id.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import ConfigError, DataError, first_line

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation", "test": "test"}
EEG_COLUMN = "conditioning_image"
HUB_COLUMNS = (EEG_COLUMN, "image", "caption", "label_folder", "label", "subject")
ORDER_COLUMNS = ("session", "block", "trial_index")  # optional: presentation order, kept in meta when every split has them
RELEASE_MIN_LEN, RELEASE_MAX_LEN = 450, 600  # keep trials of 450..600 samples (as the peers do)
RELEASE_CROP = (20, 460)  # then crop samples 20:460 -> 440 samples
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BATCH_ROWS = 256
FORMATS = ("auto", "hf", "release", "things-eeg2")


def image_id_from_bytes(data: bytes) -> str:
    """The id of an image: the first 16 hex digits of the SHA-1 of its encoded bytes."""
    return hashlib.sha1(data).hexdigest()[:16]


def image_id_from_name(name: str) -> str:
    """The id of a release image, which has no pixels: SHA-1 of its name (16 hex digits)."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]


def image_suffix(data: bytes) -> str:
    """File suffix of encoded image bytes (``.jpg`` / ``.png``; anything else is re-encoded as PNG)."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    return ""


@dataclass
class Records:
    """The canonical record set every reader returns.

    ``eeg`` is ``(N, C, T)`` float32 (raw, not yet preprocessed); ``meta`` has one row per trial with
    columns ``split, subject, label, label_folder, caption, image_id``; ``images`` maps image_id to
    encoded bytes (empty when the source has no pixels); ``classes[label]`` is the label's wnid.
    """

    eeg: np.ndarray
    meta: Any  # pandas.DataFrame
    images: dict[str, bytes]
    classes: list[str]
    format: str
    source: str
    notes: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# format detection


def _split_files(root: Path) -> dict[str, list[Path]]:
    """Parquet files per split in ``root`` (``<split>.parquet``, ``<split>-*.parquet``, ``data/...``)."""
    found: dict[str, list[Path]] = {}
    for folder in (root, root / "data"):
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.parquet")):
            stem = f.name[: -len(".parquet")]
            key = stem.split("-", 1)[0]
            split = SPLIT_ALIASES.get(key)
            if split is not None:
                found.setdefault(split, []).append(f)
    return found


def detect_format(source: str | Path, format: str = "auto") -> str:
    """Return one of ``hub``, ``parquet``, ``disk``, ``release``, ``things-eeg2`` for ``source``.

    ``format`` is ``auto`` (decide from the source), ``hf`` (any of hub/parquet/disk), ``release`` or
    ``things-eeg2`` (the THINGS-EEG2 release directory, read by :mod:`eegalign.data.things`).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown --format {format!r}: expected one of {', '.join(FORMATS)}")
    path = Path(source)
    if format == "things-eeg2" or (format == "auto" and path.is_dir()):
        from eegalign.data.things import find_layout, require_layout

        if format == "things-eeg2":
            require_layout(path)  # a one-line DataError naming what is missing
            return "things-eeg2"
        if find_layout(path) is not None:
            return "things-eeg2"
    if path.exists():
        if path.is_file():
            if format == "release" or path.suffix in (".pth", ".pt"):
                if format == "hf":
                    raise DataError(f"{path} is a file; --format hf expects a hub id or a directory")
                return "release"
            raise DataError(
                f"{path} is a file: pass the directory holding the split parquet files, or a release .pth with --format release"
            )
        if format == "release":
            raise DataError(f"--format release expects the release .pth file, got the directory {path}")
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "disk"
        if _split_files(path):
            return "parquet"
        raise DataError(
            f"no train/validation/test parquet files and no save_to_disk data set found in {path}"
        )
    if format != "release" and _HUB_ID.match(str(source)) and not str(source).startswith("."):
        return "hub"
    raise DataError(f"source not found: {source}")


# ----------------------------------------------------------------------------------------------
# column-wise EEG conversion


def _orientation(shape: tuple[int, int], n_chans: int | None, where: str) -> bool:
    """True if trials of ``shape`` are time x channels (and must be transposed)."""
    a, b = shape
    if n_chans is not None:
        if a == n_chans:
            return False
        if b == n_chans:
            return True
        raise DataError(f"{where}: EEG trial shape {a} x {b} has no dimension of {n_chans} channels")
    if min(a, b) < 1:
        raise DataError(f"{where}: empty EEG trial of shape {a} x {b}")
    return b < a  # the smaller dimension is channels


def eeg_from_arrow(arr: Any, *, expect: tuple[int, int] | None, where: str, first_row: int = 0) -> np.ndarray:
    """Convert one arrow array of 2-D trials (nested lists or a fixed 2-D array) to ``(n, A, B)``.

    ``expect`` is the raw (A, B) shape every row must have (None: take the first row's). A row of
    another shape raises :class:`DataError` naming it (``first_row`` offsets the reported index).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr, pa.ExtensionArray):  # datasets' Array2D extension type
        arr = arr.storage
    n = len(arr)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        raise DataError(f"{where}: the EEG column has type {arr.type}, expected a 2-D array or nested lists")
    if n == 0:
        return np.zeros((0, *(expect or (0, 0))), dtype=np.float32)
    if arr.null_count:
        bad = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where}: row {first_row + bad} has no EEG (null)")
    outer = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    inner_arr = pc.list_flatten(arr)
    if not (pa.types.is_list(inner_arr.type) or pa.types.is_large_list(inner_arr.type) or pa.types.is_fixed_size_list(inner_arr.type)):
        raise DataError(f"{where}: the EEG column has type {arr.type}, expected a 2-D array or nested lists")
    inner = pc.list_value_length(inner_arr).to_numpy(zero_copy_only=False)
    if expect is None:
        expect = (int(outer[0]), int(inner[0]) if len(inner) else 0)
    a, b = expect
    bad_rows = np.flatnonzero(outer != a)
    if bad_rows.size:
        r = int(bad_rows[0])
        start = int(outer[:r].sum())
        b_r = int(inner[start]) if outer[r] else 0
        raise DataError(
            f"{where}: row {first_row + r} has EEG shape {int(outer[r])} x {b_r}, expected {a} x {b} "
            "(ragged or mismatched trial shape)"
        )
    bad_inner = np.flatnonzero(inner != b)
    if bad_inner.size:
        r = int(bad_inner[0]) // a
        row_inner = inner[r * a : (r + 1) * a]
        if (row_inner == row_inner[0]).all():
            raise DataError(
                f"{where}: row {first_row + r} has EEG shape {a} x {int(row_inner[0])}, expected {a} x {b} "
                "(mismatched trial shape)"
            )
        raise DataError(
            f"{where}: row {first_row + r} is ragged (an EEG row of {int(inner[bad_inner[0]])} values, expected {b})"
        )
    values = pc.list_flatten(inner_arr).to_numpy(zero_copy_only=False)
    if values.dtype.kind not in "fiu":
        raise DataError(f"{where}: EEG values have type {values.dtype}, expected numbers")
    return values.astype(np.float32, copy=False).reshape(n, a, b)


def _image_bytes(arr: Any, where: str, root: Path | None) -> list[bytes]:
    """Encoded bytes per row of a datasets Image column (struct{bytes, path}) or a binary column."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_struct(arr.type):
        names = [arr.type.field(i).name for i in range(arr.type.num_fields)]
        data = arr.field("bytes").to_pylist() if "bytes" in names else [None] * len(arr)
        paths = arr.field("path").to_pylist() if "path" in names else [None] * len(arr)
    elif pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        data, paths = arr.to_pylist(), [None] * len(arr)
    else:
        raise DataError(f"{where}: the image column has type {arr.type}, expected an image (bytes)")
    out = []
    for i, (d, p) in enumerate(zip(data, paths)):
        if d is None and p:
            cand = Path(p) if Path(p).is_absolute() or root is None else root / p
            if cand.is_file():
                d = cand.read_bytes()
        if not d:
            raise DataError(f"{where}: row {i} has no image bytes")
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------------
# hub schema (parquet / save_to_disk / hub id)


@dataclass
class _SplitPart:
    """One table of a split: its row count and a factory of record batches."""

    num_rows: int
    batches: Callable[[], Iterator[Any]]
    name: str


def _parquet_parts(files: list[Path]) -> list[_SplitPart]:
    import pyarrow.parquet as pq

    parts = []
    for f in files:
        try:
            # no pre-buffering: it would keep every column chunk of the file in memory (~the file size)
            pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 22)
            names = pf.schema_arrow.names
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for corrupt files
            raise DataError(f"{f} is not a readable parquet file ({first_line(e)})") from e
        missing = [c for c in HUB_COLUMNS if c not in names]
        if missing:
            raise DataError(f"{f}: missing column {missing[0]!r} (columns: {', '.join(names)})")
        wanted = list(HUB_COLUMNS) + [c for c in ORDER_COLUMNS if c in names]

        def batches(pf: Any = pf, f: Path = f, wanted: list[str] = wanted) -> Iterator[Any]:
            try:
                yield from pf.iter_batches(batch_size=_BATCH_ROWS, columns=wanted)
            except Exception as e:
                if isinstance(e, DataError):
                    raise
                raise DataError(f"{f} is not a readable parquet file ({first_line(e)})") from e

        parts.append(_SplitPart(pf.metadata.num_rows, batches, str(f)))
    return parts


def _table_parts(dsdict: Any, where: str) -> dict[str, list[_SplitPart]]:
    """Parts of a ``datasets.DatasetDict`` (hub or save_to_disk) through its arrow tables."""
    out: dict[str, list[_SplitPart]] = {}
    for key in dsdict:
        split = SPLIT_ALIASES.get(str(key))
        if split is None:
            continue
        ds = dsdict[key]
        table = ds.data.table if hasattr(ds.data, "table") else ds.data
        if getattr(ds, "_indices", None) is not None:
            table = ds.with_format(None).flatten_indices().data.table
        missing = [c for c in HUB_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"{where} [{key}]: missing column {missing[0]!r} (columns: {', '.join(table.column_names)})")
        table = table.select(list(HUB_COLUMNS) + [c for c in ORDER_COLUMNS if c in table.column_names])

        def batches(table: Any = table) -> Iterator[Any]:
            yield from table.to_batches(max_chunksize=_BATCH_ROWS)

        out.setdefault(split, []).append(_SplitPart(table.num_rows, batches, f"{where} [{key}]"))
    return out


def _check_hub_splits(parts: dict[str, list[_SplitPart]], source: str) -> int:
    """Refuse a missing or empty train/validation/test split; return the total row count."""
    for split in SPLITS:
        if split not in parts:
            raise DataError(f"{source}: no {split} split found (need train, validation and test)")
        if sum(p.num_rows for p in parts[split]) == 0:
            raise DataError(f"{source}: the {split} split is empty")
    return sum(p.num_rows for split in SPLITS for p in parts[split])


@dataclass
class _EegSink:
    """Preallocated ``(total, C, T)`` float32 EEG filled batch by batch, channels first.

    The first batch fixes the raw trial shape and (with ``n_chans``) whether trials are time x channels.
    """

    total: int
    n_chans: int | None
    eeg: np.ndarray | None = None  # (total, C, T) once the first batch arrived
    raw_shape: tuple[int, int] | None = None
    transpose: bool = False
    pos: int = 0

    def add(self, column: Any, where: str, first_row: int) -> None:
        """Convert one arrow EEG ``column`` (rows ``first_row``.. of ``where``) and append it."""
        x = eeg_from_arrow(column, expect=self.raw_shape, where=where, first_row=first_row)
        if self.raw_shape is None:
            self.raw_shape = (x.shape[1], x.shape[2])
            self.transpose = _orientation(self.raw_shape, self.n_chans, where)
            c, t = (self.raw_shape[1], self.raw_shape[0]) if self.transpose else self.raw_shape
            self.eeg = np.empty((self.total, c, t), dtype=np.float32)
        assert self.eeg is not None
        n = len(x)
        self.eeg[self.pos : self.pos + n] = x.transpose(0, 2, 1) if self.transpose else x  # (n, T, C) -> (n, C, T)
        self.pos += n


@dataclass
class _MetaColumns:
    """Per-trial metadata and unique image bytes gathered batch by batch from hub-schema tables."""

    cols: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ("split", "subject", "label", "label_folder", "caption", "image_id")}
    )
    images: dict[str, bytes] = field(default_factory=dict)  # image_id -> encoded bytes
    order_cols: dict[str, list[np.ndarray]] = field(default_factory=dict)  # ORDER_COLUMNS present, per batch

    def add(self, batch: Any, split: str, where: str, root: Path | None) -> None:
        """Append the metadata of one arrow record ``batch`` of ``split`` (image paths resolve under ``root``)."""
        cols = self.cols
        for data in _image_bytes(batch.column("image"), where, root):
            iid = image_id_from_bytes(data)
            self.images.setdefault(iid, data)
            cols["image_id"].append(iid)
        for name in ("subject", "label"):
            v = batch.column(name)
            if v.null_count:
                raise DataError(f"{where}: column {name!r} has missing values")
            cols[name].append(np.asarray(v.to_numpy(zero_copy_only=False), dtype=np.int64))
        cols["label_folder"].extend(str(s) for s in batch.column("label_folder").to_pylist())
        cols["caption"].extend("" if s is None else str(s) for s in batch.column("caption").to_pylist())
        cols["split"].extend([split] * batch.num_rows)
        for name in ORDER_COLUMNS:
            if name in batch.schema.names:
                self.order_cols.setdefault(name, []).append(
                    np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)
                )

    def frame(self, total: int) -> Any:
        """The ``meta`` DataFrame of ``total`` rows; an order column only when every part had it."""
        import pandas as pd

        cols = self.cols
        meta = pd.DataFrame(
            {
                "split": cols["split"],
                "subject": np.concatenate(cols["subject"]),
                "label": np.concatenate(cols["label"]),
                "label_folder": cols["label_folder"],
                "caption": cols["caption"],
                "image_id": cols["image_id"],
            }
        )
        for name, parts_of in self.order_cols.items():  # a column some parts lack says nothing about order: dropped
            values = np.concatenate(parts_of)
            if len(values) == total:
                meta[name] = values
        return meta


def _read_hub_schema(
    parts: dict[str, list[_SplitPart]], *, fmt: str, source: str, n_chans: int | None, root: Path | None, progress: bool
) -> Records:
    """Read the hub-schema ``parts`` of every split into :class:`Records` (EEG ``(N, C, T)``, split order).

    ``fmt``/``source`` are recorded; ``n_chans`` decides the orientation; image paths resolve under ``root``.
    """
    from tqdm.auto import tqdm

    total = _check_hub_splits(parts, source)
    sink = _EegSink(total=total, n_chans=n_chans)
    meta_cols = _MetaColumns()
    bar = tqdm(total=total, desc="reading trials", unit="trial", disable=not progress, file=sys.stderr)
    for split in SPLITS:
        for part in parts[split]:
            row0 = 0
            for batch in part.batches():
                sink.add(batch.column(EEG_COLUMN), part.name, row0)
                meta_cols.add(batch, split, part.name, root)
                row0 += batch.num_rows
                bar.update(batch.num_rows)
    bar.close()
    if sink.pos != total:
        raise DataError(f"{source}: expected {total} rows, read {sink.pos}")
    meta = meta_cols.frame(total)
    assert sink.eeg is not None
    return Records(
        eeg=sink.eeg,
        meta=meta,
        images=meta_cols.images,
        classes=_classes_from_meta(meta, source),
        format=fmt,
        source=source,
        notes={"raw_trial_shape": list(sink.raw_shape or ()), "transposed": sink.transpose},
    )


def _classes_from_meta(meta: Any, source: str) -> list[str]:
    """wnid of each integer label, from the (label, label_folder) pairs; one wnid per label."""
    pairs = meta[["label", "label_folder"]].drop_duplicates()
    dup = pairs["label"].duplicated()
    if dup.any():
        lab = int(pairs["label"][dup].iloc[0])
        raise DataError(f"{source}: label {lab} maps to several label_folder values")
    if (pairs["label"] < 0).any():
        raise DataError(f"{source}: negative labels")
    classes = [""] * (int(pairs["label"].max()) + 1)
    for lab, wnid in zip(pairs["label"], pairs["label_folder"]):
        classes[int(lab)] = str(wnid)
    return classes


def read_parquet_dir(path: str | Path, *, n_chans: int | None = None, progress: bool = True) -> Records:
    """Read a local directory of split parquet files in the hub schema."""
    root = Path(path)
    files = _split_files(root)
    parts = {split: _parquet_parts(fs) for split, fs in files.items()}
    records = _read_hub_schema(parts, fmt="parquet", source=str(root), n_chans=n_chans, root=root, progress=progress)
    if (root / "synthetic.json").is_file():  # eegalign's simulator: epochs start at stimulus onset
        records.notes["epoch_start_ms"] = 0.0
    return records


def read_saved_dataset(path: str | Path, *, n_chans: int | None = None, progress: bool = True) -> Records:
    """Read a ``datasets`` ``save_to_disk`` directory holding a DatasetDict with the three splits."""
    import datasets

    root = Path(path)
    try:
        ds = datasets.load_from_disk(str(root))
    except Exception as e:
        raise DataError(f"{root} is not a readable save_to_disk data set ({first_line(e)})") from e
    if not isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{root} holds a single split; save the whole DatasetDict (train/validation/test)")
    return _read_hub_schema(_table_parts(ds, str(root)), fmt="disk", source=str(root), n_chans=n_chans, root=root, progress=progress)


def read_hub(hub_id: str, *, n_chans: int | None = None, progress: bool = True, revision: str | None = None) -> Records:
    """Read the hub data set ``hub_id`` through ``datasets.load_dataset`` (uses the local HF cache)."""
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, revision=revision)
    except Exception as e:
        raise DataError(
            f"could not load the hub data set '{hub_id}' ({type(e).__name__}): it is not in the local "
            "Hugging Face cache and the hub is unreachable or the id is unknown; download it where there is "
            "internet access and pass its local directory with --source PATH"
        ) from e
    return _read_hub_schema(_table_parts(ds, hub_id), fmt="hub", source=hub_id, n_chans=n_chans, root=None, progress=progress)


# ----------------------------------------------------------------------------------------------
# the original release (.pth + splits)


def _safe_torch_load(path: Path, what: str) -> Any:
    import pickle

    import torch

    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise DataError(
            f"{path} is not a plain-tensor {what} (it carries a pickled object payload, which eegalign refuses "
            "to unpickle); re-save it with plain tensors, lists and dicts"
        ) from e
    except Exception as e:
        raise DataError(f"{path} is not a readable {what} ({first_line(e)})") from e


def _load_release(path: Path) -> dict:
    """The release ``.pth`` as a dict with ``dataset``, ``labels`` and ``images``; DataError otherwise."""
    obj = _safe_torch_load(path, "release file")
    if not isinstance(obj, dict) or not {"dataset", "labels", "images"} <= set(obj):
        keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{path} is not the CVPR40 release format (need a dict with dataset, labels, images; got {keys})")
    return obj


def _load_fold(splits: str | Path | None, fold: int) -> dict:
    """Fold ``fold`` of the splits file ``splits`` (``splits[fold]``, optionally under a ``"splits"`` key)."""
    if splits is None:
        raise DataError("the release format needs its splits file: pass --splits FILE [--fold N]")
    sobj = _safe_torch_load(Path(splits), "splits file")
    if isinstance(sobj, dict) and "splits" in sobj:
        sobj = sobj["splits"]
    try:
        fold_splits = sobj[fold]
    except (IndexError, KeyError, TypeError) as e:
        raise DataError(f"{splits}: no fold {fold} in the splits file") from e
    if not isinstance(fold_splits, dict):
        raise DataError(f"{splits}: fold {fold} is not a dict with train/val/test index lists")
    return fold_splits


def _assign_splits(fold_splits: dict, n_trials: int, splits: str | Path, fold: int) -> dict[int, str]:
    """Trial index -> canonical split name from one fold's index lists (unknown keys ignored).

    Refuses an index outside ``0..n_trials-1`` or a trial in two splits (``splits``/``fold`` name the file).
    """
    assignment: dict[int, str] = {}
    for key, idx in fold_splits.items():
        split = SPLIT_ALIASES.get(str(key))
        if split is None:
            continue
        for i in (idx.tolist() if hasattr(idx, "tolist") else list(idx)):
            i = int(i)
            if i in assignment and assignment[i] != split:
                raise DataError(f"{splits}: trial {i} is in both the {assignment[i]} and {split} splits of fold {fold}")
            if not 0 <= i < n_trials:
                raise DataError(f"{splits}: index {i} is outside the data set ({n_trials} trials)")
            assignment[i] = split
    return assignment


def _kept_by_length(
    dataset: list, assignment: dict[int, str], path: Path, n_chans: int | None
) -> tuple[dict[str, list[int]], int]:
    """Per split, the assigned trials (ascending) of ``RELEASE_MIN_LEN..RELEASE_MAX_LEN`` samples.

    Trials the peers' length rule keeps but that end before the crop's last sample (450..459
    samples) would come out shorter than 440 samples: they are left out too, counted and warned
    about. Returns ``(kept, n_too_short_for_crop)``. Checks every assigned entry: a dict with a
    2-D ``eeg`` tensor whose channel count is ``n_chans`` (when given) and the same as the first trial's.
    """
    import torch

    kept: dict[str, list[int]] = {s: [] for s in SPLITS}
    chans: int | None = None
    short = 0
    for i in sorted(assignment):
        d = dataset[i]
        if not isinstance(d, dict) or not {"eeg", "label", "image", "subject"} <= set(d):
            raise DataError(f"{path}: dataset entry {i} is not a dict with eeg, label, image, subject")
        e = d["eeg"]
        if not isinstance(e, torch.Tensor) or e.ndim != 2:
            raise DataError(f"{path}: dataset entry {i} has no 2-D eeg tensor")
        if n_chans is not None and e.shape[0] != n_chans:
            raise DataError(f"{path}: dataset entry {i} has {e.shape[0]} channels, expected {n_chans}")
        if chans is None:
            chans = int(e.shape[0])
        elif e.shape[0] != chans:
            raise DataError(f"{path}: dataset entry {i} has {e.shape[0]} channels, expected {chans} like the first trial")
        if RELEASE_MIN_LEN <= e.shape[1] <= RELEASE_MAX_LEN:
            if e.shape[1] < RELEASE_CROP[1]:
                short += 1
            else:
                kept[assignment[i]].append(i)
    if short:
        print(f"eegalign: warning: {short} trial(s) of {RELEASE_MIN_LEN}..{RELEASE_CROP[1] - 1} samples are too short for "
              f"the {RELEASE_CROP[0]}:{RELEASE_CROP[1]} crop and are left out", file=sys.stderr)
    return kept, short


def _release_eeg(dataset: list, order: list[int], progress: bool) -> np.ndarray:
    """The trials ``order`` cropped to ``RELEASE_CROP``: (N, C, 440) float32."""
    import torch

    lo, hi = RELEASE_CROP
    it: Iterable[int] = order
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(order, desc="reading trials", unit="trial", file=sys.stderr)
    eeg = torch.stack([dataset[i]["eeg"][:, lo:hi].float() for i in it]).numpy()  # (N, C, 440)
    return np.ascontiguousarray(eeg, dtype=np.float32)


def _release_meta(
    dataset: list, kept: dict[str, list[int]], labels: list[str], names: list[str], path: Path
) -> Any:
    """The ``meta`` DataFrame of the kept trials (split order); captions from the wnids, ids from image names."""
    import pandas as pd

    from eegalign.data.classes import wnid_to_name

    order = [i for s in SPLITS for i in kept[s]]
    to_name = wnid_to_name()
    lab = np.array([int(dataset[i]["label"]) for i in order], dtype=np.int64)
    img = [int(dataset[i]["image"]) for i in order]
    if lab.min() < 0 or lab.max() >= len(labels):
        raise DataError(f"{path}: a label is outside the labels list")
    if min(img) < 0 or max(img) >= len(names):
        raise DataError(f"{path}: an image index is outside the images list")
    wnids = [labels[k] for k in lab]
    return pd.DataFrame(
        {
            "split": [s for s in SPLITS for _ in kept[s]],
            "subject": np.array([int(dataset[i]["subject"]) for i in order], dtype=np.int64),
            "label": lab,
            "label_folder": wnids,
            "caption": [f"an image of a {to_name.get(w, w)}" for w in wnids],
            "image_id": [image_id_from_name(names[k]) for k in img],
        }
    )


def read_release(
    path: str | Path, *, splits: str | Path | None, fold: int = 0, n_chans: int | None = None, progress: bool = True
) -> Records:
    """Read the original CVPR40 release ``.pth`` and its splits file.

    The ``.pth`` is a dict with ``dataset`` (list of dicts: ``eeg`` tensor channels x time, ``image``
    index, ``label`` index, ``subject``), ``labels`` (wnids) and ``images`` (image names). The splits
    file holds ``splits[fold]["train"|"val"|"test"]`` (optionally under a ``"splits"`` key): index
    lists into ``dataset``. Trials of 450..600 samples are kept and cropped to samples 20:460.
    """
    path = Path(path)
    obj = _load_release(path)
    fold_splits = _load_fold(splits, fold)
    dataset, labels, names = obj["dataset"], [str(x) for x in obj["labels"]], [str(x) for x in obj["images"]]
    assignment = _assign_splits(fold_splits, len(dataset), splits, fold)
    kept, too_short = _kept_by_length(dataset, assignment, path, n_chans)
    order = [i for s in SPLITS for i in kept[s]]
    for s in SPLITS:
        if not kept[s]:
            raise DataError(f"{path}: the {s} split of fold {fold} is empty (after keeping trials of {RELEASE_MIN_LEN}..{RELEASE_MAX_LEN} samples)")
    eeg = _release_eeg(dataset, order, progress)  # (N, C, 440)
    meta = _release_meta(dataset, kept, labels, names, path)
    return Records(
        eeg=eeg,
        meta=meta,
        images={},
        classes=labels,
        format="release",
        source=str(path),
        notes={
            "images": "none: the release carries image names only, no pixels (images/ is empty; use the text route or supply images)",
            "splits_file": str(splits),
            "fold": fold,
            "kept_length": [RELEASE_MIN_LEN, RELEASE_MAX_LEN],
            "crop": list(RELEASE_CROP),
            "dropped_by_length": len(assignment) - len(order),
            **({"too_short_for_crop": too_short} if too_short else {}),  # (part of dropped_by_length)
        },
    )


# ----------------------------------------------------------------------------------------------


def read_source(
    source: str | Path,
    *,
    format: str = "auto",
    splits: str | Path | None = None,
    fold: int = 0,
    n_chans: int | None = None,
    progress: bool = True,
) -> Records:
    """Read any supported source (see module docstring) into :class:`Records`."""
    fmt = detect_format(source, format)
    if fmt == "things-eeg2":
        raise ConfigError("the THINGS-EEG2 release is streamed into a cache: use eegalign.data.cache.prepare_cache")
    if fmt == "release":
        return read_release(source, splits=splits, fold=fold, n_chans=n_chans, progress=progress)
    if fmt == "parquet":
        return read_parquet_dir(source, n_chans=n_chans, progress=progress)
    if fmt == "disk":
        return read_saved_dataset(source, n_chans=n_chans, progress=progress)
    return read_hub(str(source), n_chans=n_chans, progress=progress)
