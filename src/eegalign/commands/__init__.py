"""One module per CLI command: ``add_arguments(parser)`` and ``run(args) -> int``.

Modules here import only argparse-level things at top level; heavy imports (torch, datasets,
diffusers) happen inside ``run`` so that ``--help`` is instant.
"""
