"""Author the study notebooks in notebooks/ (rerun after editing the cells below).

Every notebook has the same ``parameters`` cell, builds a :class:`rgenima.study.Study`
from it, and otherwise calls into ``rgenima``: narrative, figures and tables only.
Figures are glued (myst-nb) and shown through ``{glue:figure}`` with a caption.
``01_cohort`` is authored by make_cohort_notebook.py.
"""

from pathlib import Path

from nbtools import write_notebook

PARAMETERS = """
manifest: str = "data_manifest.yaml"  # data manifest (paths inside it are relative to it)
run_dir: str = "runs/default"  # run directory: prepared data, models, results
seed: int = 0  # folds, initialisation, bootstrap and permutations
profile: str = "default"  # training profile: quick (tests), default (CPU study) or gpu
modalities: str = "mri+snp"  # main configuration: mri, snp or mri+snp
backbone: str = ""  # local Hugging Face model directory (empty: the default LLaMA-architecture backbone)
folds: int = 5  # outer cross-validation folds
"""

SETUP = """
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rgenima import STAGES, plots
from rgenima.study import Study

study = Study.from_parameters(manifest, run_dir, seed, profile, modalities, backbone, folds)
"""


def figure(key: str, caption: str, name: str | None = None) -> tuple[str, str]:
    """A markdown cell showing a glued figure with its caption."""
    label = name or key.replace("_", "-")
    return ("md", f"```{{glue:figure}} {key}\n:name: {label}\n\n{caption.strip()}\n```")


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

# --------------------------------------------------------------------------------------
NOTEBOOKS["00_methods"] = [
("md", """
# Methods

R-GenIMA reads a brain MRI as **one token per atlas region** and a person's SNP
genotypes as **structured text**, and lets a language model attend across both to
classify the stage of Alzheimer's disease (NC, SMC, MCI, AD). This chapter describes the
model as this study runs it; the numbers in the figure and the tables are read from the
code's configuration for the chosen profile, not typed in.
"""),
("parameters", PARAMETERS),
("code", SETUP + """
import dataclasses

from rgenima.data.atlas import load_atlas
from rgenima.data.genetics import read_gene_panel
from rgenima.model.backbone import QUESTION
from rgenima.model.rgenima import RGenIMAConfig
from rgenima.train import get_profile

settings = get_profile(study.profile)
atlas = load_atlas(study.manifest.atlas)
panel = read_gene_panel(study.manifest.gene_panel)
n_rois = len(atlas.labels)
"""),
("md", """
## Framework

Each T1-weighted image, in MNI space, is cut into one cube per region of the atlas
(voxels outside the region set to zero). The **ROI-wise vision transformer (RiT)**
embeds each cube's 3-D patches, adds patch-position and ROI-identity embeddings and runs
a transformer encoder shared by all regions; its class token is the region's visual
token, which a two-layer **projector** maps into the language model's embedding space.
Each ROI token is the sum of a **regional-intensity token** (a learned embedding of the
region plus its mean intensity, standardised on the training fold, along a learned
direction: what a region-based model reads) and the RiT's token behind a
**zero-initialised gate**: the model starts from the regional summary and the RiT adds
what it learns on top. Age, sex and education enter as three **covariate tokens**, as
they enter every baseline. The genotypes become a **genetic prompt**, one clause per
gene (`APOE: rs429358 C/T, rs7412 C/C; BIN1: …`), one token per genotype. The sequence
`[covariate tokens] [ROI tokens] [genetic prompt] [question]` goes through the
**language model**, and the stage is read by a linear head at the answer position. The
prompt's tokens carry a learned attention bias that starts from a per-SNP trend test of
the training fold (genotype dose against stage order): the language model starts by
reading the SNPs with marginal evidence among several hundred. The same attention that
fuses the two modalities is read back for interpretation; in the model with both
modalities, what the prompt adds passes through zero-initialised gates, so that fusion
starts from the image model and can only add to it.
"""),
("code", """
fig = plots.plot_framework(n_rois=n_rois, n_genes=len(panel), atlas_name=atlas.name,
                           cube_size=settings.rit.cube_size, rit_hidden_size=settings.rit.hidden_size,
                           hidden_size=settings.backbone.hidden_size,
                           num_layers=settings.backbone.num_hidden_layers,
                           pretrained=study.backbone is not None)
study.glue_figure("framework", fig, "framework figure")
"""),
figure("framework", """
The R-GenIMA framework as configured for this run (profile `{glue:text}`profile_name``):
{glue:text}`n_rois` atlas regions become {glue:text}`n_rois` visual tokens; genotypes of
the panel's genes become a genetic prompt; a language model attends across both and the
stage is read at the answer position. This is the paper's architecture (its Figure 1) at a
size that trains on a CPU; a pretrained checkpoint can replace the default backbone
(`backbone` parameter), and is then adapted with LoRA.
"""),
("code", """
study.glue_value("profile_name", study.profile)
study.glue_value("n_rois", n_rois)
rows = {f"RiT {k}": v for k, v in dataclasses.asdict(settings.rit).items() if k != "n_rois"}
rows.update({f"language model {k}": v for k, v in dataclasses.asdict(settings.backbone).items() if k != "extra"})
rows.update({k: v for k, v in dataclasses.asdict(settings).items() if k not in ("rit", "backbone")})
model_defaults = RGenIMAConfig()
rows.update({"token embedding dropout": model_defaults.embed_dropout})
pd.Series(rows, name="value").astype(str).rename_axis("setting").to_frame()
"""),
("md", """
## Training and evaluation protocol

- **Cross-validation.** Subject-level stratified k-fold (`folds`); the same folds
  (`folds.csv`) for R-GenIMA, its ablations (MRI only, SNP only) and every baseline.
  Inside each training fold, a stratified validation split drives early stopping; the
  weights evaluated and kept are an exponential moving average of the training weights.
- **Objective.** Cross-entropy with class weights inversely proportional to the stage
  frequencies of the training fold, on mixup batches (each batch's embedded sequences
  mixed pairwise with a Beta(0.4, 0.4) weight, the labels mixed alike).
- **Two stages.** The single-modality models are trained first. The MRI + SNP model of
  each fold starts from the MRI-only model of that fold. In every attention layer, what
  attending to the genetic prompt changes passes through a gate `tanh(g)` with `g = 0`
  at the start (Flamingo's gated cross-attention), so the starting model *is* the
  MRI-only model, validated as such. It is then fine-tuned for a few epochs with the
  image and covariate pathways frozen, and kept only if it beats the MRI-only model on
  the inner validation split by more than one standard error of the paired per-subject
  loss difference; otherwise the MRI-only model is its answer.
- **Baselines, tuned.** The references a reviewer holds an imaging model to, with the
  regularisation chosen by an inner 5-fold cross-validation on the training fold only:
  L2 logistic regression on the ROI means and covariates; the same with the APOE ε4
  and ε2 doses; the linear SVM on ROI means and covariates (Clinica's region-based
  classifier, C by balanced accuracy); and APOE doses with covariates, the genetics-only
  reference. Gradient boosting on ROI means, APOE and covariates. The naive early-fusion
  baselines on all SNP doses (logistic regression, linear SVM, gradient boosting with
  fixed settings) and a late-fusion MLP. "Best baseline" is the best of all of them.
- **References (synthetic cohort only).** The *oracle* (the generator's true posterior,
  the Bayes limit) and a *truth-feature learner* (shrinkage LDA given the true regional
  atrophy, the causal genotypes and age).
- **Statistics.** Bootstrap over subjects for every confidence interval; paired
  comparisons by McNemar's exact test and by a paired bootstrap of the difference in
  balanced accuracy. Designs are compared over several seeds of the outer split and on
  an **external cohort** (the trained fold models, their probabilities averaged, applied
  to a second cohort that shares no subject with the first).
- **Attributions.** Computed only on held-out subjects, each by the model of the fold in
  which it was a test subject: attention from the answer position (per layer and
  averaged), attention rollout, and Integrated Gradients; aggregated to regions, SNPs and
  genes; checked against a model with re-initialised weights.
- **Enrichment.** Top-k genes against the panel's GWAS-supported AD loci: hypergeometric
  test and a rank-based permutation test, Benjamini–Hochberg across stages and k.

The question asked at the end of every sequence:
"""),
("code", """
print(QUESTION)
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["02_preparation"] = [
("md", """
# Data preparation

From the manifest's files to model-ready inputs, cached in the run directory
(`prepared/`, keyed by the checksum of every input and setting, so a rerun only reads).

- **MRI.** Each image is checked to lie in the atlas's space (coverage and centre of
  mass), then one cube per atlas region is sampled (one trilinear resampling per image)
  and intensities are normalised by the image's mean inside the atlas.
- **Genotypes.** PLINK 1.9-equivalent quality control (call rate, minor allele
  frequency, Hardy–Weinberg exact test with PLINK's mid-p option), then SNPs are mapped to
  the panel's genes by position, and one genetic prompt is written per subject.
"""),
("parameters", PARAMETERS),
("code", SETUP + """
from rgenima.data.cohort import prepare_cohort

prepared = prepare_cohort(study.manifest, study.run_dir)
info = json.loads((prepared / "prepare.json").read_text())
genetics = info["genetics"]
display(Markdown(f"**{info['n_subjects']} subjects**, **{info['n_rois']} ROI tokens** each, "
                 f"**{genetics['n_snps_kept']} SNPs** in **{genetics['n_genes_with_snps']} genes** after QC."))
pd.Series(info["seconds"], name="seconds").rename_axis("step").to_frame()
"""),
("md", """
## Genotype quality control

SNPs removed by each criterion (thresholds from the manifest). Per-sample call rates are
summarised, never listed, since rows would carry subject identifiers.
"""),
("code", """
snp_qc = pd.read_csv(prepared / "snp_qc.tsv", sep="\\t")
removed = snp_qc.loc[~snp_qc["pass"], "fail_reason"].fillna("").str.split(";").explode()
table = pd.DataFrame({"SNPs removed": removed[removed != ""].value_counts()}).rename_axis("criterion")
table.loc["kept"] = int(snp_qc["pass"].sum())
study.publish(table, "SNP QC table")
"""),
("code", """
sample_qc = pd.read_csv(prepared / "sample_qc.tsv", sep="\\t")
study.publish(sample_qc["call_rate"].describe().rename("sample call rate").to_frame().T.round(4),
              "sample call-rate summary")
"""),
("md", """
## Regional intensity by stage

Normalised mean intensity of the regions with the strongest difference between AD and
NC (a grey-matter loss lowers it). These are the ROI summary features the baselines use;
R-GenIMA sees the whole cube of each region.
"""),
("code", """
import numpy as np

from rgenima.model.inputs import PreparedData

data = PreparedData.load(prepared)
features = pd.DataFrame(data.roi_features, columns=data.rois["name"])
features["stage"] = pd.Categorical(data.subjects["stage"], categories=list(STAGES), ordered=True)
fig = plots.plot_roi_features_by_stage(features, top=8)
study.glue_figure("roi_features_by_stage", fig, "ROI features by stage")
"""),
figure("roi_features_by_stage", """
Normalised mean intensity of the eight regions that differ most between AD and NC
(Cohen's d), by stage. On the synthetic cohort the regions planted as atrophic in AD
should lead; the paper does not publish regional effect sizes to compare with.
"""),
("md", """
## The genetic prompt

What the language model reads for one subject (the first clauses). For a restricted
cohort the genotypes are masked (`?/?`): only the layout, genes and SNPs are shown.
"""),
("code", """
import re

text = data.prompts[0]["text"]
if study.restricted:
    text = re.sub(r"(rs\\d+) \\S+/\\S+", r"\\1 ?/?", text)
print(text[:400] + " …")
print(f"\\nprompt length: {len(data.snps)} SNP tokens in {data.snps['gene'].nunique()} genes")
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["03_training"] = [
("md", """
# Training

R-GenIMA with both modalities, its two ablations (MRI only, SNP only), the baselines
(tuned ROI and ROI + APOE references and naive early fusion) and, on the synthetic
cohort, the two references, all on the same folds.
Finished folds are reused, so rerunning this notebook on a finished run directory only
reads results; an interrupted run resumes from its last checkpoint. On a machine with a
GPU, training uses it (bf16 autocast); see the Reproducibility chapter for several GPUs.
"""),
("parameters", PARAMETERS + """ablations: bool = True  # also train the MRI-only and SNP-only configurations
"""),
("code", SETUP + """
from rgenima.data.cohort import prepare_cohort
from rgenima.train import train_study

prepare_cohort(study.manifest, study.run_dir)
truth_dir = study.truth_path.parent if study.truth_path else None
steps = train_study(study.run_dir, truth_dir, modalities=study.modalities, ablations=bool(ablations),
                    n_folds=study.folds, seed=study.seed, profile=study.profile, backbone=study.backbone)
steps.assign(minutes=(steps["seconds"] / 60).round(2))
"""),
("md", """
## Learning curves

Training and validation loss of the main configuration in each fold; the marker is the
epoch whose (averaged) weights were kept.
"""),
("code", """
histories, best = plots.load_training_histories(study.run_dir, study.configuration)
fig = plots.plot_training_curves(histories, best, title=study.configuration)
study.glue_figure("training_curves", fig, "training curves")
summary = json.loads((study.run_dir / "models" / study.configuration / "training.json").read_text())
folds_table = pd.DataFrame(summary["folds"])[["best_epoch", "epochs", "seconds", "world_size"]]
folds_table.index.name = "fold"
study.glue_value("n_epochs_mean", float(folds_table["epochs"].mean()))
study.glue_value("n_folds_kept_start", int((folds_table["best_epoch"] == -1).sum()))
study.glue_value("n_folds_total", len(folds_table))
folds_table
"""),
figure("training_curves", """
Loss of the main configuration per fold (training: mean over the epoch's batches;
validation: the inner validation split, with the averaged weights). Folds stopped after
{glue:text}`n_epochs_mean:.1f` epochs on average. A validation loss that flattens while
the training loss keeps falling marks where more epochs stop helping at this cohort size.
For the warm-started MRI + SNP model, epoch −1 is its MRI-only start: a fold whose
`best_epoch` is −1 kept the MRI-only model, because no epoch of fine-tuning with the
genetic prompt beat it on the inner validation split by more than one standard error
({glue:text}`n_folds_kept_start` of the {glue:text}`n_folds_total` folds here).
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["04_evaluation"] = [
("md", """
# Performance

Out-of-fold predictions of every model on the same subjects and folds. Confidence
intervals are percentile bootstrap intervals over subjects (2,000 resamples); paired
comparisons resample the same subjects for both models. The bar a reviewer holds an
imaging model to is a *tuned* logistic regression on the regional means: the baselines
below include it, with and without APOE, and Clinica's region-based SVM.
"""),
("parameters", PARAMETERS + """batch_root: str = "runs"  # where `rgenima batch` writes batch_summary.csv
external_manifest: str = ""  # manifest of an external validation cohort (empty: none)
"""),
("code", SETUP + """
from rgenima.display import readable_table
from rgenima.evaluate import comparison_table, evaluate_run, load_predictions, metrics_table

metrics = evaluate_run(study.run_dir, main=study.configuration, seed=study.seed)
table = metrics_table(metrics)
study.publish(readable_table(table.round(3)), "metrics table")
"""),
("code", """
main = metrics["configurations"][study.configuration]["metrics"]
study.glue_value("bacc_main", main["balanced_accuracy"])
baselines = {n: c["metrics"]["balanced_accuracy"] for n, c in metrics["configurations"].items()
             if c["role"] == "baseline"}
best_baseline = max(baselines, key=baselines.get)
study.glue_value("best_baseline", best_baseline)
study.glue_value("bacc_best_baseline", baselines[best_baseline])
fig = plots.plot_performance(metrics)
study.glue_figure("performance", fig, "performance figure")
"""),
figure("performance", """
Balanced accuracy (95% bootstrap CI) of R-GenIMA, its ablations and the baselines. The
main configuration reaches {glue:text}`bacc_main:.3f`; the best baseline,
`{glue:text}`best_baseline``, {glue:text}`bacc_best_baseline:.3f`. On the synthetic cohort
the vertical lines are the oracle (Bayes limit) and the truth-feature learner; the paper
claims that R-GenIMA with both modalities beats single-modality models and the baselines,
which the comparison table below tests.
"""),
("md", """
## Paired comparisons

R-GenIMA (main configuration) minus each other model: difference in balanced accuracy
with its paired-bootstrap CI and p-value, and McNemar's exact test on the subjects that
exactly one of the two models classifies correctly (`n10`: only R-GenIMA right; `n01`:
only the other). McNemar's test is about accuracy, not balanced accuracy, so the two can
disagree when the models differ on the large classes. Holm-adjusted p-values correct for
the number of comparisons.
"""),
("code", """
study.publish(readable_table(comparison_table(metrics).round(4)), "comparison table")
"""),
("md", """
## Model card

The run's `MODEL_CARD.md` (written by training, completed by the evaluation above): what
the model is, what it was trained on (with the input files' hashes), how well it did, and
what it must not be used for.
"""),
("code", """
card = (study.run_dir / "MODEL_CARD.md").read_text().splitlines()
card = "\\n".join("##" + line if line.startswith("#") else line for line in card)  # headings below this chapter's
display(Markdown(study.publish(card, "model card")))
"""),
("md", """
## External validation

The models trained above, applied without retraining to a second cohort named by its own
manifest (`external_manifest`): every R-GenIMA configuration as the average of its fold
models' probabilities, every baseline refitted fold by fold on the training cohort and
averaged the same way. The external cohort is read exactly as the training cohort was
(same atlas, cube size, SNPs and alleles) and must share no subject with it. For the
default study it is a second synthetic cohort of 2,000 subjects (another seed of the
generator), which narrows the confidence intervals to about ±0.02.
"""),
("code", """
from rgenima.data.manifest import load_manifest
from rgenima.external import validate_external

if external_manifest:
    external = validate_external(study.run_dir, load_manifest(external_manifest), seed=study.seed,
                                 main=study.configuration)
    info = external["external"]
    display(Markdown(f"External cohort **{info['cohort']}**: {info['n_subjects']} subjects "
                     f"({', '.join(f'{k} {v}' for k, v in info['class_counts'].items())})."))
    display(study.publish(readable_table(metrics_table(external).round(3)), "external metrics table"))
    fig = plots.plot_performance(external, title=f"External cohort {info['cohort']}")
    display(study.publish(fig, "external performance figure"))
    display(Markdown("Balanced accuracy on the external cohort (95% bootstrap CI over its subjects). "
                     "Paired comparisons of the main configuration with every other model, on the "
                     "external subjects:"))
    display(study.publish(readable_table(comparison_table(external).round(4)), "external comparison table"))
else:
    print("No external cohort: pass -p external_manifest FILE to `rgenima run` (make book does it "
          "for the synthetic default).")
"""),
("md", """
## Across split seeds, and with more subjects (synthetic cohort)

One split of 400 subjects moves a model's balanced accuracy by about ±0.03 and one fold by
±0.1, more than most differences between designs. The default design was therefore
decided and is reported over three seeds of the outer split, each evaluated by cross-
validation and on the external cohort, by `benchmarks/bench_model.py` (its latest output
is `benchmarks/latest_model.json`; the Benchmarks chapter lists the designs tried). The
learning curve trains on 400, 1,000 and 2,000 subjects of a larger synthetic cohort and
tests on the same external cohort (`benchmarks/bench_learning_curve.py`, with 3-fold
cross-validation to keep the largest size affordable on a CPU).
"""),
("code", """
from rgenima.reproducibility import benchmark_file

repeated, curve = benchmark_file("latest_model.json"), benchmark_file("latest_learning_curve.json")
if study.truth_path is None:
    print("Not the synthetic cohort: the benchmark figures of the default design are in the Benchmarks chapter.")
else:
    for cohort in ("cv", "external"):
        summary = pd.DataFrame(repeated["summary"][cohort]["balanced_accuracy"]).T
        summary = summary.rename(columns={"mean": "balanced_accuracy_mean", "sd": "balanced_accuracy_sd"})
        summary["n_seeds"] = summary["values"].map(len)
        summary = summary.drop(columns="values").rename_axis("configuration")
        label = "cross-validation (400 subjects)" if cohort == "cv" else "external cohort (2,000 subjects)"
        display(Markdown(f"**{label}**, mean and SD over split seeds {repeated['seeds']}:"))
        display(study.publish(readable_table(summary.round(4)), f"repeated {cohort} table"))
        display(study.publish(plots.plot_batch_summary(summary), f"repeated {cohort} figure"))
        rows = [{"seed": s["seed"], "versus": other, **d} for s in repeated[cohort]
                for other, d in s["comparisons"].items()]
        rows += [{"seed": s["seed"], "versus": f"ratio to {ref}", "estimate": r["ratio"], "ci_low": r["ci"][0],
                  "ci_high": r["ci"][1]} for s in repeated[cohort] for ref, r in s.get("ratio", {}).items()]
        display(Markdown(f"R-GenIMA MRI+SNP minus its ablations and the best baseline of each seed "
                         f"(paired bootstrap, 95% CI), and its ratio to the synthetic references, {label}:"))
        display(study.publish(readable_table(pd.DataFrame(rows).set_index(["seed", "versus"]).round(4)),
                              f"repeated {cohort} comparisons"))
    display(study.publish(plots.plot_learning_curve(curve), "learning curve"))
    display(Markdown(
        "Balanced accuracy on the external cohort against the number of training subjects "
        f"({curve['folds']}-fold cross-validation at each size, the fold models' probabilities "
        "averaged; 95% bootstrap CI over the external subjects). The dashed line is the oracle, which "
        "needs no training; the grey curve the LDA given the true features."))
"""),
("md", """
## Confusion matrices and ROC curves
"""),
("code", """
shown = [c for c in metrics["configurations"] if not c.startswith("reference_")][:6]
fig = plots.plot_confusion_matrices(metrics, shown)
study.glue_figure("confusion", fig, "confusion matrices")
predictions = load_predictions(study.run_dir)
fig = plots.plot_roc_curves(predictions, [c for c in predictions if c in shown or c == "reference_oracle"],
                            highlight=study.configuration)
study.glue_figure("roc", fig, "ROC curves")
"""),
figure("confusion", """
Row-normalised confusion matrices (rows: true stage; cell text: count and row
percentage). On the synthetic cohort SMC (subjective memory concerns with normal
cognition) is the stage most confused with NC, for the models as for the oracle (whose
SMC recall is 0.38); the paper does not publish its confusion matrix.
"""),
figure("roc", """
One-vs-rest ROC curves per stage with the AUROC of each model in the legend. On the
synthetic cohort AD against the rest is the easiest contrast and SMC the hardest, as for
the oracle.
"""),
("md", """
## Variation across seeds of this run's settings

When `rgenima batch` has been run (for example
`rgenima batch --manifest data_manifest.yaml --grid seed=0,1,2 --grid modalities=mri,snp,mri+snp`),
its aggregate, mean and standard deviation across seeds, is shown here.
"""),
("code", """
from rgenima.batch import load_batch_summary

summary_path = Path(batch_root) / "batch_summary.csv"
if summary_path.is_file():
    summary = load_batch_summary(batch_root)
    display(study.publish(summary, "batch summary"))
    fig = plots.plot_batch_summary(summary)
    display(study.publish(fig, "batch summary figure"))
else:
    print(f"No batch summary at {summary_path}: run `rgenima batch` to add seed-to-seed variation.")
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["05_brain_signatures"] = [
("md", """
# Brain signatures

Which regions drive each stage. Every subject is explained by the model of the fold in
which it was a test subject, with six attribution methods:

- **occlusion**: the change of the model's output when one ROI's token is replaced by
  the token of the training fold's average anatomy. `occlusion` is the drop in the
  log-probability of the subject's true stage; `occlusion_contrast` is the drop in the
  logit difference between the true stage and NC: how much the region moves the subject
  away from NC (0 for NC subjects);
- **Integrated Gradients** of the true stage's logit, from the same reference input;
- **gradient-weighted relevance** (Chefer, Gur & Wolf 2021): attention weighted by its
  gradient, propagated through the layers;
- **raw attention** from the answer position, and **attention rollout**: where the model
  reads, not how a region changes its answer; they are kept, labelled as what they are.

A region's **stage signature** is the mean attribution of the stage's subjects minus that
of the NC subjects, with a bootstrap CI over subjects. Which method the chapter shows is
decided by the validation table below, by a rule fixed in advance.
"""),
("parameters", PARAMETERS + """ig_steps: int = 16  # Integrated Gradients integration points (Gauss-Legendre)
sanity_subjects: int = 64  # subjects re-explained by the randomised models
link_subjects: int = 64  # subjects of the occlusion ROI x gene link map
"""),
("code", SETUP + """
from rgenima.data.atlas import load_atlas
from rgenima.explain import explain_run
from rgenima.signatures import signatures_run

explain_dir = explain_run(study.run_dir, configuration=study.configuration, ig_steps=int(ig_steps), seed=study.seed,
                          sanity_subjects=int(sanity_subjects), link_subjects=int(link_subjects))
result = signatures_run(study.run_dir, configuration=study.configuration, truth=study.truth_path, seed=study.seed)
roi_attribution = result.roi_attribution
truth = study.truth()
atlas = load_atlas(study.manifest.atlas)
explain_info = json.loads((explain_dir / "explain.json").read_text())
pd.Series({k: v for k, v in explain_info.items() if not isinstance(v, (dict, list))}, name="value").to_frame()
"""),
("md", """
## Validation of the attribution methods

For every method, on the same held-out subjects: how well its region ranking (stage
minus NC) recovers the regions the synthetic generator made atrophic in each stage
(AUROC; 0.5 is chance), and the two randomisation tests of Adebayo et al. (2018): the
median per-subject Spearman correlation of the method's scores with those of the same
architecture with re-initialised weights (`rho_parameters_*`) and with those of the
fold-0 model retrained on permuted labels (`rho_labels_*`). The last row is the
univariate reference on the same subjects: a Welch t-test of each ROI's mean intensity,
stage against NC.

**Rule.** A method passes when every defined median correlation is below 0.5; among the
passing methods, the chapter uses the one with the highest mean of the MCI and AD
AUROCs. Without a planted truth (real data) it uses the passing method least correlated
with the randomised models.
"""),
("code", """
from rgenima.display import readable_table
from rgenima.validation import ROI_CRITERIA, choose_method, validate_run

validation = validate_run(study.run_dir, study.configuration, truth=truth)
roi_method, reason = choose_method(validation.drop(columns=["gene_auroc", "apoe_rank"]), ROI_CRITERIA)
display(readable_table(validation.set_index("method").drop(columns=["gene_auroc", "apoe_rank", "pairs_used",
                                                                    "pairs_planted", "pairs_top5_of_used"]).round(3)))
display(Markdown(f"**Method used for the brain signatures: `{roi_method}`.** {reason}"))
roi_method = roi_method or "occlusion_contrast"
"""),
("code", """
if roi_attribution.empty:
    print("This configuration reads no MRI: no brain signatures.")
else:
    fig = plots.plot_brain_signature(roi_attribution, atlas, ("SMC", "MCI", "AD"), roi_method)
    study.glue_figure("brain_chosen", fig, "brain signature of the chosen method")
    fig = plots.plot_brain_signature(roi_attribution, atlas, ("SMC", "MCI", "AD"), "attention")
    study.glue_figure("brain_attention", fig, "brain signature attention")
"""),
figure("brain_chosen", """
Stage signatures of the method chosen by the rule above: mean attribution of the
stage's subjects minus that of NC subjects, mapped onto the atlas regions (glass brain;
red: more than in NC). The paper reports striatal involvement in SMC, frontotemporal
regions in MCI and a network-wide disruption in AD; the synthetic cohort plants striatal
atrophy in SMC and medial temporal, then frontotemporal and parietal atrophy in MCI and
AD.
"""),
figure("brain_attention", """
The same signature from raw attention (answer position to each ROI token, averaged over
heads and layers), for comparison: where the model reads, not whether the region changes
its answer.
"""),
("code", """
planted = truth["planted_regions"] if truth else {}
for stage in ("MCI", "AD"):
    if not roi_attribution.empty:
        fig = plots.plot_top_rois(roi_attribution, stage, roi_method, top=15, planted=planted.get(stage))
        study.glue_figure(f"top_rois_{stage}", fig, f"top ROIs {stage}")
"""),
figure("top_rois_MCI", """
The fifteen regions with the largest MCI-versus-NC signature of the chosen method (95%
bootstrap CI over subjects). On the synthetic cohort, starred regions are the ones the
generator made atrophic in MCI.
"""),
figure("top_rois_AD", """
As above for AD against NC.
"""),
("md", """
## Randomisation tests

Each point is one subject: the Spearman correlation between its attributions from the
trained model and from the randomised model, per method and level. Values well below 0.5
(the dashed line) mean the attributions depend on what the model learned, not only on the
input or the architecture. An empty row is a level whose scores are constant, such as
the genes of a model whose fusion gates stayed closed.
"""),
("code", """
fig = plots.plot_sanity_check(plots.load_sanity_correlations(explain_dir / "attributions.npz"))
study.glue_figure("sanity", fig, "model-parameter randomisation")
fig = plots.plot_sanity_check(plots.load_sanity_correlations(explain_dir / "attributions.npz", test="labels"))
study.glue_figure("sanity_labels", fig, "label randomisation")
label_model = json.loads((explain_dir / "sanity.json").read_text())["label_randomisation_model"]
pd.Series(label_model, name="permuted-label model").to_frame() if label_model else None
"""),
figure("sanity", """
Model-parameter randomisation: trained against re-initialised weights (frozen genotype
embeddings and cube statistics kept).
"""),
figure("sanity_labels", """
Label randomisation: the trained fold-0 model against the same fold retrained from scratch
on permuted stage labels, on fold 0's held-out subjects.
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["06_gene_signatures"] = [
("md", """
# Gene signatures

Which genes drive each stage. A gene's occlusion score is the change of the model's
output when the subject's genotypes of that gene are replaced by the training fold's most
common genotypes; token-level methods sum the scores of the gene's tokens in the genetic
prompt. Genes are ranked per stage by their signature (mean in the stage minus mean in
NC) and overall by their mean absolute attribution; bars are coloured by whether the
gene is a GWAS-supported AD locus of the panel.

**Which model.** A two-modality fold model whose fusion gates stayed closed reads no
gene at all (its prompt cannot change its output, so every gene scores exactly 0). When
every fold of the main configuration kept its gates closed, this chapter explains the
SNP-only configuration instead: the model of this run that does read the genes.
"""),
("parameters", PARAMETERS + """ig_steps: int = 16  # Integrated Gradients integration points (Gauss-Legendre)
sanity_subjects: int = 64  # subjects re-explained by the randomised models
"""),
("code", SETUP + """
from rgenima.data.genetics import read_gene_panel
from rgenima.display import readable_table
from rgenima.explain import explain_run
from rgenima.signatures import signatures_run
from rgenima.validation import GENE_CRITERIA, choose_method, gene_configuration, validate_run

configuration = gene_configuration(study.run_dir, study.configuration)
display(Markdown(f"Gene attributions of **{configuration}**"
                 + ("." if configuration == study.configuration else
                    f": every fold of {study.configuration} kept its fusion gates closed.")))
gene_dir = explain_run(study.run_dir, configuration=configuration, ig_steps=int(ig_steps), seed=study.seed,
                       sanity_subjects=int(sanity_subjects))
result = signatures_run(study.run_dir, configuration=configuration, truth=study.truth_path, seed=study.seed,
                        kinds=("gene",))
gene_attribution = result.gene_attribution
panel = read_gene_panel(study.manifest.gene_panel)
truth = study.truth()
planted = truth["causal_genes"] if truth else None
"""),
("md", """
## Validation of the attribution methods

As in the brain chapter: the AUROC of each method's overall gene ranking for the genes
carrying the planted causal SNPs, APOE's rank (the largest planted effect), and the two
randomisation tests. The reference row is a univariate scan of the same subjects'
dosages (Kruskal–Wallis across stages, the gene's best SNP). The chapter uses the
passing method with the highest planted-gene AUROC.
"""),
("code", """
validation = validate_run(study.run_dir, configuration, truth=truth)
gene_method, reason = choose_method(validation, GENE_CRITERIA)
columns = ["gene_auroc", "apoe_rank", "rho_parameters_gene", "rho_labels_gene", "passes_randomisation"]
display(readable_table(validation.set_index("method")[columns].round(3)))
display(Markdown(f"**Method used for the gene signatures: `{gene_method}`.** {reason}"))
gene_method = gene_method or "occlusion"
"""),
("code", """
if gene_attribution.empty:
    print("This configuration reads no genotypes: no gene signatures.")
else:
    fig = plots.plot_gene_signature(gene_attribution, panel, "all", f"{gene_method}@mean_abs", top=20,
                                    planted=planted)
    study.glue_figure("genes_overall", fig, "overall gene ranking")
    fig = plots.plot_gene_signatures(gene_attribution, panel, ("SMC", "MCI", "AD"), gene_method, top=15,
                                     planted=planted)
    study.glue_figure("genes_chosen", fig, "gene signatures of the chosen method")
"""),
figure("genes_overall", """
Genes ranked by their mean absolute attribution over all subjects with the chosen
method: how much the model uses each gene, whatever the stage. On the synthetic cohort
APOE carries the largest planted effect and should come first; the paper names APOE,
BIN1, CLU and RBFOX1 among the GWAS loci its prioritised genes include.
"""),
figure("genes_chosen", """
Top genes per stage by the chosen method's signature (stage minus NC, 95% bootstrap CI).
Coloured bars are GWAS-supported AD loci; on the synthetic cohort, starred genes carry
the planted causal SNPs.
"""),
("code", """
fig = plots.plot_sanity_check(plots.load_sanity_correlations(gene_dir / "attributions.npz"))
study.glue_figure("gene_sanity", fig, "randomisation of the gene model")
"""),
figure("gene_sanity", """
Model-parameter randomisation of the model explained here, per method and level.
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["07_roi_gene"] = [
("md", """
# ROI × gene links

Does what the model reads from a region depend on a gene? For each subject in a seeded
subset, and each gene, the link map is how much replacing the gene's genotypes by the
training fold's most common ones changes each ROI's relevance (gradient × difference from
the average anatomy, for the true stage): zero unless the model combines the two. It is
averaged over the subjects of a stage. Raw attention from gene tokens to ROI tokens is
shown too, labelled as what it is: where the gene tokens read, not a link the prediction
depends on.

A two-modality model whose fusion gates stayed closed has no link at all: its prompt
cannot change its output.
"""),
("parameters", PARAMETERS),
("code", SETUP + """
from rgenima.signatures import load_attributions, roi_gene_matrix

explain_dir = study.run_dir / "explain" / study.configuration
attributions = load_attributions(explain_dir / "attributions.npz")
info = json.loads((explain_dir / "explain.json").read_text())
truth = study.truth()
pairs = [(roi, i["gene"]) for i in (truth or {}).get("interactions", []) for roi in i["regions"]]
closed = info.get("closed_prompt_folds", [])
display(Markdown(f"Fusion gates closed in {len(closed)} of {len(info['folds'])} folds of {study.configuration}; "
                 f"link map computed on {info.get('link_subjects', 0)} subjects."))
"""),
("code", """
roi_gene = pd.read_csv(study.run_dir / "roi_gene.csv")
for direction in ("occlusion", "gene_to_roi"):
    if roi_gene.empty or not (roi_gene["direction"] == direction).any():
        print(f"No {direction} map: a modality is missing, or the map is zero everywhere (closed gates).")
        continue
    fig = plots.plot_roi_gene_heatmaps(roi_gene, ("SMC", "MCI", "AD"), direction, highlight_pairs=pairs or None)
    study.glue_figure(f"roi_gene_{direction}", fig, f"ROI x gene {direction}")
"""),
("md", """
## The planted pairs (synthetic cohort)

The generator plants two ROI × gene interactions (APOE with medial temporal regions, CLU
with precuneus and posterior cingulate). For each map: how many of the planted pairs the
model uses at all (a non-zero mean link), and the share of those in the top 5 % of all
ROI × gene pairs (ranked by mean |link| over all subjects). The target is every used
pair in the top 5 %.
"""),
("code", """
from rgenima.display import readable_table

validation = pd.read_csv(explain_dir / "validation.csv")
shown = validation[validation["method"].isin(["occlusion", "attention"])]
readable_table(shown.set_index("method")[["pairs_planted", "pairs_used", "pairs_top5_of_used"]])
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["08_enrichment"] = [
("md", """
# GWAS-locus enrichment

Are the genes the model prioritises the known AD loci? For each stage, method and
cut-off k (5, 10, 20), the top-k genes of the signature are tested for over-representation
of the panel's GWAS-supported AD loci: a one-sided hypergeometric test against the genes
of the panel that were scored, and a rank-based permutation test (10,000 permutations of
the gene labels; the statistic weights locus genes by how high they rank). Benjamini–
Hochberg q-values are computed across stages and k within each method.

The genetic prompt lists genes in genomic order. An earlier version listed them in the
panel's order, AD loci first; its attention signatures came out "enriched" for AD loci
at FDR 0.05 in MCI and AD, led by loci with no planted effect, and the enrichment
vanished once the order carried no information. Attention depends on token position
(rotary positions, causal masking), so a gene's place in the prompt must not tell
anything about the gene.
"""),
("parameters", PARAMETERS + """n_permutations: int = 10000  # permutations of the gene labels
gsea: bool = False  # also run a preranked GSEA (gseapy) of the locus set
"""),
("code_scroll", SETUP + """
from rgenima.display import readable_table
from rgenima.enrich import controls_table, enrich_run
from rgenima.validation import GENE_CRITERIA, choose_method, gene_configuration

configuration = gene_configuration(study.run_dir, study.configuration)
validation = pd.read_csv(study.run_dir / "explain" / configuration / "validation.csv")
gene_method = choose_method(validation, GENE_CRITERIA)[0] or "occlusion"
enrichment = enrich_run(study.run_dir, n_permutations=int(n_permutations), seed=study.seed, gsea=bool(gsea),
                        truth=study.truth_path)
display(Markdown(f"Genes ranked by **{gene_method}** of **{configuration}** (the method the gene chapter uses)."))
shown = enrichment[enrichment["method"] == gene_method]
study.publish(readable_table(shown.set_index(["method", "stage", "k"]).round(4)), "enrichment table")
"""),
("code", """
fig = plots.plot_enrichment(enrichment, gene_method)
study.glue_figure("enrichment_chosen", fig, "enrichment of the chosen method")
"""),
figure("enrichment_chosen", """
Enrichment of GWAS-supported AD loci among the top-k genes of the chosen method's
signature: −log10 Benjamini–Hochberg q of the hypergeometric test per stage and k, with
the number of locus genes in the top k above each bar. Bars above the dashed line are
significant at FDR 0.05; the paper reports significant enrichment of GWAS loci among the
genes it prioritises. The result is shown whatever it is.
"""),
("md", """
## Controls: can the test find a signal, and is it calibrated?

**Positive control.** The same test, background and k applied to a ranking that puts the
genes carrying the planted causal SNPs first (the rest in random order): a method that
recovered the planted genes perfectly would get this result, and it must be significant
at FDR 0.05. **Negative control.** The same test on 1,000 random rankings of the same
genes: the share of rankings with p ≤ 0.05 must not exceed 0.05 beyond Monte Carlo
error (the hypergeometric test is discrete, so it is conservative), checked at every
attainable p-value up to 0.5.
"""),
("code", """
controls = enrichment.attrs["enrichment_controls"]
display(readable_table(controls_table(controls).set_index(["control", "k"]).round(4)))
positive = controls.get("positive") or {}
display(Markdown(f"Positive control passed: **{positive.get('passed')}**; negative control calibrated: "
                 f"**{controls['negative']['calibrated']}**."))
"""),
]

# --------------------------------------------------------------------------------------
NOTEBOOKS["09_reproducibility"] = [
("md", """
# Reproducibility

What this book was computed with, how long each step took, and how to run it again: on
the synthetic cohort, on a local ADNI download, on a GPU and on several GPUs.
"""),
("parameters", PARAMETERS),
("code", SETUP + """
from rgenima.reproducibility import data_hashes, package_versions, step_timings

display(package_versions())
"""),
("md", """
## Data

sha256 of every input file the run read (from the preparation cache key), so that a
reader can check they have the same data.
"""),
("code", """
study.publish(data_hashes(study.run_dir), "data hashes")
"""),
("md", """
## Timings

Wall-clock seconds of each step of this run (steps reused from an earlier run keep their
first timing). The Benchmarks chapter has the controlled measurements.
"""),
("code", """
step_timings(study.run_dir)
"""),
("md", """
## Determinism

Training on a CPU is deterministic: the same seed gives the same predictions (tested).
Under `torchrun`, every rank ends with identical weights; their digests are recorded
per fold.
"""),
("code", """
summary = json.loads((study.run_dir / "models" / study.configuration / "training.json").read_text())
pd.DataFrame([{"fold": k, "world size": f["world_size"],
               "ranks agree": len(set(f["rank_weight_digests"])) == 1}
              for k, f in enumerate(summary["folds"])]).set_index("fold")
"""),
("md", """
## Running the study

**The whole book, on the synthetic cohort** (generated on first use):

```bash
make book              # = rgenima run --manifest data_manifest.yaml
```

**On a local ADNI download.** Copy `manifests/adni.example.yaml`, point it at your
ADNIMERGE table, your T1w images (BIDS or a glob pattern) and your PLINK files, keep
`restricted: true`, then:

```bash
rgenima validate --manifest my_adni.yaml
rgenima run --manifest my_adni.yaml -p run_dir runs/adni
rgenima check-privacy _build/html --manifest my_adni.yaml
```

With `restricted: true`, no table or figure carrying a subject identifier is published,
and the privacy check scans the built book for every PTID and RID of the cohort.

**On a GPU.** Training uses CUDA with bf16 autocast when present; the `gpu` profile is a
larger model: `rgenima run --manifest FILE -p profile gpu`.

**On several GPUs.** The training script runs under `torchrun` with DDP (NCCL on GPUs,
gloo on CPUs):

```bash
torchrun --standalone --nproc_per_node 4 -m rgenima.cli train \\
    --manifest data_manifest.yaml --out runs/default --profile gpu --study
rgenima run --manifest data_manifest.yaml -p profile gpu   # reuses the trained folds
```

**A batch over seeds and modalities:**

```bash
rgenima batch --manifest data_manifest.yaml --grid seed=0,1,2 --grid modalities=mri,snp,mri+snp --jobs 2
```

**A single chapter** on a finished run directory, with papermill:

```bash
papermill notebooks/05_brain_signatures.ipynb out.ipynb -p run_dir runs/default -k rgenima
```
"""),
]


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "notebooks"
    for name, cells in NOTEBOOKS.items():
        write_notebook(out / f"{name}.ipynb", cells)
        print(f"wrote {out / name}.ipynb")
