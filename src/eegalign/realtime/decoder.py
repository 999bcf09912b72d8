"""A model directory's encoder as a function of preprocessed epochs: ONNX Runtime or torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import ConfigError

BACKENDS = ("auto", "onnx", "torch")


class Decoder:
    """``decoder(x)``: embeddings ``(B, *output_shape)`` float32 of preprocessed epochs ``x`` ``(B, C, T)``.

    Args:
        model_dir: a directory written by ``eegalign export``.
        backend: ``onnx`` (ONNX Runtime on model.onnx), ``torch`` (model.safetensors), or ``auto``
            (onnx when the directory has model.onnx, else torch).
        threads: intra-op threads of the backend (1 keeps a 2-core machine responsive).
    """

    def __init__(self, model_dir: str | os.PathLike, backend: str = "auto", threads: int = 1):
        from eegalign.pretrained import ONNX, read_config

        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if threads < 1:
            raise ConfigError("--threads must be >= 1")
        d = Path(model_dir)
        self.config = read_config(d)
        has_onnx = (d / ONNX).is_file()
        if backend == "onnx" and not has_onnx:
            raise ConfigError(f"--backend onnx: {d} has no {ONNX} (export with `eegalign export --format onnx`)")
        self.backend = "onnx" if backend == "onnx" or (backend == "auto" and has_onnx) else "torch"
        montage = self.config["montage"]
        self.n_chans, self.n_times = int(montage["n_chans"]), int(montage["n_times"])
        self.output_shape = tuple(int(s) for s in self.config["output_shape"])
        self._run = self._onnx(d / ONNX, threads) if self.backend == "onnx" else self._torch(d, threads)

    def _onnx(self, path: Path, threads: int) -> Any:
        from eegalign.onnx_export import ort_session

        try:
            session = ort_session(path, threads=threads)
        except ImportError:
            raise ConfigError("onnxruntime is not installed: `pip install eegalign[realtime]`, or --backend torch") from None
        name = (self.config.get("onnx") or {}).get("input", "eeg")
        return lambda x: session.run(None, {name: x})[0]

    def _torch(self, d: Path, threads: int) -> Any:
        import torch

        from eegalign.pretrained import load_pretrained

        torch.set_num_threads(threads)
        encoder, _ = load_pretrained(d)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return encoder(torch.from_numpy(x)).float().numpy()

        return run

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)  # (B, C, T)
        if x.shape[1:] != (self.n_chans, self.n_times):
            raise ConfigError(f"epochs of {x.shape[1:]} for an encoder taking {(self.n_chans, self.n_times)}")
        return np.asarray(self._run(x), dtype=np.float32)  # (B, *output_shape)

    def warm_up(self, n: int = 3) -> None:
        """Run a few zero epochs so the first trial does not pay for lazy initialisation."""
        for _ in range(n):
            self(np.zeros((1, self.n_chans, self.n_times), dtype=np.float32))
