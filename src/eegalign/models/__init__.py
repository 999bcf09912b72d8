"""EEG encoders: ``build_model(name, preset=None, n_chans=..., n_times=..., out_shape=..., **hyper)``.

Every encoder is a plain ``nn.Module`` mapping (B, n_chans, n_times) -> (B, *out_shape); see
:mod:`eegalign.models.base` for the constructor contract and docs/models.md for the presets.
"""

from eegalign.models.base import EncoderBase, count_parameters, encoder_config
from eegalign.models.baselines import (
    BraindecodeATCNet,
    BraindecodeConformer,
    BraindecodeEEGNet,
    BraindecodeShallow,
    MLPEncoder,
    RidgeModel,
    fit_ridge,
    ridge_features,
)
from eegalign.models.eegformer import EEGFormer
from eegalign.models.eegnet_transformer import EEGNetTransformer
from eegalign.models.nervformer import NervFormer
from eegalign.models.nice import NICE
from eegalign.models.registry import build_model, list_models, model_class
from eegalign.models.seed import from_seed_state_dict
from eegalign.models.cpu_kernels import use_cpu_kernels
from eegalign.pretrained import from_pretrained  # model directories (eegalign export)

__all__ = [
    "EncoderBase", "encoder_config", "from_pretrained", "count_parameters", "build_model", "list_models", "model_class",
    "EEGFormer", "NervFormer", "EEGNetTransformer", "NICE", "MLPEncoder", "BraindecodeEEGNet", "BraindecodeShallow",
    "BraindecodeConformer", "BraindecodeATCNet", "RidgeModel", "fit_ridge", "ridge_features",
    "from_seed_state_dict", "use_cpu_kernels",
]
