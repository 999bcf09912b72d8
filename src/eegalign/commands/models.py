"""``eegalign models``: the registered encoders, their presets, routes and parameter counts."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-chans", type=int, default=128, help="electrodes used to count parameters (default 128)")
    parser.add_argument("--n-times", type=int, default=440, help="samples used to count parameters (default 440)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from eegalign.models import build_model, count_parameters, list_models, model_class

    rows = []
    for name in list_models():
        cls = model_class(name)
        for preset in cls.presets:
            for route in cls.routes:
                out_shape = (1024,) if route == "image" else (77, 768)
                kw = dict(preset=preset, n_chans=args.n_chans, n_times=args.n_times, out_shape=out_shape)
                try:  # shapes only: no memory, no initialisation cost
                    with torch.device("meta"):
                        model = build_model(name, **kw)
                except Exception:  # noqa: BLE001 - a backbone that runs data through itself when built
                    model = build_model(name, **kw)
                rows.append(
                    {"model": name, "preset": preset, "route": route, "out_shape": list(out_shape),
                     "params": count_parameters(model), "class": f"{cls.__module__}.{cls.__name__}"}
                )
    rows.append({"model": "ridge", "preset": "-", "route": "image|text", "out_shape": None, "params": None,
                 "class": "closed form: `eegalign baseline ridge`"})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"parameters for {args.n_chans} channels x {args.n_times} samples")
    print(f"{'model':<24}{'preset':<11}{'route':<11}{'output':<10}{'parameters':>14}  class")
    for r in rows:
        shape = "x".join(map(str, r["out_shape"])) if r["out_shape"] else "-"
        params = f"{r['params']:,}" if r["params"] is not None else "-"
        print(f"{r['model']:<24}{r['preset']:<11}{r['route']:<11}{shape:<10}{params:>14}  {r['class']}")
    return 0
