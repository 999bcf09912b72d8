"""``eegalign generate``: Stable Diffusion images from predicted embeddings, grids, N-way accuracy.

Three modes:

* ``--predictions FILE --out DIR`` (or ``--model DIR --cache CACHE``: a model directory run over a split): generate (EEG prediction + true embedding per trial), copy
  the originals, draw grids, score N-way accuracy if ``--classifier`` is given and the
  reconstruction metrics (PixCorr and SSIM always, the others with ``--recon-models DIR``), write
  the report;
* ``--nway-only --out DIR --classifier M``: score the images already in DIR (and recompute the
  reconstruction metrics if ``--recon-models`` is given);
* ``--merge DIR1 DIR2 ... --out DIR``: merge ``--shard i/n`` outputs (one per GPU/process).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Reference ids are plain strings here, so --help imports nothing heavy.
    sd_ref, ip_ref, clf_ref = "stable-diffusion-v1-5/stable-diffusion-v1-5", "h94/IP-Adapter", "google/vit-base-patch16-224"
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--predictions", metavar="FILE", help="predictions.safetensors (from evaluate / predict / baseline)")
    io.add_argument("--model", metavar="DIR", help="instead of --predictions: a model directory (`eegalign export`) run over --cache")
    io.add_argument("--cache", metavar="CACHE", help="with --model: the cache whose --split is predicted")
    io.add_argument("--split", default="test", choices=["train", "validation", "test"], help="with --model: the split (default test)")
    io.add_argument("--out", required=True, metavar="DIR", help="output directory (generation.json, generation.html, images)")
    io.add_argument("--images", metavar="DIR", help="original stimuli <image_id>.png|.jpg (default: the predictions' cache/images)")
    io.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    io.add_argument("--nway-only", action="store_true", help="only score the images already in --out (needs --classifier)")
    io.add_argument("--merge", nargs="+", metavar="DIR", help="merge the output directories of --shard runs into --out")

    m = parser.add_argument_group("models (a local directory or a hub id)")
    m.add_argument("--sd-model", default=sd_ref, metavar="M", help=f"Stable Diffusion 1.x pipeline (default {sd_ref})")
    m.add_argument("--ip-adapter", default=ip_ref, metavar="PATH",
                   help=f"image route: IP-Adapter weight file, directory or hub id (default {ip_ref}, models/ip-adapter_sd15)")
    m.add_argument("--ip-adapter-weight", metavar="NAME", help="weight file name inside --ip-adapter (default ip-adapter_sd15.safetensors)")
    m.add_argument("--ip-adapter-subfolder", metavar="SUB", help="subfolder inside --ip-adapter (default: models for hub ids)")
    m.add_argument("--classifier", metavar="M", help=f"ImageNet-1k classifier for N-way accuracy, e.g. {clf_ref} (default: none, no N-way)")

    _add_generation_arguments(parser)
    _add_selection_and_scoring_arguments(parser)


def _add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("generation")
    g.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    g.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 7.5 image route, 6.5 text route)")
    g.add_argument("--ip-adapter-scale", type=float, default=1.0, help="IP-Adapter scale (default 1.0)")
    g.add_argument("--prompt", default="", help="image route: an optional text prompt next to the IP-Adapter (default empty)")
    g.add_argument("--size", type=int, default=512, help="image side in pixels, a multiple of 8 (default 512)")
    g.add_argument("--seed", type=int, default=0, help="base seed: trial i uses seed+i, whatever the batch (default 0)")
    from eegalign.generation.pipelines import SCHEDULERS  # names only: imports nothing heavy
    from eegalign.generation.settings import MATCH_NORM_MODES

    g.add_argument("--scheduler", choices=list(SCHEDULERS),
                   help="replace the pipeline's scheduler (built from its config; dpm_sde: DPM-Solver++ SDE, stochastic)")
    g.add_argument("--batch-size", type=int, default=4, help="images per pipeline call (default 4)")
    g.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, ...")
    g.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"],
                   help="auto: float16 on CUDA, float32 elsewhere")
    g.add_argument("--safety-checker", action="store_true", help="keep the pipeline's NSFW safety checker (off by default)")
    g.add_argument("--match-norm", nargs="?", const="test", default="auto", choices=list(MATCH_NORM_MODES),
                   help="rescale each prediction to a reference norm, keeping its direction: auto (default) = to the training "
                        "targets' mean norm when the model was trained with a norm-free loss (InfoNCE, cosine); train; test "
                        "(the true embeddings' mean norm; a bare --match-norm); off")
    g.add_argument("--cpu-offload", action="store_true",
                   help="keep the models in CPU memory and move each to the GPU only while it runs (accelerate's model "
                        "offload: peak GPU memory about the UNet's; slower)")
    g.add_argument("--vae-slicing", action="store_true", help="decode the latents one image at a time (less memory at large batches)")
    g.add_argument("--vae-tiling", action="store_true", help="decode each image in tiles (less memory at large --size)")
    g.add_argument("--skip-true", action="store_true", help="do not generate from the true embeddings (half the time)")



def _add_selection_and_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    s = parser.add_argument_group("trial selection (seeded with --seed)")
    s.add_argument("--per-class", type=int, metavar="K", help="K random trials per class")
    s.add_argument("--limit", type=int, metavar="N", help="at most N random trials (after --per-class)")
    s.add_argument("--shard", default="0/1", metavar="I/N",
                   help="this process's share of the selected trials (e.g. one per GPU), merged later with --merge")

    n = parser.add_argument_group("scores: N-way top-k accuracy and reconstruction metrics")
    n.add_argument("--nway", type=int, nargs="+", metavar="N", help="candidate counts N (default 50 35; with --classifier)")
    n.add_argument("--topk", type=int, nargs="+", metavar="K", help="k of top-k (default 1; with --classifier)")
    n.add_argument("--draws", type=int, default=50, help="seeded distractor draws per image (default 50)")
    n.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CI (default 1000)")
    n.add_argument("--recon-models", metavar="DIR",
                   help="reconstruction metrics: directory of the feature networks (alexnet.pth, inception_v3.pth, "
                        "efficientnet_b1.pth, swav_resnet50.pth, clip/, fid_inception.pth; docs/generation.md). "
                        "Without it only PixCorr and SSIM are computed")
    n.add_argument("--grid-rows", type=int, default=8, help="trials per grid image (default 8)")


def _scoring_settings(args: argparse.Namespace, run_module):
    """(N-way settings, reconstruction settings) from the command line.

    The N-way settings are built (and so checked) even without ``--classifier``: an impossible
    ``--nway``/``--topk`` is refused in every case; the caller scores N-way only with a classifier.
    """
    nway = run_module.NWaySettings(
        classifier=args.classifier or "", ns=tuple(args.nway or (50, 35)), ks=tuple(args.topk or (1,)),
        draws=args.draws, seed=args.seed, n_boot=args.n_boot, device=args.device,
    )
    if not args.classifier and (args.nway or args.topk):
        print("eegalign: warning: --nway/--topk score N-way accuracy with an ImageNet-1k classifier: without "
              "--classifier M no N-way accuracy is computed", file=sys.stderr)
    recon = run_module.ReconSettings(models_dir=args.recon_models, device=args.device, n_boot=args.n_boot, seed=args.seed)
    return nway, recon


def _generation_settings(args: argparse.Namespace, route: str, run_module):
    return run_module.GenerationSettings(
        sd_model=args.sd_model, ip_adapter=args.ip_adapter if route == "image" else None,
        ip_adapter_weight=args.ip_adapter_weight, ip_adapter_subfolder=args.ip_adapter_subfolder,
        ip_adapter_scale=args.ip_adapter_scale, prompt=args.prompt, steps=args.steps, guidance=args.guidance,
        size=args.size, seed=args.seed, scheduler=args.scheduler, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, safety_checker=args.safety_checker, skip_true=args.skip_true,
        match_norm=args.match_norm, cpu_offload=args.cpu_offload, vae_slicing=args.vae_slicing,
        vae_tiling=args.vae_tiling,
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eegalign.errors import ConfigError
    from eegalign.generation import run as R
    from eegalign.generation.selection import describe_selection
    from eegalign.outputs import check_not_input, check_out

    out = Path(args.out)
    nway, recon = _scoring_settings(args, R)
    from eegalign.generation.settings import validate_scoring

    validate_scoring(nway, recon, args.grid_rows)  # every mode: --nway/--topk refused before any model or image
    nway = nway if args.classifier else None
    if args.nway_only:
        if nway is None:
            raise ConfigError("--nway-only needs --classifier M (an ImageNet-1k classifier)")
        R.rescore(out, nway, recon=recon if args.recon_models else None, grid_rows=args.grid_rows)
        print(f"N-way accuracy written to {out / R.INDEX} and {out / R.REPORT}")
        return 0
    if args.merge:
        check_out(out, "generation", inputs=args.merge, overwrite=args.overwrite)
        R.merge(args.merge, out, nway=nway, recon=recon, grid_rows=args.grid_rows, overwrite=args.overwrite)
        print(f"merged {len(args.merge)} directories into {out}; report: {out / R.REPORT}")
        return 0
    if bool(args.predictions) == bool(args.model):
        raise ConfigError("pass --predictions FILE or --model DIR --cache CACHE (or --nway-only / --merge DIR ... for existing outputs)")
    if args.model and not args.cache:
        raise ConfigError("--model needs --cache CACHE (the cache whose --split is predicted)")
    check_out(out, "generation", inputs=[args.predictions, args.model, args.cache, args.images], overwrite=args.overwrite)

    from eegalign.predictions import Predictions

    if args.model:  # a model directory (`eegalign export`) run over one split of the cache
        from eegalign.evaluate import predict_checkpoint

        preds, info, _ = predict_checkpoint(args.model, args.cache, args.split, device="cpu")
        if info.get("evaluated_subjects"):  # the run's own subjects (a leave-one-subject-out model: the left-out one)
            chosen = info["evaluated_subjects"]
            print(f"generating for subject(s) {chosen['subjects']} of the {args.split} split (from the {chosen['source']})",
                  file=sys.stderr)
    else:
        preds = Predictions.load(args.predictions)
    check_not_input(out, [preds.cache])  # the originals are read from the cache's images/
    shard = R.parse_shard(args.shard)
    indices = R.select_trials(preds.label, per_class=args.per_class, limit=args.limit, seed=args.seed, shard=shard)
    selection = describe_selection(args.per_class, args.limit, args.seed, args.shard, len(indices))
    R.generate_images(
        preds, out, _generation_settings(args, preds.route, R), indices=indices, images_dir=args.images,
        predictions_path=str(args.predictions or f"{args.model} on {args.cache} ({args.split})"), selection=selection, nway=nway, recon=recon,
        grid_rows=args.grid_rows, overwrite=args.overwrite,
    )
    print(f"{len(indices)} trials generated into {out}; report: {out / R.REPORT}")
    return 0
