"""`eegalign demo`: the embedded default, end to end on CPU.

synthetic data set -> prepare (cache) -> leakage audit -> fit a small preset (configs/demo.yaml) -> evaluate
(metrics + HTML report) -> ridge baseline for comparison -> (optional) generate.
Every stage is the same code a user runs through its own command; the demo only chains them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output directory (created; must not hold another demo)")
    p.add_argument("--route", choices=["image", "text"], default="image", help="which CLIP target to decode")
    p.add_argument("--dataset", choices=["cvpr40", "things"], default="cvpr40",
                   help="simulate CVPR40 (the hub schema) or THINGS-EEG2 (its release layout, zero-shot test "
                        "concepts, repetitions averaged at evaluation; trains NICE)")
    p.add_argument("--subjects", type=int, default=None, help="synthetic subjects (default 6; things: 2)")
    p.add_argument("--classes", type=int, default=None,
                   help="synthetic classes (<= 40; default 40) or, for things, training concepts (default 30, + 10 test)")
    p.add_argument("--images-per-class", type=int, default=None, help="synthetic images per class (default 5; things: 4)")
    p.add_argument("--snr", type=float, default=None, help="synthetic signal-to-noise ratio (default: simulator's)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: configs/demo.yaml)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sd-model", default=None, help="Stable Diffusion 1.5 dir/hub id: also generate images")
    p.add_argument("--ip-adapter", default=None, help="IP-Adapter weights (image route generation)")
    p.add_argument("--classifier", default=None, help="ImageNet classifier dir/hub id for N-way accuracy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo in --out")


#: THINGS demo: 30 training concepts x 4 images x 4 repetitions, 10 test concepts x 16 repetitions, 17 x 100
THINGS_SYNTH = ["--test-concepts", "10", "--repetitions", "4", "16", "--montage", "17x100"]
#: NICE's small preset with a demo-sized budget (the reference config trains 200 epochs at lr 2e-4)
THINGS_FIT = ["--model.encoder.init_args.preset", "small", "--model.lr", "1e-3", "--model.eta_min", "0",
              "--data.batch_size", "64", "--data.average_repetitions", "false", "--trainer.max_epochs", "8",
              "--trainer.accelerator", "cpu"]


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _call(argv: list[str]) -> None:
    """Run one eegalign command in-process; a failure stops the demo with that command's error."""
    from eegalign.cli import main
    from eegalign.errors import EEGAlignError

    code = main(argv)
    if code:
        raise EEGAlignError(f"demo stopped: `eegalign {' '.join(argv)}` exited with status {code}")


def _best_checkpoint(run_dir: Path) -> Path:
    """The checkpoint Lightning's ModelCheckpoint chose on validation (recorded in last.ckpt)."""
    from eegalign.errors import EEGAlignError
    from eegalign.checkpoints import read_checkpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise EEGAlignError(f"training wrote no last.ckpt under {run_dir}")
    for key, state in read_checkpoint(last).get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_path"):
            best = Path(state["best_model_path"])
            best = best if best.is_file() else last.parent / best.name  # recorded relative to the cwd
            if best.is_file():
                return best
    raise EEGAlignError(f"{last} records no best checkpoint on validation")


@dataclass(frozen=True)
class _DemoDirs:
    """Where each stage of a demo under ``out`` writes."""

    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def cache(self) -> Path:
        return self.out / "cache"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def evaluation(self) -> Path:
        return self.out / "evaluation"

    @property
    def ridge(self) -> Path:
        return self.out / "ridge"


def _claim_out(out: Path, overwrite: bool) -> None:
    """Create ``out`` and mark it as a demo; a non-empty ``out`` only with ``overwrite`` and only if it holds
    an earlier demo (replaced stage by stage). Raises ConfigError otherwise."""
    from eegalign.errors import ConfigError
    from eegalign.outputs import check_out, check_writable, write_marker

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise ConfigError(f"{out} is not empty; pass --overwrite or choose another --out")
        check_out(out, "demo", overwrite=True)  # only an earlier demo is replaced, stage by stage
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "demo", "eegalign demo")


def _synthesise(args: argparse.Namespace, dirs: _DemoDirs, things: bool) -> None:
    """Stage 1: the synthetic data set (sizes default per ``--dataset``; filled into ``args``)."""
    defaults = (2, 30, 4) if things else (6, 40, 5)
    for name, value in zip(("subjects", "classes", "images_per_class"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    t = _stage("1/5 synthetic data set" + (" (THINGS-EEG2 release layout)" if things else ""))
    synth = ["data", "synth", "--out", str(dirs.data), "--subjects", str(args.subjects), "--classes", str(args.classes),
             "--images-per-class", str(args.images_per_class), "--seed", str(args.seed), "--overwrite"]
    if things:
        synth += ["--layout", "things-eeg2", *THINGS_SYNTH]
    if args.snr is not None:
        synth += ["--snr", str(args.snr)]
    _call(synth)
    print(f"   {time.perf_counter() - t:.1f}s")


def _prepare_and_audit(dirs: _DemoDirs) -> None:
    """Stage 2: the cache, and its leakage audit."""
    t = _stage("2/5 prepare the cache and audit it for confounds")
    _call(["data", "prepare", "--source", str(dirs.data), "--out", str(dirs.cache), "--overwrite"])
    _call(["audit", "--cache", str(dirs.cache), "--out", str(dirs.out / "audit"), "--overwrite"])
    print(f"   {time.perf_counter() - t:.1f}s")


def _train(args: argparse.Namespace, dirs: _DemoDirs, things: bool) -> Path:
    """Stage 3: fit the preset for ``--dataset``/``--route`` into ``run/`` (atomically); return the best checkpoint."""
    from importlib import resources

    from eegalign.io import atomic_dir

    config_name = "things_nice.yaml" if things else ("demo.yaml" if args.route == "image" else "demo_text.yaml")
    t = _stage(f"3/5 train a small encoder (configs/{config_name})")
    config = resources.files("eegalign.configs").joinpath(config_name)
    fit = ["fit", "--config", str(config), "--data.cache", str(dirs.cache), "--trainer.default_root_dir", str(dirs.run),
           "--seed_everything", str(args.seed)]
    if things:
        fit += THINGS_FIT
    if args.epochs is not None:
        fit += ["--trainer.max_epochs", str(args.epochs)]
    with atomic_dir(dirs.run, overwrite=True, kind="run", command="eegalign demo (fit)") as tmp_run:
        fit[fit.index("--trainer.default_root_dir") + 1] = str(tmp_run)  # an earlier demo's run stays until this one ends
        _call(fit)
    ckpt = _best_checkpoint(dirs.run)
    print(f"   {time.perf_counter() - t:.1f}s  checkpoint: {ckpt}")
    return ckpt


def _evaluate(args: argparse.Namespace, dirs: _DemoDirs, ckpt: Path) -> None:
    """Stage 4: evaluate ``ckpt`` on the test split, the ridge baseline, and their comparison."""
    out, cache_dir, eval_dir, ridge_dir = dirs.out, dirs.cache, dirs.evaluation, dirs.ridge
    t = _stage("4/5 evaluate on the test split (+ ridge baseline)")
    _call(["evaluate", "--ckpt", str(ckpt), "--cache", str(cache_dir), "--split", "test", "--out", str(eval_dir),
           "--audit", str(out / "audit"), "--overwrite"])
    _call(["baseline", "ridge", "--cache", str(cache_dir), "--route", args.route, "--split", "test", "--out", str(ridge_dir), "--overwrite"])
    _call(["evaluate", "--predictions", str(ridge_dir / "predictions.safetensors"), "--train-targets", str(cache_dir),
           "--out", str(ridge_dir / "evaluation"), "--overwrite"])
    _call(["compare", str(eval_dir), str(ridge_dir / "evaluation"), "--out", str(out / "comparison"), "--overwrite"])
    print(f"   {time.perf_counter() - t:.1f}s")


def _generate(args: argparse.Namespace, dirs: _DemoDirs) -> None:
    """Stage 5: images from the test predictions when ``--sd-model`` is given, else a note that it was skipped."""
    if args.sd_model:
        t = _stage("5/5 generate images")
        gen = ["generate", "--predictions", str(dirs.evaluation / "predictions.safetensors"), "--sd-model", args.sd_model,
               "--out", str(dirs.out / "generation"), "--limit", "8", "--overwrite"]
        if args.ip_adapter:
            gen += ["--ip-adapter", args.ip_adapter]
        if args.classifier:
            gen += ["--classifier", args.classifier]
        _call(gen)
        print(f"   {time.perf_counter() - t:.1f}s")
    else:
        _stage("5/5 generate images: skipped (pass --sd-model, --ip-adapter and --classifier to run it)")


def _summarise(args: argparse.Namespace, dirs: _DemoDirs, ckpt: Path, t_all: float) -> None:
    """Write ``demo.json`` (route, checkpoint, seconds since ``t_all``, headline) and print the result."""
    from eegalign.io import write_json

    metrics = json.loads((dirs.evaluation / "metrics.json").read_text())
    headline = _headline(metrics)
    write_json(dirs.out / "demo.json", {"route": args.route, "checkpoint": str(ckpt), "seconds": time.perf_counter() - t_all,
                                        "headline": headline})
    print("\n== result (test split, synthetic data)")
    for line in headline:
        print("   " + line)
    print(f"\nreport: {dirs.evaluation / 'report.html'}")
    print(f"comparison with the ridge baseline: {dirs.out / 'comparison'}")
    print(f"total time: {time.perf_counter() - t_all:.0f}s")


def run(args: argparse.Namespace) -> int:
    """Chain every stage (see the module docstring) into ``args.out``; 0 on success."""
    dirs = _DemoDirs(args.out)
    _claim_out(dirs.out, args.overwrite)
    t_all = time.perf_counter()
    things = args.dataset == "things"
    _synthesise(args, dirs, things)
    _prepare_and_audit(dirs)
    ckpt = _train(args, dirs, things)
    _evaluate(args, dirs, ckpt)
    _generate(args, dirs)
    _summarise(args, dirs, ckpt, t_all)
    return 0


def _headline(m: dict) -> list[str]:
    r = m["retrieval"]["all_top1"]
    base = m["baselines"]["train_mean"]
    lines = [
        f"retrieval top-1 among {m['n_images']} test images ({m['n']} trials): {100 * r['value']:.1f}% "
        f"(95% CI {100 * r['ci95'][0]:.1f}-{100 * r['ci95'][1]:.1f}%), chance {100 * r['chance']:.1f}%, "
        f"train-mean baseline {100 * base['retrieval']['all_top1']['value']:.1f}%",
        f"cosine(pred, true): {m['similarity']['cosine']['mean']:.3f} vs train-mean baseline "
        f"{base['similarity']['cosine']['mean']:.3f}",
    ]
    if "retrieval_averaged" in m:
        ra, rb = m["retrieval_averaged"], base.get("retrieval_averaged", {})
        lines.append(
            f"repetitions averaged ({ra['n']} image x subject queries, {round(1 / ra['all_top1']['chance'])}-way): "
            f"top-1 {100 * ra['all_top1']['value']:.1f}%, top-5 {100 * ra['all_top5']['value']:.1f}% "
            f"(chance {100 * ra['all_top1']['chance']:.1f}% / {100 * ra['all_top5']['chance']:.1f}%, train-mean baseline "
            f"{100 * rb.get('all_top1', {}).get('value', float('nan')):.1f}%)"
        )
    if "permutation_p" in m["baselines"]:
        lines.append(f"permutation test p = {m['baselines']['permutation_p']:.4f}")
    return lines
