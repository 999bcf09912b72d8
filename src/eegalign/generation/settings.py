"""Settings of ``eegalign generate``, validated in one place before any work.

Names used throughout the generation package:

* ``GENERATED_SETS`` = ``("eeg", "true")``: the images the generator makes per trial, from the
  EEG prediction and from the true embedding (same seed);
* ``IMAGE_SETS`` = ``("original", "true", "eeg")``: every image of a trial record (the grid columns),
  the original stimulus included.
"""

from __future__ import annotations

from dataclasses import dataclass

from eegalign.errors import ConfigError
from eegalign.generation.pipelines import SCHEDULERS  # light: diffusers is imported only when a pipeline loads

N_CLASSIFIER_CLASSES = 1000  # N-way candidates are ImageNet-1k classes (generation.classify.N_IMAGENET)

INDEX = "generation.json"
REPORT = "generation.html"
GENERATED_SETS = ("eeg", "true")
IMAGE_SETS = ("original", "true", "eeg")
ROUTE_GUIDANCE = {"image": 7.5, "text": 6.5}  # diffusers' default for IP-Adapter, the seed's 6.5 for text
MATCH_NORM_MODES = ("auto", "train", "test", "off")


@dataclass
class GenerationSettings:
    """Everything that determines the generated pixels (stored in ``generation.json``).

    Args:
        sd_model: Stable Diffusion 1.x pipeline directory or hub id.
        ip_adapter: image route: IP-Adapter weight file, directory or hub id (None on the text route).
        ip_adapter_weight, ip_adapter_subfolder: where the weight is inside ``ip_adapter``.
        ip_adapter_scale: IP-Adapter attention scale.
        prompt: image route: a text prompt next to the IP-Adapter.
        steps: denoising steps.
        guidance: classifier-free guidance scale; None: the route's default (:data:`ROUTE_GUIDANCE`).
        size: image side in pixels (a multiple of 8).
        seed: base seed; trial i uses seed + i.
        scheduler: a key of :data:`eegalign.generation.pipelines.SCHEDULERS`, or None for the pipeline's own.
        device, dtype: ``auto`` or a torch device / dtype name.
        batch_size: images per pipeline call.
        safety_checker: keep the NSFW safety checker.
        skip_true: do not generate from the true embeddings.
        match_norm: ``auto``, ``train``, ``test`` or ``off`` (:mod:`eegalign.generation.norms`).
        cpu_offload, vae_slicing, vae_tiling: memory options (:func:`~eegalign.generation.pipelines.place_pipeline`).
    """

    sd_model: str
    ip_adapter: str | None = None
    ip_adapter_weight: str | None = None
    ip_adapter_subfolder: str | None = None
    ip_adapter_scale: float = 1.0
    prompt: str = ""
    steps: int = 50
    guidance: float | None = None
    size: int = 512
    seed: int = 0
    scheduler: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4
    safety_checker: bool = False
    skip_true: bool = False
    match_norm: str = "auto"
    cpu_offload: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False

    def guidance_for(self, route: str) -> float:
        """The guidance scale used on ``route``."""
        return ROUTE_GUIDANCE[route] if self.guidance is None else float(self.guidance)

    def generated_sets(self) -> tuple[str, ...]:
        """The sets this run generates: ``("eeg", "true")``, or ``("eeg",)`` with ``skip_true``."""
        return ("eeg",) if self.skip_true else GENERATED_SETS


@dataclass
class NWaySettings:
    """N-way top-k accuracy with an ImageNet-1k classifier (:mod:`eegalign.generation.nway`)."""

    classifier: str
    ns: tuple[int, ...] = (50, 35)
    ks: tuple[int, ...] = (1,)
    draws: int = 50
    seed: int = 0
    n_boot: int = 1000
    batch_size: int = 32
    device: str = "auto"


@dataclass
class ReconSettings:
    """Reconstruction metrics (:mod:`eegalign.generation.recon`).

    Args:
        models_dir: the ``--recon-models`` directory; None: PixCorr and SSIM only.
        device: device of the feature networks.
        n_boot: bootstrap resamples of the 95% CIs.
        seed: seed of the shuffled pairing and the bootstrap.
    """

    models_dir: str | None = None
    device: str = "auto"
    n_boot: int = 1000
    seed: int = 0


def validate_generation(settings: GenerationSettings, route: str) -> None:
    """Refuse inconsistent settings for ``route`` with one sentence (:class:`ConfigError`)."""
    if route not in ROUTE_GUIDANCE:
        raise ConfigError(f"route must be 'image' or 'text', got {route!r}")
    if settings.prompt and route == "text":
        raise ConfigError("--prompt applies to the image route only (the text route's prompt is the prediction)")
    if settings.steps < 1 or settings.batch_size < 1:
        raise ConfigError("--steps and --batch-size must be >= 1")
    if settings.size < 8 or settings.size % 8:
        raise ConfigError(f"--size must be a positive multiple of 8, got {settings.size}")
    if settings.scheduler is not None and settings.scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown --scheduler {settings.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if settings.match_norm not in MATCH_NORM_MODES:
        raise ConfigError(f"--match-norm must be one of {', '.join(MATCH_NORM_MODES)}, got {settings.match_norm!r}")


def validate_scoring(nway: NWaySettings | None, recon: ReconSettings | None, grid_rows: int) -> None:
    """Refuse bad N-way / reconstruction / grid settings before any image is generated."""
    if grid_rows < 1:
        raise ConfigError(f"--grid-rows must be >= 1, got {grid_rows}")
    if nway is not None:
        if min(nway.ns) < 2 or min(nway.ks) < 1 or any(k > n for n in nway.ns for k in nway.ks):
            raise ConfigError(f"--nway N must be >= 2 and --topk k in [1, N]: got N {list(nway.ns)}, k {list(nway.ks)}")
        if max(nway.ns) > N_CLASSIFIER_CLASSES:  # candidates are the classifier's classes: checked before generating
            raise ConfigError(f"--nway N must be at most {N_CLASSIFIER_CLASSES} (the ImageNet-1k classifier's classes), "
                              f"got {max(nway.ns)}")
        if nway.draws < 1 or nway.n_boot < 1:
            raise ConfigError("--draws and --n-boot must be >= 1")
    if recon is not None and recon.n_boot < 1:
        raise ConfigError("--n-boot must be >= 1")
