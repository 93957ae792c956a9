"""The framework diagram of the R-GenIMA model (MRI ROI tokens + SNP prompt -> stage)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import patches as mpatches

from rgenima import STAGES
from rgenima.plots._style import _CB, STAGE_COLORS, _fig_ax


def _box(
    ax,
    x,
    y,
    w,
    h,
    text,
    *,
    color,
    fontsize=9,
    weight="normal",
    family=None,
    alpha=0.18,
    ls="-",
    text_color="black",
    ha="center",
):
    """A rounded box at (x, y) (lower left), in data units, with centred text."""
    ax.add_patch(
        mpatches.FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            linewidth=1.1,
            linestyle=ls,
            facecolor=(*_rgb(color), alpha),
            edgecolor=color,
        )
    )
    tx = x + w / 2 if ha == "center" else x + 0.08
    ax.text(
        tx,
        y + h / 2,
        text,
        ha=ha,
        va="center",
        fontsize=fontsize,
        weight=weight,
        family=family,
        color=text_color,
        linespacing=1.25,
    )
    return (x, y, w, h)


def _rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def _arrow(ax, start, end, *, color="0.25", ls="-", lw=1.3, rad=0.0):
    ax.add_patch(
        mpatches.FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=11,
            color=color,
            linewidth=lw,
            linestyle=ls,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=2,
            shrinkB=2,
        )
    )


def _tokens(ax, x, y, n, size, colors, gap=0.04):
    """A row of ``n`` small squares (tokens) starting at (x, y)."""
    for i in range(n):
        ax.add_patch(
            mpatches.Rectangle(
                (x + i * (size + gap), y), size, size, facecolor=colors[i % len(colors)], edgecolor="0.2", linewidth=0.6
            )
        )


def plot_framework(
    n_rois: int = 120,
    n_snps: int | None = None,
    n_genes: int | None = None,
    *,
    atlas_name: str = "AAL2",
    cube_size: int = 16,
    rit_hidden_size: int = 32,
    hidden_size: int = 64,
    num_layers: int = 2,
    backbone: str = "LLaMA-architecture\ndecoder",
    pretrained: bool = False,
    prompt_example: str = "APOE: rs429358 C/T, rs7412 C/C;\nBIN1: rs4662703 G/A; CLU: …",
    ax=None,
) -> plt.Figure:
    """The R-GenIMA framework as a block diagram (drawn from code, no image files).

    Imaging path: T1 MRI + atlas -> one cube per ROI -> RiT (one ViT shared by all ROIs)
    -> projector -> ``n_rois`` ROI tokens. Genetic path: SNP genotypes -> genetic
    prompt text -> prompt tokens. Both enter the language model; the hidden state at
    the answer position feeds the four-way stage head. The bottom row lists the
    interpretation outputs (attention, rollout, integrated gradients -> ROI and gene
    signatures, ROI x gene association, GWAS-locus enrichment).

    Parameters
    ----------
    n_rois : int, default 120
        Atlas regions, i.e. ROI tokens.
    n_snps, n_genes : int, optional
        SNPs and genes of the prompt (after QC); left out of the labels when None.
    atlas_name : str, default "AAL2"
    cube_size : int, default 16
        Edge of each ROI cube, in voxels.
    rit_hidden_size : int, default 32
        Hidden size of the RiT (ROI-wise vision transformer).
    hidden_size : int, default 64
        Hidden size of the language model (= ROI token dimension after the projector).
    num_layers : int, default 2
        Decoder layers of the language model.
    backbone : str
        Description of the language-model backbone.
    pretrained : bool, default False
        Pretrained backbone fine-tuned with LoRA (True) or a backbone trained from
        scratch (False); changes the label of the language-model box.
    prompt_example : str
        Genetic prompt excerpt shown in the diagram (genotypes written as alleles).
    ax : matplotlib Axes, optional
        Draw here; by default a new 12 x 5 inch figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _fig_ax(ax, (12.0, 5.0))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 5)
    ax.set_axis_off()
    img_c, gen_c, llm_c, out_c, int_c = _CB[0], _CB[2], _CB[4], "0.35", _CB[1]

    # --- imaging row (y 3.35 .. 4.65)
    y_img, h_row = 3.35, 1.3
    _box(ax, 0.1, y_img, 1.75, h_row, f"T1 MRI\n+ {atlas_name} atlas\n({n_rois} ROIs)", color=img_c)
    _box(ax, 2.15, y_img, 1.6, h_row, f"ROI cubes\n{n_rois} × {cube_size}³ voxels", color=img_c)
    for i in range(3):  # three stacked cubes as an icon
        ax.add_patch(
            mpatches.Rectangle(
                (2.55 + 0.12 * i, y_img + 0.12 + 0.06 * i),
                0.22,
                0.22,
                facecolor="white",
                edgecolor=img_c,
                linewidth=0.8,
            )
        )
    _box(
        ax,
        4.05,
        y_img,
        1.65,
        h_row,
        f"RiT: ROI-wise ViT\n(hidden {rit_hidden_size}),\nzero-init gate\n+ regional-\nintensity token",
        color=img_c,
        fontsize=8.5,
    )
    _box(ax, 6.0, y_img, 1.2, h_row, f"projector\n(MLP)\n{rit_hidden_size} → {hidden_size}", color=img_c)
    ax.text(7.55, y_img + h_row - 0.25, f"{n_rois} ROI\ntokens", ha="center", va="top", fontsize=9)
    _tokens(ax, 7.28, y_img + 0.2, 4, 0.12, [img_c])
    for a, b in ((1.85, 2.15), (3.75, 4.05), (5.7, 6.0), (7.2, 7.27)):
        _arrow(ax, (a, y_img + h_row / 2), (b, y_img + h_row / 2))

    # --- genetic row (y 1.55 .. 2.85)
    y_gen = 1.55
    snp_text = "SNP genotypes"
    if n_snps is not None or n_genes is not None:
        parts = [f"{n_snps} SNPs" if n_snps is not None else None, f"{n_genes} genes" if n_genes is not None else None]
        snp_text += "\n" + ", ".join(p for p in parts if p)
    _box(ax, 0.1, y_gen, 1.75, h_row, snp_text + "\n(PLINK dosages)", color=gen_c)
    _box(ax, 2.15, y_gen, 3.55, h_row, "", color=gen_c)
    ax.text(2.25, y_gen + h_row - 0.18, "genetic prompt (structured text)", ha="left", va="top", fontsize=9)
    ax.text(2.25, y_gen + 0.5, prompt_example, ha="left", va="center", fontsize=8.5, family="monospace")
    _box(
        ax, 6.0, y_gen, 1.2, h_row, "one token per\ngenotype,\nattention prior\n(trend scan)", color=gen_c, fontsize=8.5
    )
    ax.text(7.55, y_gen + h_row - 0.25, "prompt\ntokens", ha="center", va="top", fontsize=9)
    _tokens(ax, 7.28, y_gen + 0.2, 4, 0.12, [gen_c])
    for a, b in ((1.85, 2.15), (5.7, 6.0), (7.2, 7.27)):
        _arrow(ax, (a, y_gen + h_row / 2), (b, y_gen + h_row / 2))

    # --- language model (x 8.1 .. 9.9, y 1.55 .. 4.65)
    llm_text = f"language model\n{backbone}\n{num_layers} layers, hidden {hidden_size}\n" + (
        "pretrained + LoRA\nadapters" if pretrained else "trained from scratch"
    )
    _box(ax, 8.1, y_gen, 1.8, y_img + h_row - y_gen, "", color=llm_c)
    ax.text(9.0, 4.5, llm_text, ha="center", va="top", fontsize=9, linespacing=1.3)
    ax.text(9.0, 2.75, "token sequence", ha="center", va="center", fontsize=7.5, color="0.3")
    ax.text(9.0, 3.05, "+ age, sex, education\ntokens", ha="center", va="center", fontsize=7.5, color="0.3")
    _tokens(ax, 8.22, 2.32, 4, 0.12, [img_c])
    _tokens(ax, 8.87, 2.32, 4, 0.12, [gen_c])
    ax.add_patch(mpatches.Rectangle((9.53, 2.3), 0.18, 0.18, facecolor=llm_c, edgecolor="0.1", linewidth=0.9))
    ax.text(9.62, 2.22, "answer", ha="center", va="top", fontsize=7)
    _arrow(ax, (7.85, y_img + 0.26), (8.1, y_img - 0.1))
    _arrow(ax, (7.85, y_gen + 0.26), (8.1, y_gen + 0.45))

    # --- stage head (x 10.2 .. 11.9): answer state -> head -> NC/SMC/MCI/AD
    _box(ax, 10.2, 1.95, 1.7, 0.9, "stage head\n(linear, answer\nhidden state)", color=out_c, alpha=0.1)
    _arrow(ax, (9.72, 2.39), (10.2, 2.39))
    for i, stage in enumerate(STAGES):
        ax.add_patch(
            mpatches.FancyBboxPatch(
                (10.2 + i * 0.43, 3.3),
                0.38,
                0.4,
                boxstyle="round,pad=0.01,rounding_size=0.05",
                facecolor=STAGE_COLORS[stage],
                edgecolor="0.2",
                linewidth=0.6,
            )
        )
        ax.text(10.39 + i * 0.43, 3.5, stage, ha="center", va="center", fontsize=8, color="white", weight="bold")
    _arrow(ax, (11.05, 2.85), (11.05, 3.28))
    ax.text(11.05, 3.85, "4-way diagnosis\n(softmax over stages)", ha="center", va="bottom", fontsize=8)

    # --- interpretation row (y 0.1 .. 1.1)
    y_int, h_int = 0.1, 0.95
    _box(ax, 0.1, y_int, 2.55, h_int, "attribution\nattention · rollout ·\nintegrated gradients", color=int_c)
    outputs = (
        "ROI signatures\n(stage brain maps)",
        "gene signatures\n(stage rankings)",
        "ROI × gene\nassociation",
        "GWAS AD-locus\nenrichment",
    )
    x = 3.05
    for text in outputs:
        _box(ax, x, y_int, 1.85, h_int, text, color=int_c, ls="--", alpha=0.08)
        x += 2.05
    _arrow(ax, (2.65, y_int + h_int / 2), (3.05, y_int + h_int / 2))
    _arrow(ax, (9.0, y_gen), (1.4, y_int + h_int), color=int_c, ls="--", rad=-0.05)
    ax.text(
        5.0,
        1.28,
        "attributions per subject, grouped by stage",
        ha="center",
        va="center",
        fontsize=8,
        color=int_c,
        style="italic",
    )
    return fig
