"""R-GenIMA: ROI visual tokens and a genetic prompt read by a language model.

The model is split as transformers splits LLaVA; this module re-exports its public names
(``from rgenima.model.rgenima import RGenIMAForStaging`` reads the same model):

- :mod:`rgenima.model.configuration_rgenima`: :class:`RGenIMAConfig`, every architecture
  choice, checked, and its ``config.json`` form;
- :mod:`rgenima.model.modeling_rgenima`: :class:`RGenIMAForStaging` (the input
  sequence, ROI and covariate tokens, prompt bias, gated fusion, saving and loading are
  described there), its output, the projector and the cube helpers;
- :mod:`rgenima.model.key_bias_attention`: the attention kernels of the prompt bias and
  the gated fusion, registered with transformers;
- :mod:`rgenima.model.language_model`: the language model rebuilt from its config dict,
  and the tokenizer saved beside a model.
"""

from rgenima.model.configuration_rgenima import (
    CONFIG_NAME,
    COVARIATES,
    MODALITIES,
    MODEL_TYPE,
    WEIGHTS_NAME,
    RGenIMAConfig,
)
from rgenima.model.key_bias_attention import KEY_BIAS_ATTENTION, register_key_bias_attention
from rgenima.model.language_model import language_model_from_config, load_tokenizer, text_config_of
from rgenima.model.modeling_rgenima import (
    MultiModalProjector,
    RGenIMAForStaging,
    RGenIMAOutput,
    pool_cubes,
    regional_intensity,
)

__all__ = [
    "CONFIG_NAME",
    "COVARIATES",
    "KEY_BIAS_ATTENTION",
    "MODALITIES",
    "MODEL_TYPE",
    "WEIGHTS_NAME",
    "MultiModalProjector",
    "RGenIMAConfig",
    "RGenIMAForStaging",
    "RGenIMAOutput",
    "language_model_from_config",
    "load_tokenizer",
    "pool_cubes",
    "regional_intensity",
    "register_key_bias_attention",
    "text_config_of",
]
