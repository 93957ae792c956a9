"""Check a manifest against the data contract and summarise the cohort it yields.

:func:`validate_manifest` runs the cheap checks first (checksums, clinical table,
PLINK headers, atlas, gene panel) and only then opens MRI headers, never voxel data.
A *contract violation* (a missing file or column, an unreadable or 4-D image, a
PLINK size mismatch) raises :class:`~rgenima.errors.DataContractError`. A subject
that cannot be used (no label, no baseline, no MRI, no genotypes) is an
*exclusion*: it is listed with its reason in the :class:`DataReport`, never
dropped silently.
"""

from __future__ import annotations

import json
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima import STAGES
from rgenima.data.atlas import Atlas, load_atlas
from rgenima.data.clinical import baseline_subjects, read_clinical
from rgenima.data.discovery import find_mri
from rgenima.data.manifest import Manifest, verify_checksums
from rgenima.data.plink import check_plink_fileset, read_fam_iids
from rgenima.errors import DataContractError

__all__ = [
    "GENE_PANEL_COLUMNS",
    "DataReport",
    "check_gene_panel",
    "check_mri_header",
    "validate_manifest",
]

#: Columns of the gene panel TSV.
GENE_PANEL_COLUMNS: tuple[str, ...] = ("symbol", "chrom", "start", "end", "ad_locus", "source")

_N_EXAMPLES = 5
_NO_GENOTYPES = "no genotypes: PTID not an IID in the .fam"


@dataclass
class DataReport:
    """What a manifest's data give: subjects per class, exclusions, coverage.

    Attributes
    ----------
    manifest : str
        Path of the manifest checked.
    cohort_name : str
        ``manifest.cohort.name``.
    restricted : bool
        True for access-controlled data: :meth:`to_text` and :meth:`to_dict` then
        omit subject IDs and file names.
    n_subjects_in_clinical : int
        Distinct PTIDs in the clinical table.
    baseline_counts : dict of str to int
        Labelled baseline subjects per stage (keys :data:`rgenima.STAGES`).
    counts_per_stage : dict of str to int
        Cohort subjects (all modalities) per stage.
    n_cohort : int
        Subjects with a label, an MRI and genotypes.
    coverage : dict of str to int
        Of the labelled baseline subjects, how many have each modality:
        ``{"clinical": ..., "mri": ..., "genotypes": ...}``.
    exclusions : pandas.DataFrame
        Columns ``PTID`` and ``reason``; one row per subject and reason (a subject
        with neither MRI nor genotypes has two rows).
    warnings : list of str
        Things worth a look that do not stop a run.
    n_fam_samples, n_snps : int
        Size of the PLINK fileset.
    n_fam_unmatched : int
        ``.fam`` IIDs that match no PTID of the clinical table.
    fam_unmatched_examples : list of str
        A few of those IIDs (empty when ``restricted``).
    atlas_name : str
        Atlas checked.
    n_rois : int
        ROIs in that atlas.
    checksums_verified : list of str
        Manifest-relative paths whose sha256 matched.
    cohort_ptids : list of str
        PTIDs of the cohort, in clinical-table order.
    mri_paths : dict of str to pathlib.Path
        PTID -> baseline image, for every labelled subject with one.
    """

    manifest: str
    cohort_name: str
    restricted: bool
    n_subjects_in_clinical: int
    baseline_counts: dict[str, int]
    counts_per_stage: dict[str, int]
    n_cohort: int
    coverage: dict[str, int]
    exclusions: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    n_fam_samples: int = 0
    n_snps: int = 0
    n_fam_unmatched: int = 0
    fam_unmatched_examples: list[str] = field(default_factory=list)
    atlas_name: str = ""
    n_rois: int = 0
    checksums_verified: list[str] = field(default_factory=list)
    cohort_ptids: list[str] = field(default_factory=list, repr=False)
    mri_paths: dict[str, Path] = field(default_factory=dict, repr=False)

    @property
    def n_excluded(self) -> int:
        """Distinct subjects excluded (for any reason)."""
        return int(self.exclusions["PTID"].nunique())

    def exclusion_counts(self) -> dict[str, int]:
        """Subjects per exclusion reason, most frequent first.

        Reasons are grouped on their text before any parenthesised detail (which
        may hold file names), so the keys never contain subject identifiers.
        """
        keys = self.exclusions["reason"].str.split(" (", n=1, regex=False).str[0]
        counts = Counter(keys)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def exclude_from_cohort(self, rows: list[tuple[str, str]], stages: dict[str, str]) -> None:
        """Move subjects out of the cohort after validation, with their reason.

        Parameters
        ----------
        rows : list of (PTID, reason)
            E.g. subjects removed by genotype QC (``qc.max_subject_missing``).
        stages : dict of str to str
            PTID -> stage, to update :attr:`counts_per_stage`.
        """
        gone = {ptid for ptid, _ in rows} & set(self.cohort_ptids)
        if not gone:
            return
        self.cohort_ptids = [p for p in self.cohort_ptids if p not in gone]
        self.n_cohort = len(self.cohort_ptids)
        for ptid in gone:
            self.counts_per_stage[stages[ptid]] -= 1
        added = pd.DataFrame([r for r in rows if r[0] in gone], columns=["PTID", "reason"])
        self.exclusions = pd.concat([self.exclusions, added], ignore_index=True)

    def to_text(self) -> str:
        """Readable multi-line summary (no subject IDs when ``restricted``)."""
        n_labelled = self.coverage.get("clinical", 0)
        lines = [
            f"Data report for cohort {self.cohort_name!r} (manifest {self.manifest})",
            f"  clinical table: {self.n_subjects_in_clinical} subjects, {n_labelled} with a baseline study label",
            f"  atlas: {self.atlas_name} ({self.n_rois} ROIs)",
            f"  genotypes: {self.n_fam_samples} samples x {self.n_snps} SNPs",
        ]
        if self.checksums_verified:
            lines.append(f"  checksums: {len(self.checksums_verified)} files verified")
        lines += ["", "Subjects per class (cohort / labelled at baseline):"]
        for stage in STAGES:
            lines.append(
                f"  {stage:<4} {self.counts_per_stage.get(stage, 0):>6} / {self.baseline_counts.get(stage, 0)}"
            )
        lines.append(f"  {'all':<4} {self.n_cohort:>6} / {sum(self.baseline_counts.values())}")
        lines += ["", f"Modality coverage (of {n_labelled} labelled baseline subjects):"]
        for modality in ("clinical", "mri", "genotypes"):
            lines.append(f"  {modality:<10} {self.coverage.get(modality, 0):>6}")
        lines.append(f"  {'all':<10} {self.n_cohort:>6}")
        lines += ["", f"Excluded: {self.n_excluded} subjects"]
        counts = self.exclusion_counts()
        if counts:
            lines.append("  (a subject may have several reasons)")
            width = max(len(str(n)) for n in counts.values())
            for reason, n in counts.items():
                lines.append(f"  {n:>{width}}  {reason}")
        if self.n_fam_unmatched:
            text = f"{self.n_fam_unmatched} .fam IIDs match no PTID of the clinical table"
            if self.fam_unmatched_examples:
                text += f" (e.g. {', '.join(self.fam_unmatched_examples)})"
            lines += ["", "Genotypes: " + text]
        if self.warnings:
            lines += ["", "Warnings:"]
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON report.

        Subject-level lists (``exclusions``, ``cohort_ptids``) are included only when
        the cohort is not restricted; the counts always are.
        """
        out: dict[str, Any] = {
            "manifest": self.manifest,
            "cohort_name": self.cohort_name,
            "restricted": self.restricted,
            "n_subjects_in_clinical": self.n_subjects_in_clinical,
            "baseline_counts": dict(self.baseline_counts),
            "counts_per_stage": dict(self.counts_per_stage),
            "n_cohort": self.n_cohort,
            "coverage": dict(self.coverage),
            "n_excluded": self.n_excluded,
            "exclusion_counts": self.exclusion_counts(),
            "warnings": list(self.warnings),
            "n_fam_samples": self.n_fam_samples,
            "n_snps": self.n_snps,
            "n_fam_unmatched": self.n_fam_unmatched,
            "fam_unmatched_examples": list(self.fam_unmatched_examples),
            "atlas_name": self.atlas_name,
            "n_rois": self.n_rois,
            "checksums_verified": list(self.checksums_verified),
        }
        if not self.restricted:
            out["exclusions"] = self.exclusions.to_dict(orient="records")
            out["cohort_ptids"] = list(self.cohort_ptids)
        return out

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON, atomically (temp file + rename).

        Parameters
        ----------
        path : str or pathlib.Path
            Destination; its folder is created if needed.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        from rgenima.fileio import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")


def check_gene_panel(path: str | Path) -> pd.DataFrame:
    """Read the gene panel TSV and check its columns and coordinates.

    The checks are those of :func:`rgenima.data.genetics.read_gene_panel`, the one
    reader of the panel, so that validation and preparation agree.

    Parameters
    ----------
    path : str or pathlib.Path
        Tab-separated, columns :data:`GENE_PANEL_COLUMNS` (GRCh37 bp coordinates).

    Returns
    -------
    pandas.DataFrame
        One row per gene (see ``read_gene_panel``).

    Raises
    ------
    DataContractError
        If the file is missing or not UTF-8, a column is missing, the table is empty,
        a symbol is repeated, a chromosome is unknown, ``start``/``end`` are not
        positive integers with ``start <= end`` (e.g. ``45,409,039``), or
        ``ad_locus`` is not True/False; the message names the file and the line.
    """
    from rgenima.data.genetics import read_gene_panel

    return read_gene_panel(path)


def check_truth_file(path: str | Path) -> dict:
    """Check the manifest's ``cohort.truth`` file (a synthetic cohort's planted truth).

    Returns
    -------
    dict
        Its content.

    Raises
    ------
    DataContractError
        Naming the field and the file, if it is missing or not a JSON object.
    """
    from rgenima.data.truth import read_truth

    try:
        return read_truth(path)
    except (FileNotFoundError, DataContractError) as exc:
        raise DataContractError(f"{exc} (cohort.truth in the manifest)") from exc


def check_mri_header(path: str | Path) -> nib.Nifti1Image:
    """Open an MRI header (no voxel data) and check it is a 3-D image.

    Parameters
    ----------
    path : str or pathlib.Path
        NIfTI file (``.nii`` or ``.nii.gz``).

    Returns
    -------
    nibabel.Nifti1Image
        The lazily loaded image. A 4-D image with a single volume is accepted
        (shape ``(x, y, z, 1)``), like nilearn's ``check_niimg_3d``.

    Raises
    ------
    DataContractError
        If the file cannot be read as NIfTI, is not 3-D, or its affine is not
        finite and invertible.
    """
    path = Path(path)
    try:
        img = typing.cast(nib.Nifti1Image, nib.load(path))
        shape = tuple(int(n) for n in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # nibabel raises many types on a bad file
        raise DataContractError(f"{path}: cannot read MRI image as NIfTI ({type(exc).__name__}: {exc}).") from None
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise DataContractError(f"{path}: MRI image must be 3-D (one volume per subject); got shape {shape}.")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DataContractError(
            f"{path}: MRI image has an invalid affine (not finite or not invertible): {affine.round(3).tolist()}."
        )
    return img


def _no_genotypes_hint(cohort, iids: list[str], ptids: set[str]) -> str:
    """Why no clinical PTID is a .fam IID, and what to change (no IDs if restricted)."""
    from rgenima.data.discovery import participant_id
    from rgenima.data.plink import plink_paths

    fam = plink_paths(cohort.genotypes)["fam"]
    with open(fam, encoding="utf-8", errors="replace") as handle:
        fids = {line.split()[0] for line in handle if line.split()}
    example = "" if cohort.restricted else f" (first .fam IID: {iids[0]!r})"
    text = f"no labelled subject has genotypes: .fam IIDs must equal clinical PTIDs such as '023_S_0031'{example}"
    if fids & ptids:
        return (
            f"{text}, but in {fam} the FIDs (column 1) are the PTIDs ({len(fids & ptids)} of them) and the "
            "IIDs (column 2) are not: the two columns look swapped. Swap them, e.g. "
            "`awk '{t=$1; $1=$2; $2=t; print}' OLD.fam > NEW.fam` (same prefix as the .bed and .bim)."
        )
    labels = set()
    for ptid in ptids:
        try:
            labels.add(participant_id(ptid))
        except DataContractError:
            continue
    as_labels = {i.removeprefix("sub-") for i in iids} & labels
    if as_labels:
        return (
            f"{text}, but {len(as_labels)} IIDs of {fam} are BIDS participant labels ('ADNI023S0031'): "
            "write the PTIDs in the .fam instead (plink --update-ids)."
        )
    return f"{text}: recode {fam} (plink --update-ids) so that each IID is the subject's PTID."


def _world_bounds(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) world coordinates in mm of the voxel grid's corners."""
    corners = np.array(
        [[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
        dtype=float,
    )
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def _overlap_fraction(img: nib.Nifti1Image, atlas: Atlas) -> float:
    """Fraction of the atlas bounding box covered by the image's field of view."""
    a_lo, a_hi = _world_bounds(atlas.image.shape[:3], atlas.image.affine)
    i_lo, i_hi = _world_bounds(img.shape[:3], img.affine)
    inter = np.clip(np.minimum(a_hi, i_hi) - np.maximum(a_lo, i_lo), 0, None)
    return float(np.prod(inter) / max(np.prod(a_hi - a_lo), 1e-9))


def validate_manifest(manifest: Manifest, *, bad_images: str = "raise") -> DataReport:
    """Check a manifest's data against the contract and build the data report.

    Parameters
    ----------
    manifest : Manifest
        From :func:`rgenima.data.manifest.load_manifest`.
    bad_images : {"raise", "exclude"}, default="raise"
        What to do with an MRI file that cannot be read or is not 3-D: raise a
        contract violation, or exclude the subject with the reason.

    Returns
    -------
    DataReport
        Counts per stage, modality coverage, exclusions with reasons, warnings.

    Raises
    ------
    DataContractError
        On a contract violation: checksum mismatch, missing file, missing column,
        duplicate baseline rows, unknown VISCODE, unreadable or 4-D image, PLINK
        size mismatch, bad atlas or gene panel. The message names the file.
    """
    if bad_images not in ("raise", "exclude"):
        raise ValueError(f"'bad_images' must be one of ('raise', 'exclude'). {bad_images!r} was provided.")
    cohort = manifest.cohort
    warnings: list[str] = []

    # 1. Cheap, whole-file checks first.
    checksums_verified = verify_checksums(manifest)
    clinical = read_clinical(cohort.clinical)
    subjects, exclusions = baseline_subjects(clinical)
    shape = check_plink_fileset(cohort.genotypes, unique_snp_ids=True)
    iids = read_fam_iids(cohort.genotypes)
    atlas = load_atlas(manifest.atlas)
    if manifest.gene_panel_builtin and not Path(manifest.gene_panel).is_file():
        raise DataContractError(
            f"built-in gene panel not found: {manifest.gene_panel} should ship with "
            f"rgenima (gene_panel: builtin); reinstall the package or give a TSV path."
        )
    check_gene_panel(manifest.gene_panel)
    if cohort.truth is not None:
        check_truth_file(cohort.truth)

    # 2. Genotypes: IID = PTID.
    dup_iids = sorted(k for k, n in Counter(iids).items() if n > 1)
    if dup_iids:
        shown = ", ".join(dup_iids[:_N_EXAMPLES]) + (" ..." if len(dup_iids) > _N_EXAMPLES else "")
        raise DataContractError(
            f"{Path(str(cohort.genotypes) + '.fam')}: IIDs must be unique (IID = PTID); "
            f"{len(dup_iids)} repeated: {shown}."
        )
    iid_set = set(iids)
    all_ptids = set(clinical["PTID"])
    unmatched = [iid for iid in iids if iid not in all_ptids]
    ptids = subjects["PTID"].tolist()
    has_geno = [p in iid_set for p in ptids]
    rows = [(p, _NO_GENOTYPES) for p, ok in zip(ptids, has_geno) if not ok]
    if ptids and not any(has_geno):
        warnings.append(_no_genotypes_hint(cohort, iids, set(ptids)))

    # 3. MRI: locate, then open headers only.
    mri_paths, no_mri = find_mri(cohort.mri, ptids)
    rows += list(no_mri.itertuples(index=False, name=None))
    outside = 0
    for ptid, path in list(mri_paths.items()):
        try:
            img = check_mri_header(path)
        except DataContractError as exc:
            if bad_images == "raise":
                raise
            del mri_paths[ptid]
            rows.append((ptid, f"unreadable MRI ({exc})"))
            continue
        if _overlap_fraction(img, atlas) < 0.5:
            outside += 1
    if outside:
        warnings.append(
            f"{outside} MRI images cover less than half of the atlas bounding box: are "
            f"they in MNI space (cohort.mri must point at normalised images)?"
        )

    # 4. Cohort = labelled and every modality present.
    geno_ok = dict(zip(ptids, has_geno))
    in_cohort = [p for p in ptids if geno_ok[p] and p in mri_paths]
    stage_of = dict(zip(subjects["PTID"], subjects["stage"].astype(str)))
    baseline_counts = {s: int((subjects["stage"] == s).sum()) for s in STAGES}
    counts = Counter(stage_of[p] for p in in_cohort)
    counts_per_stage = {s: int(counts.get(s, 0)) for s in STAGES}
    for stage in STAGES:
        if counts_per_stage[stage] == 0:
            warnings.append(f"no cohort subject has stage {stage}.")

    exclusions = pd.concat([exclusions, pd.DataFrame(rows, columns=["PTID", "reason"])], ignore_index=True)
    return DataReport(
        manifest=str(manifest.path),
        cohort_name=cohort.name,
        restricted=cohort.restricted,
        n_subjects_in_clinical=int(clinical["PTID"].nunique()),
        baseline_counts=baseline_counts,
        counts_per_stage=counts_per_stage,
        n_cohort=len(in_cohort),
        coverage={
            "clinical": len(ptids),
            "mri": len(mri_paths),
            "genotypes": int(sum(has_geno)),
        },
        exclusions=exclusions,
        warnings=warnings,
        n_fam_samples=shape.n_samples,
        n_snps=shape.n_snps,
        n_fam_unmatched=len(unmatched),
        fam_unmatched_examples=[] if cohort.restricted else unmatched[:_N_EXAMPLES],
        atlas_name=atlas.name,
        n_rois=atlas.n_rois,
        checksums_verified=checksums_verified,
        cohort_ptids=in_cohort,
        mri_paths=mri_paths,
    )
