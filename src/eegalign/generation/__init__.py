"""Image generation from predicted CLIP embeddings, comparison grids, N-way accuracy and reconstruction metrics.

Modules, by job: :mod:`~eegalign.generation.run` (the ``eegalign generate`` workflow, six calls),
:mod:`~eegalign.generation.settings` (settings and their validation),
:mod:`~eegalign.generation.selection` (trials, originals), :mod:`~eegalign.generation.norms`
(``--match-norm``), :mod:`~eegalign.generation.generator` (pipeline + IP-Adapter, placed),
:mod:`~eegalign.generation.pipelines` and :mod:`~eegalign.generation.ip_batching` (the diffusers
calls, one row per image), :mod:`~eegalign.generation.batches` (the batch loop),
:mod:`~eegalign.generation.scoring` (N-way, reconstruction), :mod:`~eegalign.generation.outputs`
(grids, index, report, ``--nway-only``, ``--merge``); the metrics themselves:
:mod:`~eegalign.generation.nway`, :mod:`~eegalign.generation.recon`,
:mod:`~eegalign.generation.classify`; :mod:`~eegalign.generation.grids` (grids + HTML report).
Importing this package imports nothing heavy.
"""
