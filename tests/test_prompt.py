"""Genetic prompts: text format, missing calls, and spans that map back to genes/SNPs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima.data.prompt import build_prompt, genotype_text, prompt_layout, token_spans

SNPS = pd.DataFrame(
    {
        "snp": ["rs6733839", "rs429358", "rs7412", "rs11136000"],
        "gene": ["BIN1", "APOE", "APOE", "CLU"],
        "pos": [127892810, 45411941, 45412079, 27464519],
        "a1": ["T", "C", "T", "T"],
        "a2": ["C", "T", "C", "C"],
    }
)
PANEL_ORDER = ["APOE", "BIN1", "PICALM", "CLU"]


def test_genotype_text():
    assert genotype_text(2, "C", "T") == "C/C"
    assert genotype_text(1, "C", "T") == "C/T"
    assert genotype_text(0, "C", "T") == "T/T"
    assert genotype_text(np.nan, "C", "T") == "./."
    with pytest.raises(ValueError, match="dosage must be 0, 1, 2 or NaN; got 3"):
        genotype_text(3, "C", "T")


def test_prompt_text_in_panel_order_with_missing_call():
    layout = prompt_layout(SNPS, PANEL_ORDER)
    assert [g for g, _ in layout] == ["APOE", "BIN1", "CLU"]  # PICALM has no SNP
    prompt = build_prompt(np.array([1, 1, 0, np.nan]), SNPS, layout)
    assert prompt.text == "APOE: rs429358 C/T, rs7412 C/C; BIN1: rs6733839 T/C; CLU: rs11136000 ./."


def test_character_spans_cover_exactly_their_text():
    layout = prompt_layout(SNPS, PANEL_ORDER)
    prompt = build_prompt(np.array([2, 1, 1, 0]), SNPS, layout)
    by_name = {(s.kind, s.name): s for s in prompt.spans}
    apoe = by_name[("gene", "APOE")]
    assert prompt.text[apoe.start : apoe.end] == "APOE: rs429358 C/T, rs7412 T/C"
    snp = by_name[("snp", "rs7412")]
    assert prompt.text[snp.start : snp.end] == "rs7412 T/C" and snp.gene == "APOE"
    assert len([s for s in prompt.spans if s.kind == "snp"]) == 4


def _word_tokenizer(texts):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[;:,]\s*|\s+"), behavior="isolated")
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def test_token_spans_map_back_to_the_right_genes():
    layout = prompt_layout(SNPS, PANEL_ORDER)
    prompt = build_prompt(np.array([2, 1, np.nan, 0]), SNPS, layout)
    tokenizer = _word_tokenizer([prompt.text])
    enc = tokenizer(prompt.text, return_offsets_mapping=True)
    spans = token_spans(enc["offset_mapping"], prompt.spans)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    for span in spans:
        piece = "".join(tokens[span.start : span.end])
        if span.kind == "snp":
            assert piece.startswith(span.name)
        else:
            assert piece.startswith(span.name + ":")
    clu = next(s for s in spans if s.name == "CLU")
    assert "".join(tokens[clu.start : clu.end]) == "CLU: rs11136000 C/C"


def test_token_spans_with_a_subword_tokenizer():
    """Character-level BPE splits rsIDs into pieces; spans still cover exactly them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    layout = prompt_layout(SNPS, PANEL_ORDER)
    prompt = build_prompt(np.array([2, 1, 1, 0]), SNPS, layout)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([prompt.text], trainers.BpeTrainer(vocab_size=40, special_tokens=["[UNK]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    enc = fast(prompt.text, return_offsets_mapping=True)
    spans = token_spans(enc["offset_mapping"], prompt.spans)
    for span, char_span in zip(spans, prompt.spans):
        start = enc["offset_mapping"][span.start][0]
        end = enc["offset_mapping"][span.end - 1][1]
        assert (start, end) == (char_span.start, char_span.end)


def test_token_spans_reject_uncovered_span():
    from rgenima.data.prompt import Span

    with pytest.raises(ValueError, match="no token covers gene 'APOE'"):
        token_spans([(0, 0), (0, 3)], [Span("gene", "APOE", "APOE", 10, 14)])


def test_prompt_lists_genes_in_genomic_order_not_panel_order():
    from rgenima.data.genetics import read_gene_panel
    from rgenima.data.manifest import builtin_gene_panel_path
    from rgenima.data.prompt import genomic_gene_order

    panel = read_gene_panel(builtin_gene_panel_path())
    order = genomic_gene_order(panel)
    assert sorted(order) == sorted(panel["symbol"])
    chrom = panel.set_index("symbol").loc[order, "chrom"].astype(int).to_numpy()
    start = panel.set_index("symbol").loc[order, "start"].to_numpy()
    assert (np.diff(chrom) >= 0).all()
    assert all(start[i] <= start[i + 1] for i in range(len(order) - 1) if chrom[i] == chrom[i + 1])
    # The panel lists its AD loci first; the prompt order must not.
    loci = set(panel.loc[panel["ad_locus"].astype(str) == "True", "symbol"])
    first_half = set(order[: len(order) // 2])
    assert 0.3 < len(first_half & loci) / len(first_half) < 0.7
