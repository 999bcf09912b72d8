"""``eegalign models``: the registered encoders, their presets, routes and parameter counts;
``eegalign models NAME``: one encoder's options, their value in each preset, and the ``fit`` flags that set them."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show this encoder's options per preset and how to set them in `eegalign fit`")
    parser.add_argument("--n-chans", type=int, default=128, help="electrodes used to count parameters (default 128)")
    parser.add_argument("--n-times", type=int, default=440, help="samples used to count parameters (default 440)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from eegalign.models import build_model, count_parameters, list_models, model_class

    if args.name is not None:
        return _show_options(args.name, args.json)
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


def _show_options(name: str, as_json: bool) -> int:
    """Print one encoder's hyperparameters (as `eegalign fit --help` lists them): type, value per preset, doc."""
    import json
    import textwrap

    from eegalign.models import model_class
    from eegalign.models.hyperparameters import hyperparameters

    cls = model_class(name)  # ConfigError (one line, exit 2) for an unknown name
    hyper = hyperparameters(cls)
    presets = list(hyper[0].presets) if hyper else list(cls.presets)
    if as_json:
        rows = [{"name": h.name, "type": h.type, "default": h.default, "presets": h.presets, "doc": h.doc,
                 "flag": h.flag} for h in hyper]
        print(json.dumps({"model": name, "class": f"eegalign.models.{cls.__name__}", "default_preset": presets[0],
                          "presets": cls.presets, "hyperparameters": rows}, indent=2))
        return 0
    doc = (cls.__doc__ or "").strip().splitlines()
    print(f"{name}: {doc[0] if doc else cls.__name__}")
    width = max([len(h.name) for h in hyper] + [6]) + 2
    types = max([len(h.type) for h in hyper] + [4]) + 2
    cols = [max(12, *(len(repr(h.presets[p])) + 2 for h in hyper)) for p in presets]
    print(f"{'option':<{width}}{'type':<{types}}" + "".join(f"{p:<{c}}" for p, c in zip(presets, cols)))
    for h in hyper:
        print(f"{h.name:<{width}}{h.type:<{types}}" + "".join(f"{h.presets[p]!r:<{c}}" for p, c in zip(presets, cols)))
        print(textwrap.fill(h.doc, 100, initial_indent=" " * 4, subsequent_indent=" " * 4))
    example = hyper[0].name if hyper else "NAME"
    print(
        f"\nin `eegalign fit`: --model.encoder eegalign.models.{cls.__name__} --model.encoder.init_args.preset "
        f"{presets[0]}\n  and any option above as --model.encoder.init_args.{example} VALUE "
        "(unset: the preset's value; n_chans, n_times and out_shape come from the data;\n  "
        "`eegalign fit --help` lists every encoder's options the same way)"
    )
    return 0
