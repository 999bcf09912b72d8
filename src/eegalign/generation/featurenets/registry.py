"""The ``--recon-models DIR`` layout: which file holds which network, and how each one sees an image.

::

    DIR/alexnet.pth          torchvision AlexNet        (alexnet-owt-7be5be79.pth)            -> alexnet2, alexnet5
    DIR/inception_v3.pth     torchvision Inception-v3   (inception_v3_google-0cc3c7bd.pth)    -> inception, fid
    DIR/efficientnet_b1.pth  torchvision EfficientNet-B1 (efficientnet_b1-c27df63c.pth)       -> effnet
    DIR/swav_resnet50.pth    SwAV ResNet-50             (swav_800ep_pretrain.pth.tar)         -> swav
    DIR/clip/                a transformers CLIP directory (openai/clip-vit-large-patch14)    -> clip, clip_score
    DIR/fid_inception.pth    pytorch-fid's FID Inception (pt_inception-2015-12-05-6726825d.pth) -> fid (standard)

Without the FID Inception, FID is computed on the torchvision Inception-v3 features (a note says
it is then not comparable with papers' FIDs).

Each file may also keep its published name (in brackets) or be a ``.safetensors`` of the same
state dict. Preprocessing follows MindEye's evaluation: the image (RGB in [0, 1]) is resized
bilinearly (antialiased) to ``size`` x ``size`` and normalised with the network's mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: network -> accepted file names inside DIR, first the documented one.
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet.pth", "alexnet.safetensors", "alexnet-owt-7be5be79.pth"),
    "inception": ("inception_v3.pth", "inception_v3.safetensors", "inception_v3_google-0cc3c7bd.pth"),
    "effnet": ("efficientnet_b1.pth", "efficientnet_b1.safetensors", "efficientnet_b1-c27df63c.pth",
               "efficientnet_b1_rwightman-533bc792.pth"),
    "swav": ("swav_resnet50.pth", "swav_resnet50.safetensors", "swav_800ep_pretrain.pth.tar"),
    "clip": ("clip",),
    "fid_inception": ("fid_inception.pth", "fid_inception.safetensors", "pt_inception-2015-12-05-6726825d.pth"),
}
#: network -> square input side (MindEye's ``transforms.Resize`` sizes; CLIP uses its config's image size).
INPUT_SIZES: dict[str, int] = {"alexnet": 256, "inception": 342, "effnet": 255, "swav": 255, "fid_inception": 299}
#: network -> the metrics it feeds.
METRICS_OF: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet2", "alexnet5"),
    "inception": ("inception", "fid"),
    "clip": ("clip", "clip_score"),
    "effnet": ("effnet",),
    "swav": ("swav",),
    "fid_inception": ("fid",),  # loaded last: when present, its FID replaces the torchvision Inception's
}


@dataclass
class FeatureNet:
    """A loaded feature network and how to feed it.

    Attributes:
        name: key of :data:`WEIGHT_FILES`.
        module: eval-mode network on its device.
        size: square input side in pixels.
        mean, std: per-channel normalisation of the [0, 1] RGB input.
        features: raw network output -> {feature name: (B, D) tensor}; the feature names are
            metric names (``alexnet2``...) or, for networks feeding two metrics, the shared one.
        keep_raw: feature names whose vectors are kept (FID needs Inception's, CLIP score CLIP's).
        antialias: antialiased resizing (False for the FID Inception, as pytorch-fid resizes).
    """

    name: str
    module: torch.nn.Module
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    features: Callable[[object], dict[str, torch.Tensor]]
    keep_raw: tuple[str, ...] = ()
    antialias: bool = True


def find_weight(models_dir: str | Path, name: str) -> Path | None:
    """The first existing accepted file (or, for CLIP, directory) of network ``name`` in ``models_dir``."""
    for fname in WEIGHT_FILES[name]:
        path = Path(models_dir).expanduser() / fname
        if (path.is_dir() if name == "clip" else path.is_file()):
            return path
    return None


def _torch_net(name: str, path: Path) -> torch.nn.Module:
    """Build and load one of the four ImageNet networks from ``path`` (strict, weights only)."""
    from eegalign.generation.featurenets.alexnet import AlexNet
    from eegalign.generation.featurenets.efficientnet import EfficientNetB1
    from eegalign.generation.featurenets.inception import InceptionV3
    from eegalign.generation.featurenets.resnet import ResNet50, swav_state_dict
    from eegalign.generation.featurenets.weights import load_strict, read_state_dict, strip_prefix

    sd = strip_prefix(read_state_dict(path), "module.")
    cls = {"alexnet": AlexNet, "inception": InceptionV3, "effnet": EfficientNetB1, "swav": ResNet50, "fid_inception": InceptionV3}[name]
    if name == "swav":
        sd = swav_state_dict(sd)
    try:
        net = cls.from_state_dict(sd)
    except (KeyError, ValueError, StopIteration) as exc:
        from eegalign.errors import WeightsError

        raise WeightsError(f"{path} is not a torchvision-layout {cls.__name__} state dict (missing {exc})") from exc
    if name == "swav" and "fc.weight" not in sd:  # the SwAV release has no classifier: keep the random one
        sd = {**sd, **{k: v for k, v in net.state_dict().items() if k.startswith("fc.")}}
    load_strict(net, sd, path)
    return net


def _clip_net(path: Path) -> torch.nn.Module:
    """A transformers CLIP vision tower with its projection from a local directory (full CLIP or vision-only)."""
    import json

    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    cfg = json.loads((path / "config.json").read_text())
    config = None
    if cfg.get("model_type") == "clip":  # a full CLIP checkpoint: the projection size lives at the top level
        config = CLIPVisionConfig.from_dict({**cfg["vision_config"], "projection_dim": cfg.get("projection_dim", 512)})
    kw = {"config": config} if config is not None else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the text tower's weights are "unexpected" by design: no load report
    hf_logging.disable_progress_bar()
    try:
        return CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True, **kw)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def load_feature_net(name: str, path: Path, device: str) -> FeatureNet:
    """Load network ``name`` from ``path`` onto ``device`` as a :class:`FeatureNet`."""
    if name == "clip":
        module = _clip_net(path)
        size = int(module.config.image_size)
        return FeatureNet(name, module.eval().to(device), size, CLIP_MEAN, CLIP_STD,
                          lambda out: {"clip": out.image_embeds}, keep_raw=("clip",))
    module = _torch_net(name, path).eval().to(device)
    if name == "alexnet":
        feats = lambda out: {"alexnet2": out["features.4"].flatten(1), "alexnet5": out["features.11"].flatten(1)}  # noqa: E731
        return FeatureNet(name, module, INPUT_SIZES[name], IMAGENET_MEAN, IMAGENET_STD, feats)
    if name == "fid_inception":  # pytorch-fid: 299 px, plain bilinear, 2 * x - 1
        if not getattr(module, "fid_variant", False):
            from eegalign.errors import WeightsError

            raise WeightsError(f"{path} is not the FID Inception (expected 1008 classes and no auxiliary classifier)")
        return FeatureNet(name, module, INPUT_SIZES[name], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), lambda out: {name: out},
                          keep_raw=(name,), antialias=False)
    keep = ("inception",) if name == "inception" else ()
    return FeatureNet(name, module, INPUT_SIZES[name], IMAGENET_MEAN, IMAGENET_STD, lambda out: {name: out}, keep_raw=keep)
