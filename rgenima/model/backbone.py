"""Language-model backbone: load any Hugging Face transformer from a local directory.

The default backbone is a small LLaMA-architecture model created from
:class:`DefaultBackboneConfig`, with a word-level tokenizer trained locally (the
``tokenizers`` library) on the genetic-prompt vocabulary. It is saved with
``save_pretrained`` and loaded back through :func:`load_backbone`, exactly the path a
user's pretrained checkpoint directory takes; pretrained backbones are adapted with
LoRA (peft) instead of being trained in full.

Default tokenizer: one token per SNP genotype. The prompt
``APOE: rs429358 C/T, rs7412 C/C; BIN1: ...`` is pre-split on ", " and "; " into units
(``APOE: rs429358 C/T``, ``rs7412 C/C``, ...), each a word of the vocabulary, so that a
prompt of n SNPs is n tokens and stays readable; the gene symbol rides on its first
SNP's token. Every unit that can occur (each SNP with each of its three genotypes and
the missing call) is in the vocabulary, so no prompt hits an unknown token.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from rgenima import STAGES

logger = logging.getLogger(__name__)

#: Special tokens of the default tokenizer; other tokenizers get [ROI] and [COV] added
#: (placeholders of the ROI tokens and of the covariate tokens).
PAD, UNK, BOS, SEP, ROI, COV = "[PAD]", "[UNK]", "[BOS]", "[SEP]", "[ROI]", "[COV]"
#: Question placed after the inputs; the class is read at its last token.
QUESTION = "Question: which stage of Alzheimer's disease? Answer:"


class BackboneError(ValueError):
    """A backbone directory is missing or does not hold a Hugging Face transformer."""


@dataclass
class DefaultBackboneConfig:
    """Size of the default LLaMA-architecture backbone (trained from scratch)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    extra: dict = field(default_factory=dict)


def prompt_units(snps: pd.DataFrame, gene_order: list[str]) -> list[str]:
    """Every vocabulary unit of the default tokenizer for a SNP table.

    Parameters
    ----------
    snps : DataFrame
        ``snp``, ``gene``, ``pos``, ``a1``, ``a2`` (rgenima.data.prompt conventions).
    gene_order : list of str
        Panel genes in panel order.
    """
    from rgenima.data.prompt import MISSING_CALL, prompt_layout

    units = []
    for gene, rows in prompt_layout(snps, gene_order):
        for k, j in enumerate(rows):
            row = snps.iloc[j]
            for gt in (f"{row.a1}/{row.a1}", f"{row.a1}/{row.a2}", f"{row.a2}/{row.a2}", MISSING_CALL):
                unit = f"{row.snp} {gt}"
                units.append(f"{gene}: {unit}" if k == 0 else unit)
    return units


def train_prompt_tokenizer(units: list[str]):
    """Word-level fast tokenizer whose words are the prompt units (and the question).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"; |, "), behavior="removed")
    specials = [PAD, UNK, BOS, SEP, ROI, COV]
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1, show_progress=False)
    tok.train_from_iterator([*units, QUESTION, *STAGES], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        bos_token=BOS,
        sep_token=SEP,
        additional_special_tokens=[ROI, COV],
    )


def create_default_backbone(
    out_dir: str | Path,
    snps: pd.DataFrame,
    gene_order: list[str],
    config: DefaultBackboneConfig = DefaultBackboneConfig(),
    seed: int = 0,
) -> Path:
    """Create, and save with ``save_pretrained``, the default backbone for a SNP table.

    Returns
    -------
    Path
        ``out_dir``, loadable with :func:`load_backbone`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = train_prompt_tokenizer(prompt_units(snps, gene_order))
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id,
        tie_word_embeddings=True,
        **config.extra,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama)
    with torch.no_grad():
        table = model.get_input_embeddings().weight
        table.copy_(genotype_embeddings(tokenizer, table, seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "rgenima_backbone.json").write_text(
        json.dumps(
            {"kind": "rgenima-default", "pretrained": False, "freeze_input_embeddings": True, "config": asdict(config)},
            indent=1,
        )
        + "\n"
    )
    return out_dir


def genotype_embeddings(tokenizer, table, seed: int = 0):
    """Structured input embeddings for the default tokenizer's genotype units.

    A unit ``rsID x/y`` is embedded as ``e_snp + dose * d + missing * m``: a random
    identity vector of the SNP, plus the count of its a1 allele along a shared *dose*
    direction (or a shared *missing-call* direction). Kept frozen during training
    (``freeze_input_embeddings`` in rgenima_backbone.json), this lets the backbone learn
    which SNPs to attend to and how their dose matters, but not memorise every
    subject's combination of genotype tokens, which per-genotype free embeddings allow
    on a cohort of a few hundred subjects. Other tokens keep their random rows.
    """
    import torch

    from rgenima.data.prompt import MISSING_CALL

    generator = torch.Generator().manual_seed(seed + 17)
    out = table.detach().clone()
    hidden = out.shape[1]
    dose_dir = torch.randn(hidden, generator=generator)
    dose_dir /= dose_dir.norm()
    missing_dir = torch.randn(hidden, generator=generator)
    missing_dir /= missing_dir.norm()
    scale = float(out.std())
    units = {}
    for unit, idx in tokenizer.get_vocab().items():
        parts = unit.split(": ", 1)[-1].split(" ")  # "APOE: rs429358 C/T" -> ["rs429358", "C/T"]
        if len(parts) == 2 and parts[0].startswith("rs") and "/" in parts[1]:
            units[idx] = (parts[0], parts[1])
    # The heterozygote unit is written a1/a2, which tells each SNP's a1 allele.
    a1_of = {}
    for snp, genotype in units.values():
        a, b = genotype.split("/")
        if a != b and genotype != MISSING_CALL:
            a1_of[snp] = a
    identity: dict[str, torch.Tensor] = {}
    for idx, (snp, genotype) in sorted(units.items()):
        if snp not in identity:
            identity[snp] = torch.randn(hidden, generator=generator) * scale
        vec = identity[snp].clone()
        if genotype == MISSING_CALL:
            vec += 0.5 * scale * hidden**0.5 * missing_dir
        else:
            a, b = genotype.split("/")
            dose = (a == a1_of.get(snp)) + (b == a1_of.get(snp))
            vec += 0.5 * (dose - 1.0) * scale * hidden**0.5 * dose_dir
        out[idx] = vec
    return out


def backbone_info(path: str | Path) -> dict:
    """What rgenima wrote about a backbone it created (empty for any other model)."""
    marker = Path(path) / "rgenima_backbone.json"
    return json.loads(marker.read_text()) if marker.is_file() else {}


def is_pretrained(path: str | Path) -> bool:
    """False for a default backbone created by rgenima (trained in full), else True."""
    return bool(backbone_info(path).get("pretrained", True))


def load_backbone(path: str | Path, attn_implementation: str = "sdpa"):
    """Load a transformer (base model, no LM head) and its tokenizer from a directory.

    Parameters
    ----------
    path : str or Path
        A local directory written by ``save_pretrained`` (config.json, weights,
        tokenizer files). Nothing is downloaded.
    attn_implementation : {"sdpa", "eager"}
        "eager" whenever attention weights are needed (attributions): with sdpa,
        ``output_attentions`` has changed behaviour across transformers versions.

    Returns
    -------
    model : transformers.PreTrainedModel
        The base model (e.g. ``LlamaModel``), taking ``inputs_embeds``.
    tokenizer : transformers.PreTrainedTokenizerFast
        With ``[ROI]`` and ``[COV]`` placeholder tokens (added if missing).
    """
    from transformers import AutoModel, AutoTokenizer

    if attn_implementation not in ("sdpa", "eager"):
        raise ValueError(f"'attn_implementation' must be one of ('sdpa', 'eager'); got {attn_implementation!r}.")
    path = _check_backbone_dir(path)
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation=attn_implementation)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise BackboneError(f"cannot load the transformer in {path}: {type(exc).__name__}: {exc}") from None
    if add_placeholder_tokens(tokenizer, source=path):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return model, tokenizer


def _check_backbone_dir(path: str | Path) -> Path:
    """``path``, if it holds a transformer's config.json; else a BackboneError saying why."""
    from transformers import AutoConfig

    path = Path(path)
    if not path.is_dir():
        raise BackboneError(f"backbone directory not found: {path}")
    if not (path / "config.json").is_file():
        raise BackboneError(
            f"{path} is not a Hugging Face transformer directory: no config.json "
            "(expected the output of `save_pretrained`)."
        )
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises ValueError/OSError/KeyError for bad configs
        raise BackboneError(f"{path}/config.json is not a transformer configuration: {exc}") from None
    return path


def load_backbone_tokenizer(path: str | Path):
    """The tokenizer of a backbone directory as :func:`load_backbone` returns it (with
    ``[ROI]`` and ``[COV]``, the same ids), without loading the model's weights."""
    from transformers import AutoTokenizer

    path = _check_backbone_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise BackboneError(f"cannot load the tokenizer in {path}: {type(exc).__name__}: {exc}") from None
    add_placeholder_tokens(tokenizer, source=path)
    return tokenizer


def add_placeholder_tokens(tokenizer, source: str | Path = "the backbone") -> bool:
    """Add the ``[ROI]`` and ``[COV]`` placeholders (and a pad token) where missing.

    Returns
    -------
    bool
        True if tokens were added: the model's embedding table must then be resized.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise BackboneError(f"{source}: the tokenizer must be a fast tokenizer (offsets are needed for spans).")
    missing = [t for t in (ROI, COV) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return bool(missing)


def lora_settings(r: int = 8, alpha: int = 16, dropout: float = 0.05, target_modules=("q_proj", "v_proj")) -> dict:
    """LoRA settings as :class:`rgenima.model.rgenima.RGenIMAConfig` stores them: the
    keyword arguments of :func:`add_lora`, JSON-ready."""
    return {"r": int(r), "alpha": int(alpha), "dropout": float(dropout), "target_modules": list(target_modules)}


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, target_modules=("q_proj", "v_proj")):
    """Wrap a pretrained backbone with LoRA adapters (peft); only adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none")
    return get_peft_model(model, config)
