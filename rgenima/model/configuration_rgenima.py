"""R-GenIMA's configuration: every architecture choice, checked, and its JSON form.

:class:`RGenIMAConfig` composes the RiT config and the language model's own config
(``text_config``), as transformers' LLaVA composes its vision and text configs. Its
:meth:`~RGenIMAConfig.to_dict` and :meth:`~RGenIMAConfig.from_dict` are the
``config.json`` of a saved model (:data:`CONFIG_NAME`); a key this version does not know
is refused, naming it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from torch import nn

from rgenima import STAGES
from rgenima.model.rit import RiTConfig

MODALITIES = ("mri", "snp")
#: Covariate tokens, in order (columns of rgenima.model.inputs.PreparedData.covariates).
COVARIATES = ("age", "sex_female", "education")


@dataclass
class RGenIMAConfig:
    """Every architecture choice of R-GenIMA; composes the RiT config.

    Parameters
    ----------
    rit : RiTConfig or dict
    modalities : tuple of str
        Any non-empty subset of ("mri", "snp").
    projector_hidden_act : str
        Activation of the two-layer projector ("gelu", "relu", "silu").
    n_classes : int
    roi_token_id, covariate_token_id : int
        Ids of the ``[ROI]`` and ``[COV]`` placeholders in the backbone's tokenizer.
    covariates : tuple of str
        Names of the covariate tokens (empty: none).
    intensity_tokens : bool
        Add the regional-intensity token to each ROI token (see rgenima.model.modeling_rgenima).
    rit_gate : bool
        Gate the RiT's visual tokens with a zero-initialised ``tanh`` gate.
    prompt_length : int
        Maximum number of tokens of the genetic segment (prompt and closing ``[SEP]``):
        size of the prompt's attention bias.
    prompt_bias_init : float
        Initial attention bias of the prompt tokens when they are not set from a scan.
    prompt_gate : bool
        With both modalities, gate what attending to the genetic segment changes in each
        layer by ``tanh(g_layer)``, ``g`` initialised at 0 (Flamingo's gated
        cross-attention): the two-modality model then starts as exactly its MRI-only
        part, and the prompt can only add to it as the gates open.
    embed_dropout : float
        Dropout on the token embeddings during training.
    modality_dropout : float
        With both modalities, the probability that a training sample's genetic prompt is
        hidden from attention (0 by default: the two-modality model starts from the
        MRI-only one instead).
    text_config : dict, optional
        The language model's config (``PretrainedConfig.to_dict()``, LLaVA's
        ``text_config``): enough to rebuild it without its directory. Filled from the
        language model when the model is built from one.
    lora : dict, optional
        LoRA settings of the language model (``r``, ``alpha``, ``dropout``,
        ``target_modules``: rgenima.model.backbone.lora_settings), or None for a
        backbone trained in full.
    freeze_input_embeddings : bool
        Keep the language model's input embeddings fixed (the structured genotype
        embeddings of the default backbone).
    """

    # A dict (as read from config.json) is accepted and turned into a RiTConfig.
    rit: RiTConfig = field(default_factory=RiTConfig)
    modalities: tuple[str, ...] = MODALITIES
    projector_hidden_act: str = "gelu"
    n_classes: int = len(STAGES)
    roi_token_id: int = -1
    covariate_token_id: int = -1
    covariates: tuple[str, ...] = ()
    intensity_tokens: bool = True
    rit_gate: bool = True
    prompt_length: int = 0
    prompt_bias_init: float = 0.0
    prompt_gate: bool = False
    embed_dropout: float = 0.1
    modality_dropout: float = 0.0
    text_config: dict | None = None
    lora: dict | None = None
    freeze_input_embeddings: bool = False

    def __post_init__(self) -> None:
        rit: RiTConfig | dict = self.rit
        if isinstance(rit, dict):
            _check_keys(rit, RiTConfig, "rit")
            self.rit = RiTConfig(**rit)
        if self.lora is not None:
            from rgenima.model.backbone import lora_settings

            unknown = sorted(set(self.lora) - {"r", "alpha", "dropout", "target_modules"})
            if unknown:
                raise ValueError(f"unknown LoRA setting(s) {unknown}; expected r, alpha, dropout, target_modules.")
            self.lora = lora_settings(**self.lora)
        self.modalities = tuple(self.modalities)
        self.covariates = tuple(self.covariates)
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"'modalities' must be a non-empty subset of {MODALITIES}; got {self.modalities!r}.")
        if self.projector_hidden_act not in _ACTIVATIONS:
            raise ValueError(
                f"'projector_hidden_act' must be one of {tuple(_ACTIVATIONS)}; got {self.projector_hidden_act!r}."
            )
        unknown = [c for c in self.covariates if c not in COVARIATES]
        if unknown:
            raise ValueError(f"'covariates' must be a subset of {COVARIATES}; got {self.covariates!r}.")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        out["covariates"] = list(self.covariates)
        return out

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> RGenIMAConfig:
        """The config written by :meth:`to_dict` (or a ``config.json``).

        Raises
        ------
        ValueError
            On a key this version does not know, naming it: a config written by other
            code is refused rather than read without it.
        """
        values = dict(values)
        model_type = values.pop("model_type", MODEL_TYPE)
        values.pop("architectures", None)
        if model_type != MODEL_TYPE:
            raise ValueError(f"{source}: 'model_type' is {model_type!r}, not {MODEL_TYPE!r}.")
        _check_keys(values, cls, source)
        return cls(**values)


#: ``model_type`` of R-GenIMA's config.json.
MODEL_TYPE = "rgenima"
#: Files of a directory written by RGenIMAForStaging.save_pretrained.
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def _check_keys(values: dict, cls, source: str) -> None:
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown} for {cls.__name__}; it was written by another "
            "version of rgenima (retrain the model, or use the matching version)."
        )


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}
