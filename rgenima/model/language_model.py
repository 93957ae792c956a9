"""The language model inside R-GenIMA and the tokenizer saved beside a model.

The kernel family a language model was loaded with, its rebuild from a config dict, and
the tokenizer's loader. A saved model records its language model's config
(``RGenIMAConfig.text_config``, as LLaVA's ``text_config``) and keeps the tokenizer beside
its weights: these helpers read both back without the backbone's directory, the training
code or a download.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rgenima.model.configuration_rgenima import CONFIG_NAME


def _base_attention(language_model) -> str:
    """ "eager" or "sdpa": the kernel family a backbone was loaded with."""
    current = getattr(language_model.config, "_attn_implementation", "sdpa") or "sdpa"
    return "eager" if "eager" in current else "sdpa"


def text_config_of(language_model) -> dict:
    """The JSON-ready config dict of a (possibly LoRA-wrapped) language model."""
    return json.loads(language_model.config.to_json_string(use_diff=False))


def language_model_from_config(text_config: dict, attn_implementation: str = "sdpa"):
    """A freshly initialised base model (``AutoModel``) from its config dict.

    Parameters
    ----------
    text_config : dict
        ``RGenIMAConfig.text_config``; ``model_type`` names the architecture.
    attn_implementation : {"sdpa", "eager"}

    Returns
    -------
    transformers.PreTrainedModel
        In the dtype the config records (as ``load_backbone`` loads it), else float32.
    """
    from transformers import AutoModel

    dtype = getattr(torch, str(text_config.get("dtype") or "float32").replace("torch.", ""), torch.float32)
    return AutoModel.from_config(
        _transformers_config(text_config), attn_implementation=attn_implementation, dtype=dtype
    )


def _transformers_config(text_config: dict):
    from transformers import AutoConfig

    values = {k: v for k, v in text_config.items() if not k.startswith("_attn_implementation")}
    model_type = values.pop("model_type", None)
    if not model_type:
        raise ValueError("'text_config' has no 'model_type': it does not describe a transformers model.")
    return AutoConfig.for_model(model_type, **values)


def _is_peft(language_model) -> bool:
    return hasattr(language_model, "peft_config")


def load_tokenizer(directory: str | Path):
    """The tokenizer saved beside a model by :meth:`RGenIMAForStaging.save_pretrained`.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        With the ``[ROI]`` and ``[COV]`` tokens the model's config refers to.
    """
    from transformers import AutoTokenizer

    from rgenima.model.backbone import COV, ROI

    directory = Path(directory)
    if not (directory / "tokenizer_config.json").is_file():
        raise FileNotFoundError(
            f"{directory}: no tokenizer (tokenizer_config.json); save the model with "
            "save_pretrained(directory, tokenizer=...)."
        )
    # The language model's config, not R-GenIMA's config.json, tells transformers which
    # tokenizer family it is.
    config = json.loads((directory / CONFIG_NAME).read_text()) if (directory / CONFIG_NAME).is_file() else {}
    extra = {"config": _transformers_config(config["text_config"])} if config.get("text_config") else {}
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **extra)
    missing = [t for t in (ROI, COV) if t not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"{directory}: the tokenizer lacks the placeholder token(s) {missing}.")
    return tokenizer
