"""Reader of the THINGS-EEG2 release (Gifford et al. 2022, NeuroImage 264:119754).

Layout (the OSF project of Gifford et al.; the 63-channel re-preprocessing used by ATM and others
keeps it)::

    ROOT/sub-01/preprocessed_eeg_training.npy   np.save of a dict:
                                                  preprocessed_eeg_data (n_images, n_reps, C, T) float32
                                                  ch_names (C,) str, times (T,) seconds
    ROOT/sub-01/preprocessed_eeg_test.npy       the same for the 200 test images x 80 repetitions
    ROOT/image_metadata.npy                      dict: train_img_concepts, train_img_files,
                                                  test_img_concepts, test_img_files (EEG order)
    ROOT/training_images/<concept>/<file>        e.g. 00001_aardvark/aardvark_01b.jpg
    ROOT/test_images/<concept>/<file>

(``sub-XX`` may also sit under ``ROOT/preprocessed_data/``, and the metadata and image folders under
``ROOT/image_set/``, as on OSF.) The ``.npy`` files are pickles; they are read with
:class:`RestrictedUnpickler`, which builds only numpy arrays and dtypes, dicts, lists, tuples, str,
bytes and numbers, and refuses anything else before it runs. A large array's raw bytes are not read
during unpickling: the array comes back as a :class:`LazyArray` (file offset, dtype, shape) that is
read block by block, so a 4.2 GB subject never needs to be in memory at once.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import DataError, first_line

EEG_KEY = "preprocessed_eeg_data"
META_KEYS = ("train_img_concepts", "train_img_files", "test_img_concepts", "test_img_files")
TRAIN_FILE, TEST_FILE, META_FILE = "preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy", "image_metadata.npy"
IMAGE_DIRS = {"train": "training_images", "test": "test_images"}
LAZY_MIN_BYTES = 1 << 20  # arrays with at least this many raw bytes stay on disk (LazyArray)
_SUBJECT_DIR = re.compile(r"^sub-(\d+)$")


# ---------------------------------------------------------------------------------------------
# restricted unpickling


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object: the only globals a release pickle may name (numpy 1 and 2 spellings)."""
    reconstruct = np.zeros(1).__reduce__()[0]  # numpy's ndarray reconstructor, without private imports
    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = reconstruct
        out[(mod, "scalar")] = scalar
    import _codecs

    out[("_codecs", "encode")] = _codecs.encode  # protocol-2 pickles spell bytes as encode(str, 'latin1')
    return out


@dataclass(frozen=True)
class _Deferred:
    """Raw bytes left on disk: ``length`` bytes at ``offset`` of the file."""

    offset: int
    length: int


@dataclass(frozen=True)
class LazyArray:
    """A C-ordered array stored in a file at ``offset``; read rows (first axis) on demand."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """``self[lo:hi]`` read from disk (a fresh array, native byte order)."""
        row = int(np.prod(self.shape[1:], dtype=np.int64))
        hi = min(hi, self.shape[0])
        with open(self.path, "rb") as f:
            f.seek(self.offset + lo * row * self.dtype.itemsize)
            data = np.fromfile(f, dtype=self.dtype, count=(hi - lo) * row)
        if data.size != (hi - lo) * row:
            raise DataError(f"{self.path} is truncated (rows {lo}..{hi} of {self.shape[0]})")
        return data.reshape(hi - lo, *self.shape[1:]).astype(self.dtype.newbyteorder("="), copy=False)


def take_rows(arr: np.ndarray | LazyArray, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of an in-memory or a lazy array."""
    return arr.rows(lo, hi) if isinstance(arr, LazyArray) else np.asarray(arr[lo:hi])


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be extended
    """Unpickles only numpy arrays/dtypes/scalars and plain containers; raises on any other global.

    ``find_class`` is the only way a pickle can reach a callable, so refusing every name outside
    :func:`_allowed_globals` means nothing else is ever called. Byte strings of at least
    ``lazy_min_bytes`` outside a pickle frame are skipped (not read) and the array they belong to
    becomes a :class:`LazyArray`.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedReader, path: Path, lazy_min_bytes: int = LAZY_MIN_BYTES):
        super().__init__(file)
        self._raw, self._path, self._lazy_min = file, path, int(lazy_min_bytes)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")

    def _outside_frame(self) -> bool:
        frame = self._unframer.current_frame
        if frame is None:
            return True
        pos = frame.tell()
        end = frame.seek(0, io.SEEK_END)
        frame.seek(pos)
        return pos == end

    def _bytes(self, n: int) -> None:
        if n >= self._lazy_min and self._outside_frame():
            self._unframer.current_frame = None
            offset = self._raw.tell()
            self._raw.seek(n, io.SEEK_CUR)
            self.append(_Deferred(offset, n))
        else:
            data = self.read(n)
            if len(data) != n:
                raise pickle.UnpicklingError("truncated data")
            self.append(data)

    def _load_binbytes(self) -> None:
        (n,) = np.frombuffer(self.read(4), dtype="<u4")
        self._bytes(int(n))

    def _load_binbytes8(self) -> None:
        (n,) = np.frombuffer(self.read(8), dtype="<u8")
        self._bytes(int(n))

    def _load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        raw = state[4] if isinstance(state, tuple) and len(state) == 5 else None
        if isinstance(raw, _Deferred) and isinstance(inst, np.ndarray):
            _, shape, dtype, fortran, _ = state
            if fortran or not isinstance(dtype, np.dtype) or dtype.hasobject:
                raise pickle.UnpicklingError("only C-ordered numeric arrays may be deferred")
            lazy = LazyArray(self._path, raw.offset, tuple(int(s) for s in shape), dtype)
            if lazy.nbytes != raw.length:
                raise pickle.UnpicklingError("array size does not match its data")
            self.stack.pop()
            self.stack[-1] = lazy
            for k, v in list(self.memo.items()):
                if v is inst:
                    self.memo[k] = lazy
            return
        pickle._Unpickler.dispatch[pickle.BUILD[0]](self)

    dispatch[pickle.BINBYTES[0]] = _load_binbytes
    dispatch[pickle.BINBYTES8[0]] = _load_binbytes8
    dispatch[pickle.BUILD[0]] = _load_build


def load_npy(path: str | Path, lazy_min_bytes: int = LAZY_MIN_BYTES) -> Any:
    """Read a ``.npy`` file: a numeric array directly, a pickled payload through :class:`RestrictedUnpickler`.

    Returns the unpickled object with a 0-d object array unwrapped (``np.save`` of a dict gives one).
    Raises :class:`DataError` (one line) for anything the restricted unpickler refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(f)
            if not dtype.hasobject:
                return np.load(path, mmap_mode="r", allow_pickle=False)
            obj = RestrictedUnpickler(f, path, lazy_min_bytes).load()
    except pickle.UnpicklingError as e:
        raise DataError(
            f"{path} holds a pickled object eegalign refuses to load ({first_line(e)}); only numpy arrays, "
            "dicts, lists, tuples, strings and numbers are read from THINGS-EEG2 files"
        ) from e
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path} is not a readable .npy file ({type(e).__name__}: {first_line(e)})") from e
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        obj = obj.item()
    return obj


# ---------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class ThingsLayout:
    """Where the parts of a THINGS-EEG2 release are: metadata file, image folders, subject folders."""

    root: Path
    metadata: Path
    image_root: Path
    subjects: dict[int, Path]


def _subject_dirs(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if folder.is_dir():
        for d in sorted(folder.iterdir()):
            m = _SUBJECT_DIR.match(d.name)
            if m and d.is_dir() and ((d / TRAIN_FILE).is_file() or (d / TEST_FILE).is_file()):
                out[int(m.group(1))] = d
    return out


def find_layout(root: str | Path) -> ThingsLayout | None:
    """The THINGS-EEG2 layout under ``root``, or None if ``root`` does not look like one."""
    root = Path(root)
    if not root.is_dir():
        return None
    meta = next((p / META_FILE for p in (root, root / "image_set") if (p / META_FILE).is_file()), None)
    subjects = _subject_dirs(root) or _subject_dirs(root / "preprocessed_data")
    if meta is None or not subjects:
        return None
    return ThingsLayout(root, meta, meta.parent, subjects)


def require_layout(root: str | Path, subjects: list[int] | None = None) -> ThingsLayout:
    """:func:`find_layout` or a one-line :class:`DataError` saying what is missing; keeps ``subjects``."""
    layout = find_layout(root)
    if layout is None:
        raise DataError(
            f"{root} is not a THINGS-EEG2 release: expected {META_FILE} and sub-XX/{TRAIN_FILE}, sub-XX/{TEST_FILE}"
        )
    if subjects:
        missing = sorted(set(subjects) - set(layout.subjects))
        if missing:
            raise DataError(f"{root}: no subject(s) {missing} (found {sorted(layout.subjects)})")
        layout = ThingsLayout(layout.root, layout.metadata, layout.image_root, {s: layout.subjects[s] for s in sorted(subjects)})
    for s, d in layout.subjects.items():
        for name in (TRAIN_FILE, TEST_FILE):
            if not (d / name).is_file():
                raise DataError(f"{d}: {name} is missing")
    return layout


# ---------------------------------------------------------------------------------------------
# content


@dataclass
class SubjectEEG:
    """One ``preprocessed_eeg_*.npy``: ``data`` (n_images, n_reps, C, T), channel names, times (s)."""

    data: np.ndarray | LazyArray
    ch_names: list[str]
    times: np.ndarray
    path: Path


def read_subject_file(path: Path, lazy_min_bytes: int = LAZY_MIN_BYTES) -> SubjectEEG:
    """Read and check one subject file (the EEG itself stays on disk when large)."""
    obj = load_npy(path, lazy_min_bytes)
    if not isinstance(obj, dict) or EEG_KEY not in obj:
        keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{path}: expected a dict with '{EEG_KEY}', 'ch_names', 'times' (got {keys})")
    data = obj[EEG_KEY]
    if not isinstance(data, (np.ndarray, LazyArray)) or data.ndim != 4 or data.dtype.kind not in "fiu":
        raise DataError(f"{path}: '{EEG_KEY}' must be a numeric (images, repetitions, channels, times) array")
    n_chans, n_times = data.shape[2], data.shape[3]
    names = [str(c) for c in obj.get("ch_names", [f"ch{i}" for i in range(n_chans)])]
    times = obj.get("times", np.arange(n_times))
    times = take_rows(times, 0, times.shape[0]) if isinstance(times, LazyArray) else times
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if len(names) != n_chans or len(times) != n_times:
        raise DataError(f"{path}: {len(names)} ch_names and {len(times)} times for data of shape {tuple(data.shape)}")
    return SubjectEEG(data, names, times, path)


@dataclass
class ImageTable:
    """The images of one partition in EEG order: concept folder and file name per image."""

    concepts: list[str]
    files: list[str]


def read_image_metadata(path: Path) -> dict[str, ImageTable]:
    """``image_metadata.npy`` -> {"train": ImageTable, "test": ImageTable}."""
    obj = load_npy(path)
    if not isinstance(obj, dict) or not set(META_KEYS) <= set(obj):
        raise DataError(f"{path}: expected a dict with {', '.join(META_KEYS)}")
    out = {}
    for part in ("train", "test"):
        concepts = [str(c) for c in np.asarray(obj[f"{part}_img_concepts"]).reshape(-1)]
        files = [str(f) for f in np.asarray(obj[f"{part}_img_files"]).reshape(-1)]
        if len(concepts) != len(files) or not concepts:
            raise DataError(f"{path}: {part}_img_concepts and {part}_img_files differ in length or are empty")
        out[part] = ImageTable(concepts, files)
    clash = set(out["train"].concepts) & set(out["test"].concepts)
    if clash:
        raise DataError(f"{path}: concept {sorted(clash)[0]!r} is in both the training and the test images")
    return out


def readable_concept(folder: str) -> str:
    """``00001_aircraft_carrier`` -> ``aircraft carrier``."""
    return re.sub(r"^\d+_", "", folder).replace("_", " ").strip()


def caption_of(folder: str) -> str:
    """The caption of a concept for the text route: ``an image of an aircraft carrier``."""
    name = readable_concept(folder)
    return f"an image of {'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def image_key(part: str, concept: str, file: str) -> str:
    """The release-relative path of an image (its identity): ``training_images/<concept>/<file>``."""
    return f"{IMAGE_DIRS[part]}/{concept}/{file}"


def validation_concepts(train_concepts: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded ``fraction`` of the distinct training concepts (at least one, never all) for validation."""
    distinct = sorted(set(train_concepts))
    if len(distinct) < 2:
        raise DataError("THINGS-EEG2: at least two training concepts are needed to carve a validation split")
    n = min(len(distinct) - 1, max(1, round(fraction * len(distinct))))
    pick = np.random.default_rng(seed).choice(len(distinct), size=n, replace=False)
    return {distinct[i] for i in pick}


# ---------------------------------------------------------------------------------------------
# the cache plan: one row per repetition


@dataclass
class ThingsPlan:
    """Everything ``prepare`` needs to stream a release into a cache.

    ``meta`` has one row per (subject, image, repetition) in cache order (subject-major; training
    images then test images, each image's repetitions together); ``parts`` lists, in the same
    order, the subject files with the cache row each begins at; ``images`` maps image_id to the
    image file (only files that exist).
    """

    meta: Any  # pandas.DataFrame
    parts: list[tuple[int, SubjectEEG]]
    n_chans: int
    n_times: int
    classes: list[str]
    images: dict[str, Path]
    notes: dict[str, Any]


def _check_subject(sub: SubjectEEG, table: ImageTable, first: SubjectEEG | None) -> None:
    n_img, _, n_chans, n_times = sub.data.shape
    if n_img != len(table.files):
        raise DataError(f"{sub.path}: {n_img} images of EEG but image_metadata lists {len(table.files)}")
    if first is not None:
        if (n_chans, n_times) != first.data.shape[2:]:
            raise DataError(f"{sub.path}: trials of {n_chans} x {n_times}, but {first.path} has {first.data.shape[2]} x {first.data.shape[3]}")
        if sub.ch_names != first.ch_names:
            raise DataError(f"{sub.path}: channel names differ from {first.path}")


def plan_things(layout: ThingsLayout, *, val_fraction: float = 0.1, val_seed: int = 0,
                lazy_min_bytes: int = LAZY_MIN_BYTES) -> ThingsPlan:
    """Read the metadata and the subject files' headers (EEG stays on disk) and lay out the cache rows."""
    import pandas as pd

    from eegalign.data.sources import image_id_from_name

    tables = read_image_metadata(layout.metadata)
    val = validation_concepts(tables["train"].concepts, val_fraction, val_seed)
    classes = sorted(set(tables["train"].concepts)) + sorted(set(tables["test"].concepts))
    label_of = {c: i for i, c in enumerate(classes)}  # train and test concepts are disjoint: no collision
    ids = {part: [image_id_from_name(image_key(part, c, f)) for c, f in zip(t.concepts, t.files)] for part, t in tables.items()}
    cols: dict[str, list] = {k: [] for k in ("split", "subject", "label", "label_folder", "caption", "image_id", "repetition")}
    parts: list[tuple[int, SubjectEEG]] = []
    first: SubjectEEG | None = None
    reps: dict[str, int] = {}
    row = 0
    for s, folder in layout.subjects.items():
        for part, name in (("train", TRAIN_FILE), ("test", TEST_FILE)):
            sub = read_subject_file(folder / name, lazy_min_bytes)
            _check_subject(sub, tables[part], first)
            first = first or sub
            n_img, n_rep = sub.data.shape[:2]
            reps.setdefault(part, n_rep)
            parts.append((row, sub))
            row += n_img * n_rep
            concepts = np.repeat(np.asarray(tables[part].concepts, dtype=object), n_rep)
            split = np.where(np.isin(concepts, list(val)), "validation", "train") if part == "train" else np.full(len(concepts), "test")
            cols["split"].extend(split.tolist())
            cols["subject"].append(np.full(len(concepts), s, dtype=np.int64))
            cols["label"].append(np.fromiter((label_of[c] for c in concepts), dtype=np.int64, count=len(concepts)))
            cols["label_folder"].extend(concepts.tolist())
            cols["caption"].extend(caption_of(c) for c in concepts)
            cols["image_id"].extend(np.repeat(np.asarray(ids[part], dtype=object), n_rep).tolist())
            cols["repetition"].append(np.tile(np.arange(n_rep, dtype=np.int64), n_img))
    meta = pd.DataFrame({k: (np.concatenate(v) if v and isinstance(v[0], np.ndarray) else v) for k, v in cols.items()})
    images = {}
    for part, t in tables.items():
        for iid, c, f in zip(ids[part], t.concepts, t.files):
            p = layout.image_root / IMAGE_DIRS[part] / c / f
            if p.is_file():
                images[iid] = p
    assert first is not None
    dt = np.diff(first.times)
    notes = {
        "dataset": "THINGS-EEG2 (Gifford et al. 2022)",
        "repetitions": reps,
        "ch_names": first.ch_names,
        "times_s": [float(first.times[0]), float(first.times[-1])],
        "sfreq_from_times": float(round(1.0 / float(np.median(dt)), 6)) if len(dt) and np.median(dt) > 0 else None,
        "validation": f"{len(val)} of {len(set(tables['train'].concepts))} training concepts (seed {val_seed}), all their images",
        "validation_concepts": sorted(val),
        "images": f"{len(images)} of {len(ids['train']) + len(ids['test'])} image files found",
    }
    return ThingsPlan(meta, parts, first.data.shape[2], first.data.shape[3], classes, images, notes)


def iter_blocks(plan: ThingsPlan, rows_per_block: int = 1024):
    """Yield ``(cache_row, eeg)`` blocks in cache order: eeg ``(n, C, T)`` float32, repetitions flattened."""
    for row0, sub in plan.parts:
        n_img, n_rep = sub.data.shape[:2]
        step = max(1, rows_per_block // n_rep)
        for lo in range(0, n_img, step):
            x = take_rows(sub.data, lo, lo + step)  # (b, R, C, T)
            yield row0 + lo * n_rep, np.ascontiguousarray(x.reshape(-1, *x.shape[2:]), dtype=np.float32)  # (b*R, C, T)
