"""Generation throughput per --batch-size with the tiny random SD 1.5-shaped pipeline of the tests.

What it measures is the overhead side of batching on a CPU: with a tiny UNet, a pipeline call costs
mostly Python and per-call work, which batching amortises. It says nothing about real SD 1.5 on a
GPU, where the UNet dominates (see docs/performance.md for diffusers' published figures).

For each route and batch size B it generates the same N images (one per trial, seed = trial) through
``eegalign.generation.pipelines.generate_batch``, B per call, after one warm-up call, and prints a
Markdown table of images per second (best of ``--repeats``) and the speed-up over B = 1.

    OMP_NUM_THREADS=1 python benchmarks/generation.py --images 16 --steps 10 --size 64 --batch-sizes 1 2 4 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' tiny pipeline builder


def build(root: Path, route: str):
    """A tiny PerTrialPipeline on the CPU (with its IP-Adapter on the image route)."""
    from _tinysd import tiny_ip_adapter, tiny_sd_components

    from eegalign.generation.ip_batching import PerTrialPipeline
    from eegalign.generation.pipelines import add_ip_adapter

    pipe = PerTrialPipeline(**tiny_sd_components(root))
    pipe.set_progress_bar_config(disable=True)
    if route == "image":
        add_ip_adapter(pipe, str(tiny_ip_adapter(pipe.unet, root / "ip.safetensors")))
    return pipe


def images_per_second(pipe, route: str, n: int, batch: int, steps: int, size: int) -> float:
    """Generate n images, ``batch`` per call; return images per second."""
    from eegalign.generation.pipelines import encode_empty_prompt, generate_batch

    shape = (n, 1024) if route == "image" else (n, 77, 768)
    embeds = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    negative = encode_empty_prompt(pipe) if route == "text" else None
    start = time.perf_counter()
    for first in range(0, n, batch):
        rows = embeds[first : first + batch]
        generate_batch(pipe, rows, route, list(range(first, first + len(rows))), steps=steps, guidance=7.5, size=size,
                       negative_text=negative)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {args.images} images, {args.steps} steps, "
          f"{args.size} px; best of {args.repeats}\n")
    print("| route | batch size | images/s | speed-up vs batch 1 |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for route in ("image", "text"):
            pipe = build(Path(tmp) / route, route)
            images_per_second(pipe, route, 2, 2, args.steps, args.size)  # warm-up
            base = None
            for batch in args.batch_sizes:
                rate = max(images_per_second(pipe, route, args.images, batch, args.steps, args.size)
                           for _ in range(args.repeats))
                base = base or rate
                print(f"| {route} | {batch} | {rate:.1f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
