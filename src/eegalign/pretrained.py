"""Self-contained model directories: ``save_pretrained`` / ``from_pretrained``.

A model directory holds everything needed to run a trained encoder on raw EEG, without eegalign's
checkpoints, Lightning or the cache it was trained on:

* ``config.json``: the encoder's registry record (name, preset and init arguments exactly as
  :func:`eegalign.models.encoder_config` and the training checkpoints store them), the montage
  (``n_chans``, ``n_times``, ``sfreq``, ``channel_names`` when known), the route and the output shape;
* ``model.safetensors``: the weights (no pickle);
* ``preprocess.json``: what :mod:`eegalign.data.preprocess` did to the training data (band-pass,
  the train-split z-score statistics, the epoch's start relative to stimulus onset), see
  :func:`preprocess_from_cache`;
* ``model.onnx`` (optional, :mod:`eegalign.onnx_export`): the same network for ONNX Runtime.

The encoder is rebuilt through the registry (``build_model(**config["encoder"])``), so the file
format follows whatever init arguments the encoders take. Everything is written into a temporary
sibling directory that is renamed into place at the end (:func:`eegalign.io.atomic_dir`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eegalign.errors import ConfigError, WeightsError, first_line

CONFIG, WEIGHTS, PREPROCESS, ONNX = "config.json", "model.safetensors", "preprocess.json", "model.onnx"
FORMAT, FORMAT_VERSION = "eegalign-pretrained", 1


def _unwrap(encoder: nn.Module) -> tuple[nn.Module, bool]:
    """The registry encoder and whether it is wrapped in a :class:`ResidualEncoder` (train-mean offset)."""
    from eegalign.checkpoints import ResidualEncoder

    if isinstance(encoder, ResidualEncoder):
        return encoder.encoder, True
    return encoder, False


def save_pretrained(
    encoder: nn.Module,
    out: str | os.PathLike,
    *,
    preprocess: dict[str, Any],
    route: str | None = None,
    channel_names: list[str] | None = None,
    source: dict[str, Any] | None = None,
    overwrite: bool = False,
    extra_files: Callable[[nn.Module, Path], dict[str, Any]] | None = None,
) -> Path:
    """Write ``encoder`` as a model directory at ``out`` (atomically); return ``out``.

    Args:
        encoder: a registry encoder, or a :class:`~eegalign.checkpoints.ResidualEncoder` around one.
        preprocess: the content of ``preprocess.json`` (:func:`preprocess_from_cache`).
        route: ``"image"`` or ``"text"`` (default: inferred from the output shape).
        channel_names: the montage's channel names, when known.
        source: provenance recorded in config.json (checkpoint, cache, fingerprint).
        overwrite: replace an existing ``out``.
        extra_files: called as ``extra_files(encoder, tmp_dir)`` before the rename (e.g. the ONNX
            export); the dict it returns is stored in config.json under ``"onnx"``.
    """
    from safetensors.torch import save_file

    from eegalign import __version__
    from eegalign.io import atomic_dir, write_json
    from eegalign.models import encoder_config
    from eegalign.outputs import write_marker

    inner, residual = _unwrap(encoder)
    cfg = encoder_config(inner)  # raises ConfigError for a network outside the registry
    out_shape = [int(s) for s in inner.out_shape]
    route = route or ("text" if len(out_shape) == 2 else "image")
    sfreq = preprocess.get("sfreq")
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "eegalign_version": __version__,
        "encoder": cfg,
        "residual": residual,
        "montage": {"n_chans": int(inner.n_chans), "n_times": int(inner.n_times), "sfreq": sfreq,
                    "channel_names": list(channel_names) if channel_names else None},
        "route": route,
        "input": {"name": "eeg", "shape": ["batch", int(inner.n_chans), int(inner.n_times)], "dtype": "float32"},
        "output_shape": out_shape,
        "source": dict(source or {}),
    }
    state = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}  # (tied tensors unshared)
    was_training = encoder.training
    encoder.eval()
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
            write_json(tmp / PREPROCESS, preprocess)
            if extra_files is not None:
                config["onnx"] = extra_files(encoder, tmp)
            write_json(tmp / CONFIG, config)
            write_marker(tmp, "model", "eegalign export")
    finally:
        encoder.train(was_training)
    return Path(out)


def read_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json of a model directory, checked; one-line :class:`WeightsError` for anything else."""
    d = Path(model_dir)
    if not d.is_dir():
        raise WeightsError(f"model directory not found: {d} (write one with `eegalign export --ckpt CKPT --out {d}`)")
    for name in (CONFIG, WEIGHTS, PREPROCESS):
        if not (d / name).is_file():
            raise WeightsError(f"{d} is not an eegalign model directory (no {name}); write one with `eegalign export`")
    try:
        config = json.loads((d / CONFIG).read_text())
    except ValueError as e:
        raise WeightsError(f"{d / CONFIG} is not valid JSON ({first_line(e)})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or not isinstance(config.get("encoder"), dict):
        raise WeightsError(f"{d / CONFIG} is not an eegalign model config (format {FORMAT!r})")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise WeightsError(f"{d} was written by a newer eegalign (format {config['format_version']}); upgrade eegalign")
    return config


def read_preprocess(model_dir: str | os.PathLike) -> dict[str, Any]:
    """preprocess.json of a model directory."""
    path = Path(model_dir) / PREPROCESS
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read {path} ({first_line(e)})") from None
    source = record.get("source_cache") if isinstance(record, dict) else None
    if (not isinstance(record, dict) or not isinstance(source, (dict, type(None)))
            or not isinstance((source or {}).get("record"), (dict, type(None)))):
        raise WeightsError(f"{path} is not an eegalign preprocess.json (a JSON object whose 'source_cache' and its "
                           f"'record' are objects); write the model directory again with `eegalign export`")
    return record


def load_pretrained(model_dir: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the encoder of a model directory (eval mode, CPU); return ``(encoder, config)``."""
    from safetensors.torch import load_file

    from eegalign.checkpoints import ResidualEncoder
    from eegalign.models import build_model

    d = Path(model_dir)
    config = read_config(d)
    cfg = dict(config["encoder"])
    try:
        encoder: nn.Module = build_model(**cfg)
    except Exception as e:  # noqa: BLE001 - an unknown name or option: say which
        raise WeightsError(f"{d}: cannot rebuild encoder {cfg.get('name')!r} ({first_line(e)})") from None
    if config.get("residual"):
        encoder = ResidualEncoder(encoder, torch.zeros(tuple(config["output_shape"])))
    try:
        state = load_file(str(d / WEIGHTS))
        encoder.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001 - corrupt file or mismatching keys/shapes
        raise WeightsError(f"{d / WEIGHTS} does not match encoder {cfg.get('name')!r} ({first_line(e)[:300]})") from None
    return encoder.eval(), config


def from_pretrained(model_dir: str | os.PathLike) -> nn.Module:
    """The encoder of a model directory written by :func:`save_pretrained` / ``eegalign export``."""
    return load_pretrained(model_dir)[0]


def preprocess_from_cache(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """preprocess.json content from a cache's stats.json and manifest.json (train-split statistics).

    ``epoch.start_samples`` is the first sample of a trial relative to stimulus onset (the
    marker): positive when the data set cropped samples after onset (CVPR40: 20 at 1 kHz).
    """
    from eegalign.audit.features import epoch_timing
    from eegalign.data.cache import Cache
    from eegalign.data.preprocessing_record import preprocessing_record

    cache = Cache.open(cache_dir)
    stats, manifest = cache.stats, cache.manifest
    timing = epoch_timing(manifest)
    sfreq = float(stats.get("sfreq") or timing.sfreq)
    norm = stats.get("normalisation") or {"norm": "none"}
    if norm.get("norm") not in ("global", "channel", "none"):
        raise ConfigError(f"{cache.path}/stats.json: unknown normalisation {norm.get('norm')!r}")
    return {
        "sfreq": sfreq,
        "n_chans": cache.n_chans,
        "n_times": cache.n_times,
        "order": ["replace non-finite values by 0", "band-pass (if any)", "z-score with the train-split statistics"],
        "bandpass": stats.get("bandpass"),
        "normalisation": norm,
        "epoch": {"start_samples": int(round(timing.start_ms * sfreq / 1000.0)), "n_times": cache.n_times,
                  "start_ms": timing.start_ms, "start_source": timing.source},
        "source_cache": {"path": str(cache.path), "fingerprint": manifest.get("fingerprint"),
                         "format": manifest.get("format"), "record": preprocessing_record(manifest)},
    }


def channel_names_of(cache_dir: str | os.PathLike) -> list[str] | None:
    """Channel names a cache's manifest records (THINGS-EEG2), else None."""
    from eegalign.data.cache import Cache

    names = (Cache.open(cache_dir).manifest.get("notes") or {}).get("ch_names")
    return [str(n) for n in names] if names else None


def load_any(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """An encoder from a checkpoint file or a model directory, with ``load_encoder``'s info record."""
    if Path(path).is_dir():
        encoder, config = load_pretrained(path)
        source, cache = config.get("source") or {}, read_preprocess(path).get("source_cache") or {}
        return encoder, {"encoder": config["encoder"], "route": config.get("route"), "loss": source.get("loss"),
                         "cache": cache.get("path"), "preprocessing": cache.get("record"), "epoch": source.get("epoch"),
                         "global_step": source.get("global_step"), "subjects": source.get("subjects"),
                         "hyper_parameters": {}, "model_dir": str(path)}
    from eegalign.checkpoints import load_encoder

    return load_encoder(path)
