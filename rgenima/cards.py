"""Model and data cards.

- :func:`write_model_card` writes ``RUNDIR/MODEL_CARD.md`` in the sections of a
  Hugging Face model card (model details, intended use and out-of-scope use, training
  data with the manifest's name and the input hashes, evaluation results with
  bootstrap CIs, limitations, ethical considerations). ``train_study`` writes it and
  ``evaluate_run`` rewrites it with the results. It holds aggregate figures only:
  no subject identifier, even for a restricted cohort.
- :func:`synthetic_data_card` is the data card of a synthetic cohort (what is
  planted, the oracle, what the generator cannot represent); ``rgenima synth`` writes
  it as ``DATA_CARD.md`` next to ``truth.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rgenima import STAGES, __version__
from rgenima.fileio import atomic_write_text

MODEL_CARD = "MODEL_CARD.md"
DATA_CARD = "DATA_CARD.md"
PAPER = (
    "Zhao et al. (2025), R-GenIMA: Integrating Neuroimaging and Genetics with Interpretable Multimodal AI "
    "for Alzheimer's Disease Progression, arXiv:2512.18986"
)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _main_configuration(run) -> str | None:
    """The run's main configuration (:meth:`rgenima.run.Run.main_configuration`), else the
    first trained one."""
    try:
        return run.main_configuration()
    except (FileNotFoundError, ValueError):
        names = run.trained_configurations()
        return names[0] if names else None


def model_card_markdown(run_dir: str | Path) -> str:
    """The model card of a run directory as Markdown (see :func:`write_model_card`)."""
    from rgenima.display import display_name
    from rgenima.run import Run

    run = Run(run_dir)
    prepared = run.prepare_record() or {}
    manifest = prepared.get("manifest", {})
    cohort = manifest.get("cohort", {})
    restricted = bool(cohort.get("restricted"))
    metrics = _read_json(run.metrics_json)
    main = (metrics or {}).get("main") or _main_configuration(run)
    training = _read_json(run.training_json(main)) if main else None
    lines = [f"# Model card: {display_name(main) if main else 'R-GenIMA'}", ""]
    lines += [
        "## Model details",
        "",
        f"- Reproduces R-GenIMA ({PAPER}) with the `rgenima` library {__version__}.",
        "- Classifies Alzheimer's disease stage (" + ", ".join(STAGES) + ") from a T1w MRI read as one "
        "token per atlas region and SNP genotypes written as a structured text prompt, with a "
        "LLaMA-architecture backbone adapted with LoRA.",
        "",
    ]
    if training:
        profile = training.get("profile", {})
        lines += [
            f"- Configuration `{training['configuration']}` (modalities: {', '.join(training['modalities'])}), "
            f"training profile `{profile.get('name', '?')}`, seed {training['seed']}, "
            f"{training['n_folds']}-fold cross-validation (one model per fold; predictions are out-of-fold).",
            f"- Backbone: `{Path(training['backbone']).name}`; sequence length {training['sequence_length']}; "
            f"trained on {training.get('device', '?')} with {training.get('world_size', 1)} process(es).",
            f"- Warm start from: `{Path(training['warm_start_from']).name}`"
            if training.get("warm_start_from")
            else "- No warm start.",
            "",
        ]
    else:
        lines += ["- Not trained yet (`rgenima train`).", ""]
    lines += [
        "## Intended use",
        "",
        "- Research on interpretable multimodal models of Alzheimer's disease: reproducing and "
        "examining the R-GenIMA study, comparing modalities and attributions on cohorts prepared in "
        "ADNI's formats.",
        "",
        "### Out-of-scope use",
        "",
        "- Diagnosis, screening, prognosis or any decision about a person: the model is not a medical "
        "device, was not validated clinically, and its stages are research labels.",
        "- Cohorts whose scanners, populations or genotyping differ from the training cohort's without "
        "external validation (`rgenima evaluate --external`).",
        "- Reading the attention or attribution maps as causal evidence about genes or regions.",
        "",
    ]
    lines += ["## Training data", ""]
    if cohort:
        inputs = prepared.get("inputs", {})
        lines += [
            f"- Cohort `{cohort.get('name', '?')}` ({'restricted' if restricted else 'open'} data), "
            f"manifest `{Path(manifest.get('manifest', '?')).name}`; {prepared.get('n_subjects', '?')} "
            "subjects at baseline: " + ", ".join(f"{k} {v}" for k, v in prepared.get("class_counts", {}).items()) + ".",
            f"- Atlas `{manifest.get('atlas', {}).get('name', '?')}`; {prepared.get('n_rois', '?')} regions.",
            f"- Prepared-input hash (sha256 of every input file and setting): `{inputs.get('hash', '?')}`.",
            "",
            "| input | sha256 |",
            "| --- | --- |",
        ]
        lines += [
            f"| {name} | `{digest}` |"
            for name, digest in sorted(inputs.get("files", {}).items())
            if isinstance(digest, str)
        ]
        lines.append("")
    else:
        lines += ["- Not prepared yet (`rgenima prepare`).", ""]
    lines += ["## Evaluation results", ""]
    if metrics:
        lines += [
            f"Out-of-fold predictions of {metrics.get('n_subjects', 'every')} subjects; 95% bootstrap "
            f"confidence intervals over subjects ({metrics.get('n_boot', '?')} resamples).",
            "",
            "| model | balanced accuracy [95% CI] | accuracy | macro F1 | macro AUROC |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, entry in metrics["configurations"].items():
            m, ci = entry["metrics"], entry.get("ci", {}).get("balanced_accuracy") or [None, None]
            lines.append(
                f"| {display_name(name)} | {_fmt(m.get('balanced_accuracy'))} "
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(m.get('accuracy'))} | "
                f"{_fmt(m.get('macro_f1'))} | {_fmt(m.get('macro_auroc'))} |"
            )
        lines.append("")
    else:
        lines += ["Not evaluated yet (`rgenima evaluate`).", ""]
    lines += [
        "## Limitations",
        "",
        "- Small cohorts give wide confidence intervals; compare models with the paired tests of "
        "`metrics.json`, not with point estimates.",
        "- On the synthetic cohort the planted truth is known; figures there say what the pipeline "
        "recovers, not how it would do on patients.",
        "- Attributions (attention, rollout, Integrated Gradients) explain the model, not the disease.",
        "",
    ]
    lines += ["## Ethical considerations", ""]
    if restricted:
        lines += [
            "- Trained on restricted clinical data: the weights, predictions and any output of this run "
            "fall under the data use agreement of the cohort. Do not share them outside it.",
            "- The book and this card were checked for subject identifiers; keep it so (`rgenima check-privacy`).",
        ]
    else:
        lines += [
            "- Trained on open (synthetic) data; on restricted clinical data (ADNI) the weights and "
            "outputs fall under the cohort's data use agreement and must not be shared outside it."
        ]
    lines += ["- Stage labels and genetic risk are sensitive: results must not be used to label individuals.", ""]
    return "\n".join(lines)


def write_model_card(run_dir: str | Path) -> Path:
    """Write ``RUNDIR/MODEL_CARD.md`` (atomically) and return its path."""
    path = Path(run_dir) / MODEL_CARD
    atomic_write_text(path, model_card_markdown(run_dir))
    return path


def synthetic_data_card(truth: dict) -> str:
    """Data card (Markdown) of a synthetic cohort from its ``truth.json`` content."""
    config, oracle = truth["config"], truth["oracle"]
    counts = ", ".join(f"{k} {v}" for k, v in truth["class_counts"].items())
    lines = [
        "# Data card: rgenima synthetic cohort",
        "",
        "## Summary",
        "",
        f"- Written by `rgenima synth` (`{truth['generator']}`), seed {config['seed']}, "
        f"{config['n_subjects']} subjects at {config['voxel_mm']} mm voxels, in exactly ADNI's formats "
        "(ADNIMERGE-style table, Clinica BIDS T1w images in MNI space, PLINK 1 genotypes, GRCh37).",
        f"- Subjects with a complete record per stage: {counts}; "
        f"{truth['defective_subjects']['count']} subjects carry planted defects (missing image, "
        "missing genotypes...) that the data report must exclude.",
        "- Identifiers use sites 990-999 and subject numbers 9000 and up, outside ADNI's ranges: "
        "no real person is described.",
        "",
        "## What is planted",
        "",
        "- A genetic liability over causal SNPs: "
        + ", ".join(
            f"{c['rsid']} ({c['gene']}, {c['beta']:+.2f} per {c['effect_allele']})" for c in truth["causal_snps"]
        )
        + ".",
        "- A latent sub-stage (NC, SMC, EMCI, LMCI, AD) drawn from the liability and age; the study's "
        "four stages merge EMCI and LMCI.",
        "- Regional atrophy per stage in the atlas regions: "
        + "; ".join(f"{stage}: {', '.join(regions)}" for stage, regions in truth["planted_regions"].items())
        + ".",
        "- ROI x gene interactions (extra atrophy per allele with disease severity): "
        + "; ".join(f"{i['gene']} in {', '.join(i['regions'])}" for i in truth["interactions"])
        + ".",
        f"- {len(truth['qc_failing_snps'])} SNPs built to fail genotype QC.",
        "",
        "## The oracle",
        "",
        f"- The posterior P(stage | true atrophy, genotypes, age) of the generative model: accuracy "
        f"{oracle['accuracy']:.3f}, balanced accuracy {oracle['balanced_accuracy']:.3f} "
        f"({truth['oracle_without_interactions']['accuracy']:.3f} accuracy ignoring the interactions). "
        "No classifier of the images can do better on average; `truth.json` holds each subject's posterior.",
        "",
        "## What it cannot represent",
        "",
        "- Real anatomy and its variation: images are the MNI152 template darkened per region, with a "
        "gain, a smooth bias field and Gaussian noise; no registration error, motion, scanner or site "
        "effects, lesions or skull-stripping failures.",
        "- Real genetic architecture: independent Hardy-Weinberg genotypes at panel SNPs, no linkage "
        "disequilibrium, population structure or polygenic background beyond the planted SNPs.",
        "- Longitudinal change, comorbidities, medication, and the selection and missingness of a "
        "real cohort. Results on it say what the pipeline recovers, not how it does on patients.",
        "",
    ]
    return "\n".join(lines)
