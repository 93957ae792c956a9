"""Author notebooks/01_cohort.ipynb (rerun after editing the cells below)."""

from make_study_notebooks import PARAMETERS
from nbtools import write_notebook

CELLS = [
("md", """
# Cohort

This chapter describes who is in the study. The cohort is defined by the data manifest:
an ADNIMERGE-style clinical table, one T1-weighted MRI per subject in MNI space, and
PLINK genotypes. A subject enters the cohort when its **baseline** row has a diagnosis
that maps to a study stage (CN → NC, SMC → SMC, EMCI and LMCI → MCI, AD → AD), an MRI is
found for it, and its PTID is an IID of the genotype files. Everyone else is listed below
with the reason; subjects with too many missing genotype calls (`qc.max_subject_missing`,
PLINK's `--mind`) are removed in the data-preparation chapter. The baseline row is the
subject's first row in the order `bl`, `m00`, `init`, `sc`, `scmri` (ADNI's spellings of a
first visit: a screening visit counts only for a subject without a month-0 row).
Labels come from ADNIMERGE's `DX_bl` only; the visit diagnosis and cognitive scores
(MMSE, CDR, ADAS) define the labels and are never used as model inputs.
"""),
("parameters", PARAMETERS + """n_example_stages: int = 4  # stages shown in the example-slice figure (1-4)
"""),
("code", """
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rgenima import STAGES, plots
from rgenima.data.atlas import load_atlas
from rgenima.data.cohort import assemble_subjects
from rgenima.data.genetics import read_genotypes, snp_allele_stats
from rgenima.data.manifest import load_manifest
from rgenima.data.summary import demographics_table
from rgenima.data.validate import validate_manifest
from rgenima.study import Study

assert 1 <= int(n_example_stages) <= 4, "n_example_stages must be in 1..4"
# Every table, figure and text shown below goes through study.publish, the privacy gate:
# for a restricted cohort it refuses anything carrying a subject identifier.
study = Study.from_parameters(manifest, run_dir, seed, profile, modalities, backbone, folds)
m = study.manifest
restricted = study.restricted
report = validate_manifest(m)
subjects = assemble_subjects(m, report)
print(study.publish(report.to_text(), "data report"))
"""),
("md", """
## Selection and class counts

Counts at each step of the selection. Excluded subjects are grouped by reason; their
identifiers are not published.
"""),
("code", """
counts = subjects["stage"].value_counts().reindex(list(STAGES), fill_value=0)
study.publish(plots.plot_class_counts(counts.to_dict(), title=f"{m.cohort.name}: subjects per stage"),
              "class-count figure");
"""),
("code", """
display(Markdown(f"**{len(subjects)} subjects** in the cohort; **{report.n_excluded}** excluded "
                 "(a subject may have several reasons)."))
study.publish(pd.Series(report.exclusion_counts(), name="subjects").rename_axis("reason").to_frame(),
              "exclusion table")
"""),
("md", """
## Demographics

Baseline characteristics by stage (mean and standard deviation). Age, sex and education
are the only covariates the models may use; APOE ε4 is shown as the best-known genetic
risk factor, and enters the model only through the genotypes.
"""),
("code", """
study.publish(demographics_table(subjects), "demographics table")
"""),
("md", """
## MRI with the atlas

One baseline T1-weighted image per stage, with the atlas used for ROI tokens overlaid
(contours and a translucent label map). Every ROI of the atlas becomes one visual token
of the model. For a restricted cohort only the MNI152 template is shown, never a
subject's image.
"""),
("code", """
atlas = load_atlas(m.atlas)
if restricted:
    from nilearn.datasets import load_mni152_template
    examples = {"MNI152 template": load_mni152_template(resolution=2)}
else:
    first = subjects.groupby("stage", observed=True)["mri_path"].first()
    examples = {s: first[s] for s in STAGES[: int(n_example_stages)] if s in first}
study.publish(plots.plot_example_slices(examples, atlas.image), "example-slice figure");
print(f"atlas: {atlas.name}, {len(atlas.labels)} ROIs")
"""),
("md", """
## Genotypes

Per-SNP call rate and minor allele frequency over the cohort's genotype files (quality
control with thresholds from the manifest is applied in the data-preparation chapter),
and the APOE ε4 dose by stage (from the `APOE4` column of the clinical table).
"""),
("code", """
geno = read_genotypes(m.cohort.genotypes)
stats = pd.concat([geno.variants, snp_allele_stats(geno.dosage)], axis=1)
print(study.publish(f"{geno.dosage.shape[0]} genotyped samples, {geno.dosage.shape[1]} SNPs on "
      f"{stats['chrom'].nunique()} chromosomes; median call rate {stats['call_rate'].median():.3f}", "genotype summary"))
study.publish(plots.plot_genotype_summary(stats, subjects[["stage", "APOE4"]].dropna()), "genotype figure");
"""),
("md", """
## Planted truth (synthetic cohort only)

The synthetic cohort is generated from a known model (see `rgenima.data.synthetic`):
regional atrophy by stage, a few causal genes acting on a disease liability, and ROI ×
gene interactions. Its **oracle** is the Bayes posterior of that model given the true
regional atrophy, genotypes and age: no classifier of these data can do better on
average. The second row shows the same posterior computed by a model that ignores the
planted ROI × gene interactions: the gap is what the interactions are worth.
"""),
("code", """
truth = study.truth()
if truth is not None:
    rows = {}
    for key, label in [("oracle", "oracle"), ("oracle_without_interactions", "oracle ignoring interactions")]:
        t = truth[key]
        rows[label] = {"accuracy": t["accuracy"], "balanced accuracy": t["balanced_accuracy"],
                       **{f"recall {s}": t["recall"][s] for s in STAGES}}
    display(study.publish(pd.DataFrame(rows).T.round(3), "oracle table"))
    display(study.publish(pd.DataFrame([{"gene": c["gene"], "SNP": c["rsid"], "effect allele": c["effect_allele"],
                           "liability per allele": c["beta"]} for c in truth["causal_snps"]]), "causal-SNP table"))
    display(study.publish(pd.DataFrame([{"gene": i["gene"], "SNP": i["rsid"], "regions": ", ".join(i["regions"]),
                           "extra atrophy per allele at AD severity": i["gamma"]} for i in truth["interactions"]]),
                          "interaction table"))
else:
    print("No truth.json next to the clinical table: not a synthetic cohort.")
"""),
]

if __name__ == "__main__":
    from pathlib import Path

    write_notebook(Path(__file__).resolve().parents[1] / "notebooks" / "01_cohort.ipynb", CELLS)
