"""Training profiles: model size and optimisation settings, and the folder name of a
model configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rgenima.model.backbone import DefaultBackboneConfig
from rgenima.model.rit import RiTConfig

#: What the warm-started two-modality model trains: every parameter, the language model
#: and what reads the prompt (the image and covariate pathways frozen), or only the
#: prompt's attention bias and the stage head.
WARM_START_TRAINABLE = {
    "all": None,
    "language_model": ("language_model.", "score.", "prompt_bias", "prompt_gate"),
    "head": ("score.", "prompt_bias", "prompt_gate"),
}


@dataclass
class TrainProfile:
    """Model size and optimisation settings.

    ``quick`` is for tests and smoke runs, ``default`` is the CPU study (the book),
    ``gpu`` a larger model for a GPU.

    The learning rate warms up linearly over ``warmup_epochs`` and then follows a
    cosine decay to zero at ``max_epochs``. Validation, early stopping and the saved
    ``best`` weights use an exponential moving average of the weights (``ema_decay``
    per optimiser step; 0 disables it): on a validation split of a few dozen subjects
    the raw weights' validation loss jumps from epoch to epoch, the average's does not.
    With ``mixup_alpha`` > 0, every training batch is mixed (mixup on the input
    embeddings, mixing weight drawn from Beta(alpha, alpha)).

    ``intensity_tokens``, ``rit_gate``: the ROI tokens (rgenima.model.rgenima). The
    genetic segment's attention bias starts from a training-fold association scan
    (``prompt_bias="scan"``, scaled by ``prompt_bias_scale``), from the constant
    ``prompt_bias_init`` ("constant") or is absent ("none"); it learns at
    ``prompt_bias_learning_rate``. With ``prompt_gate`` (both modalities), what attending
    to the genetic segment changes passes through a zero-initialised tanh gate per layer
    (rgenima.model.rgenima.RGenIMAConfig), which learns at ``prompt_gate_learning_rate``.

    With ``warm_start``, the model with both modalities is trained in two stages, as
    LLaVA trains its projector before the whole model: each fold starts from the
    MRI-only model of the same fold (same training subjects, same inner split), whose
    validation loss it must then beat, and is fine-tuned with the genetic prompt for at
    most ``warm_start_epochs`` at ``warm_start_learning_rate``, training only the
    parameters ``warm_start_trainable`` names (:data:`WARM_START_TRAINABLE`).
    """

    name: str
    rit: RiTConfig = field(default_factory=RiTConfig)
    backbone: DefaultBackboneConfig = field(default_factory=DefaultBackboneConfig)
    max_epochs: int = 40
    patience: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    val_fraction: float = 0.15
    grad_clip: float = 1.0
    lora_r: int = 8
    warmup_epochs: int = 1
    ema_decay: float = 0.97
    warm_start: bool = True
    warm_start_epochs: int = 4
    warm_start_learning_rate: float = 5e-4
    warm_start_trainable: str = "language_model"
    intensity_tokens: bool = True
    rit_gate: bool = True
    prompt_bias: str = "scan"
    prompt_bias_init: float = -8.0
    prompt_bias_scale: float = 0.5
    prompt_bias_normalise: str = "length"
    prompt_bias_learning_rate: float = 0.003
    prompt_gate: bool = True
    prompt_gate_learning_rate: float = 0.01
    mixup_alpha: float = 0.4

    def __post_init__(self) -> None:
        if self.prompt_bias not in ("scan", "constant", "none"):
            raise ValueError(f"'prompt_bias' must be one of ('scan', 'constant', 'none'); got {self.prompt_bias!r}.")
        if self.prompt_bias_normalise not in ("length", "total"):
            raise ValueError(
                f"'prompt_bias_normalise' must be 'length' or 'total'; got {self.prompt_bias_normalise!r}."
            )
        if self.warm_start_trainable not in WARM_START_TRAINABLE:
            raise ValueError(
                f"'warm_start_trainable' must be one of {tuple(WARM_START_TRAINABLE)}; "
                f"got {self.warm_start_trainable!r}."
            )

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, TrainProfile] = {
    "quick": TrainProfile(
        name="quick",
        rit=RiTConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32),
        backbone=DefaultBackboneConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        ),
        max_epochs=6,
        patience=6,
        learning_rate=3e-3,
        warm_start_epochs=3,
    ),
    "default": TrainProfile(name="default", max_epochs=20, patience=6),
    "gpu": TrainProfile(
        name="gpu",
        rit=RiTConfig(input_pool=2, patch_size=2, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
        backbone=DefaultBackboneConfig(
            hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8
        ),
        max_epochs=80,
        patience=12,
        batch_size=32,
        learning_rate=5e-4,
    ),
}


def get_profile(name: str) -> TrainProfile:
    if name not in PROFILES:
        raise ValueError(f"'profile' must be one of {tuple(PROFILES)}; got {name!r}.")
    return PROFILES[name]


def configuration_name(
    modalities: tuple[str, ...], profile: str = "default", backbone: str | Path | None = None
) -> str:
    """Folder name of a model configuration: ``rgenima_mri+snp`` for the default profile
    and backbone, with ``__<profile>`` and ``__<backbone folder>`` appended otherwise, so
    that runs with different settings never share checkpoints."""
    name = "rgenima_" + "+".join(m for m in ("mri", "snp") if m in modalities)
    if profile != "default":
        name += f"__{profile}"
    if backbone:
        name += f"__{Path(backbone).name}"
    return name
