"""ONNX export of an encoder with a dynamic batch axis, checked against ONNX Runtime.

:func:`export_onnx` tries, in order, until ONNX Runtime reproduces the PyTorch output on two batch
sizes (max relative difference <= ``tolerance``):

1. the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, dynamic batch axis; fast);
2. the ``torch.export``-based exporter (``dynamo=True``, onnxscript; slower);
3. the TorchScript exporter with a fixed batch of 1 (for networks whose graph bakes in the batch
   size, e.g. braindecode's ATCNet attention splits by batch); ``dynamic_batch`` is then False.

The max relative difference is ``max|onnx - torch| / max|torch|``. No registered encoder uses
``einsum`` (ONNX Runtime's CPU Einsum re-lays out its weight operand on every call, ~4x slower than
MatMul for EEGNetTransformer's 77 heads, which is why those are ``baddbmm``); a test checks the
exported graphs hold no Einsum node.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eegalign.errors import ConfigError, first_line

INPUT, OUTPUT = "eeg", "embedding"
OPSET = 17


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``max|a - b| / max|b|`` (b the reference)."""
    scale = float(np.abs(b).max()) or 1.0
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() / scale)


def ort_session(path: str | os.PathLike, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _export(encoder: nn.Module, x: torch.Tensor, path: Path, method: str) -> None:
    kw: dict[str, Any] = dict(input_names=[INPUT], output_names=[OUTPUT])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if method == "torchscript":
            # constant folding is off: it folds some weight products to wrong ranks (braindecode ShallowNet);
            # ONNX Runtime folds constants itself when it loads the graph
            torch.onnx.export(encoder, (x,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=False,
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, **kw)
        elif method == "dynamo":
            torch.onnx.export(encoder, (x,), str(path), dynamo=True, external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), **kw)
        else:  # fixed batch of 1
            torch.onnx.export(encoder, (x[:1],), str(path), dynamo=False, opset_version=OPSET,
                              do_constant_folding=False, **kw)


def parity(encoder: nn.Module, path: str | os.PathLike, batches: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Max relative difference between ONNX Runtime and PyTorch on random EEG of each batch size."""
    session = ort_session(path)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batches:
        x = torch.randn(b, encoder.n_chans, encoder.n_times, generator=g)  # (B, C, T)
        with torch.inference_mode():
            ref = encoder(x).numpy()
        out = session.run(None, {INPUT: x.numpy()})[0]
        if out.shape != ref.shape:
            return float("inf")
        worst = max(worst, max_rel_diff(out, ref))
    return worst


def export_onnx(encoder: nn.Module, path: str | os.PathLike, tolerance: float = 1e-4) -> dict[str, Any]:
    """Write ``encoder`` as ONNX at ``path`` (see the module doc); return what config.json records.

    Raises :class:`ConfigError` when no exporter reaches the tolerance (the file is removed).
    """
    path = Path(path)
    encoder = encoder.eval()
    x = torch.zeros(2, encoder.n_chans, encoder.n_times)  # (B, C, T): the example input of the trace
    tried = []
    for method in ("torchscript", "dynamo", "fixed-batch-1"):
        try:
            _export(encoder, x, path, method)
            diff = parity(encoder, path, batches=(1,) if method == "fixed-batch-1" else (1, 3))
        except Exception as e:  # noqa: BLE001 - an exporter that cannot trace this network: try the next one
            tried.append(f"{method}: {first_line(e)[:160]}")
            continue
        if diff <= tolerance:
            return {"file": path.name, "exporter": method, "opset": OPSET if method != "dynamo" else None,
                    "dynamic_batch": method != "fixed-batch-1", "input": INPUT, "output": OUTPUT,
                    "max_rel_diff": diff, "tolerance": tolerance, "torch": torch.__version__}
        tried.append(f"{method}: max relative difference {diff:.3g} > {tolerance:g}")
    path.unlink(missing_ok=True)
    raise ConfigError(f"cannot export {type(encoder).__name__} to ONNX with parity ({'; '.join(tried)})")
