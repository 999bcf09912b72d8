"""Image generation from predicted CLIP embeddings, comparison grids, and N-way top-k accuracy.

Modules: :mod:`~eegalign.generation.pipelines` (diffusers SD 1.5 + IP-Adapter / prompt embeds),
:mod:`~eegalign.generation.nway` (the pure N-way metric), :mod:`~eegalign.generation.classify`
(ImageNet-1k classifier logits), :mod:`~eegalign.generation.grids` (grids + HTML report),
:mod:`~eegalign.generation.run` (the ``eegalign generate`` workflow). Importing this package
imports nothing heavy.
"""
