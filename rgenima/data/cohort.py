"""Cohort assembly and the prepared-data cache (``rgenima prepare``).

:func:`assemble_subjects` gives the subjects present in every required modality;
subjects left out are listed with the reason in the data report
(:func:`rgenima.data.validate.validate_manifest`), never silently dropped.

:func:`prepare_cohort` turns a manifest into model-ready files under
``RUNDIR/prepared/``::

    prepare.json        content hash of inputs and settings, versions, counts, timings
    data_report.json    counts per stage and exclusions (no identifiers if restricted)
    subjects.csv        one row per subject: PTID, stage, label, covariates
    rois.tsv            atlas ROIs (roi_id, name, n_voxels on the first image grid)
    roi_features.npz    mean_intensity_norm, tissue_sum_ml: (n_subjects, n_rois)
    cubes/00000.npy     ROI cubes of subject row 0: (n_rois, D, D, D) float16
    snp_qc.tsv          per-SNP QC (equal to PLINK 1.9's figures)
    sample_qc.tsv       per-subject genotype call rate, and who qc.max_subject_missing removed
    snps.tsv            SNPs kept (QC pass, in a panel gene): snp, gene, chrom, pos, a1, a2
    dosage.npy          (n_subjects, n_snps) float32 count of a1, NaN = missing call
    prompts.jsonl       one genetic prompt per subject row, with character spans

Everything is written into a temporary folder that replaces ``prepared/`` only when
complete, so a failed run never leaves a partial cache. A rerun with the same inputs
(same content hash) reuses the cache, after checking that every file it lists is
still there with the size and sha256 it was written with; any changed input or
setting, or a missing, truncated or altered output, rebuilds it.

One ``prepare`` at a time writes a run folder (a lock, ``.prepare.lock``, released
by the system even when the process is killed); a second one is refused with a
message. A run killed before the end leaves ``.prepared.tmp-<pid>`` (unfinished) or,
in the instant of the swap, ``.prepared.old-<pid>`` (the previous cache): the next
``prepare`` removes the first and puts the second back if ``prepared/`` is missing.

Subjects removed by genotype QC (``qc.max_subject_missing``, PLINK's ``--mind``) are
left out of every output and listed, with their call rate, in ``data_report.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima import STAGES, __version__
from rgenima.data.atlas import load_atlas
from rgenima.data.clinical import baseline_subjects, read_clinical, resolve_clinical_path
from rgenima.data.manifest import Manifest, sha256_file
from rgenima.data.validate import DataReport, validate_manifest
from rgenima.errors import DataContractError, RunStateError
from rgenima.progress import progress_bar
from rgenima.run import PREPARE_RECORD, PreparedDir, Run, read_prepare_record

logger = logging.getLogger(__name__)

#: Bumped whenever the prepared files change meaning, to invalidate old caches.
PREPARE_FORMAT = 3  # 2: genes in genomic order in the prompt; 3: output checksums, --mind
_LOCK = ".prepare.lock"
_TMP_PREFIX = ".prepared.tmp-"
_OLD_PREFIX = ".prepared.old-"


def assemble_subjects(manifest: Manifest, report: DataReport | None = None) -> pd.DataFrame:
    """Baseline subjects with a study label, an MRI and genotypes.

    Parameters
    ----------
    manifest : Manifest
    report : DataReport, optional
        The manifest's data report, if already computed (it is computed otherwise).

    Returns
    -------
    subjects : DataFrame
        One row per cohort subject, in clinical-table order: ``PTID``, ``DX_bl``,
        ``stage``, the covariates present, and ``mri_path``.
    """
    report = report or validate_manifest(manifest)
    subjects, _ = baseline_subjects(read_clinical(manifest.cohort.clinical), manifest.cohort.clinical)
    cohort = subjects[subjects["PTID"].isin(set(report.cohort_ptids))].reset_index(drop=True)
    cohort["mri_path"] = cohort["PTID"].map(lambda p: str(report.mri_paths[p]))
    cohort.attrs["lines"] = subjects.attrs.get("lines", {})
    logger.info("cohort: %d subjects (%d excluded)", len(cohort), report.n_excluded)
    return cohort


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of data preparation that change the prepared files.

    Parameters
    ----------
    cube_size : int
        Edge of each ROI cube, in samples (cubes are cube_size**3).
    qc_chunk_snps : int
        SNPs decoded at a time during genotype QC (memory only, not results).
    """

    cube_size: int = 16
    qc_chunk_snps: int = 2000


def input_fingerprint(manifest: Manifest, subjects: pd.DataFrame, config: PrepareConfig) -> dict:
    """sha256 of every input file and the settings; its own hash keys the cache."""
    from rgenima.data.atlas import atlas_path_info

    files = {
        "clinical": sha256_file(resolve_clinical_path(manifest.cohort.clinical)),
        "gene_panel": sha256_file(manifest.gene_panel),
    }
    for ext in (".bed", ".bim", ".fam"):
        files[f"genotypes{ext}"] = sha256_file(f"{manifest.cohort.genotypes}{ext}")
    if manifest.atlas.is_builtin:
        info = atlas_path_info(manifest.atlas.name)
        files["atlas_image"], files["atlas_labels"] = info["image_sha256"], info["labels_sha256"]
    else:
        image, labels = manifest.atlas.user_files()
        files["atlas_image"], files["atlas_labels"] = sha256_file(image), sha256_file(labels)
    images = hashlib.sha256()
    for path in subjects["mri_path"]:
        images.update(sha256_file(path).encode())
    files["mri_images"] = images.hexdigest()
    settings = {
        "prepare_format": PREPARE_FORMAT,
        "config": asdict(config),
        "atlas": manifest.atlas.name,
        "qc": asdict(manifest.qc),
        "snp_gene_window_kb": manifest.snp_gene_window_kb,
        # The subjects and their order are part of the input (rows of every array).
        "subjects": hashlib.sha256("\n".join(subjects["PTID"]).encode()).hexdigest(),
    }
    blob = json.dumps({"files": files, "settings": settings}, sort_keys=True).encode()
    return {"hash": hashlib.sha256(blob).hexdigest(), "files": files, "settings": settings}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str) + "\n")


def _covariates(subjects: pd.DataFrame) -> pd.DataFrame:
    """Model covariates only: age (years), sex (1 female, 0 male), education (years)."""
    out = pd.DataFrame({"PTID": subjects["PTID"], "stage": subjects["stage"].astype(str)})
    out["label"] = out["stage"].map({s: i for i, s in enumerate(STAGES)}).astype(int)
    if "AGE" in subjects:
        out["age"] = subjects["AGE"].astype(float)
    if "PTGENDER" in subjects:
        out["sex_female"] = (subjects["PTGENDER"].astype(str).str.lower() == "female").astype(int)
    if "PTEDUCAT" in subjects:
        out["education"] = subjects["PTEDUCAT"].astype(float)
    if "APOE4" in subjects:  # description only: never a model input (genotypes are)
        out["APOE4"] = subjects["APOE4"]
    return out


@contextlib.contextmanager
def _subject_row(subjects: pd.DataFrame, i: int):
    """Add the clinical-table line to an error about subject row ``i`` (it locates the
    subject without printing its PTID, which a restricted run masks)."""
    try:
        yield
    except DataContractError as exc:
        line = subjects.attrs.get("lines", {}).get(subjects["PTID"].iat[i])
        if line is None:
            raise
        raise DataContractError(f"{exc} [subject of clinical table line {line}]") from None


def _prepare_mri(subjects: pd.DataFrame, atlas, config: PrepareConfig, out: Path) -> pd.DataFrame:
    import nibabel as nib

    from rgenima.data.mri import RoiExtractor

    ids = atlas.labels["index"].to_numpy()
    extractor = RoiExtractor(
        atlas.image, ids, cube_size=config.cube_size, lost_rois="raise", roi_names=dict(zip(ids, atlas.labels["name"]))
    )
    # Every grid first, from the headers: an image on a grid that loses ROIs is refused
    # before any cube is computed.
    for i, path in enumerate(subjects["mri_path"]):
        with _subject_row(subjects, i):
            extractor.sampler(nib.load(path), path)
    files = PreparedDir(out)
    files.cubes.mkdir()
    means = np.zeros((len(subjects), len(ids)), dtype=np.float32)
    tissue = np.zeros_like(means)
    n_voxels = None
    # One image at a time: full-size images are never held together in memory.
    for i, path in enumerate(progress_bar(subjects["mri_path"], desc="ROI cubes", unit="image")):
        with _subject_row(subjects, i):
            cubes, features = extractor.transform(path, path)
        if (i + 1) % max(1, len(subjects) // 10) == 0 or i + 1 == len(subjects):
            logger.info("ROI cubes: %d/%d images", i + 1, len(subjects))
        np.save(files.cube_file(i), cubes.astype(np.float16))
        means[i] = features["mean_intensity_norm"].to_numpy()
        tissue[i] = features["tissue_sum_ml"].to_numpy()
        if n_voxels is None:
            n_voxels = features["n_voxels"].to_numpy()
    np.savez(files.roi_features_npz, mean_intensity_norm=means, tissue_sum_ml=tissue)
    rois = atlas.labels.rename(columns={"index": "roi_id"})[["roi_id", "name"]].copy()
    rois["n_voxels"] = n_voxels
    rois.to_csv(files.rois_tsv, sep="\t", index=False)
    return rois


def _genotype_qc(
    manifest: Manifest, subjects: pd.DataFrame, report: DataReport, config: PrepareConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """QC of the PLINK set; subjects that ``qc.max_subject_missing`` removes leave the cohort.

    Returns
    -------
    snp_qc, sample_qc : DataFrame
        From :func:`rgenima.data.genetics.qc_plink_fileset`.
    subjects : DataFrame
        The cohort without the removed subjects (``report`` is updated to match).
    """
    from rgenima.data.genetics import qc_plink_fileset

    snp_qc, sample_qc = qc_plink_fileset(manifest.cohort.genotypes, manifest.qc, chunk_snps=config.qc_chunk_snps)
    failed = sample_qc[~sample_qc["pass"] & sample_qc["iid"].isin(set(subjects["PTID"]))]
    if failed.empty:
        return snp_qc, sample_qc, subjects
    limit = manifest.qc.max_subject_missing
    rows = [
        (
            iid,
            f"genotypes: too many missing calls (call rate {rate:.3f} < {1 - limit:.3g}; "
            f"qc.max_subject_missing {limit:g}, PLINK --mind)",
        )
        for iid, rate in zip(failed["iid"], failed["call_rate"])
    ]
    report.exclude_from_cohort(rows, dict(zip(subjects["PTID"], subjects["stage"].astype(str))))
    report.warnings.append(
        f"{len(rows)} subject(s) removed by genotype QC: more than {limit:g} of their calls are missing "
        "(qc.max_subject_missing); they are listed with the exclusions."
    )
    logger.warning("%s (prepared/data_report.json)", report.warnings[-1])
    kept = subjects[~subjects["PTID"].isin(set(failed["iid"]))].reset_index(drop=True)
    kept.attrs = dict(subjects.attrs)
    if kept.empty:
        raise DataContractError(
            f"{manifest.cohort.genotypes}.bed: every cohort subject has more than {limit:g} of its genotype "
            "calls missing (qc.max_subject_missing): the genotype files are damaged or belong to other "
            "subjects."
        )
    return snp_qc, sample_qc, kept


def _prepare_genotypes(
    manifest: Manifest,
    subjects: pd.DataFrame,
    out: Path,
    snp_qc: pd.DataFrame,
    sample_qc: pd.DataFrame,
    reference: Path | None = None,
) -> dict:
    from rgenima.data.genetics import (
        align_to_reference,
        map_snps_to_genes,
        read_gene_panel,
        read_genotypes,
        write_qc_tables,
    )
    from rgenima.data.prompt import build_prompt, genomic_gene_order, prompt_layout

    # QC is computed and written for every cohort; it selects the SNPs of a training
    # cohort only. A cohort prepared against a reference keeps the reference's SNPs.
    write_qc_tables(snp_qc, sample_qc, out)
    panel = read_gene_panel(manifest.gene_panel)
    alignment = None
    if reference is None:
        passing = snp_qc[snp_qc["pass"]]
        mapped, n_unmapped = map_snps_to_genes(passing, panel, manifest.snp_gene_window_kb)
        if mapped.empty:
            raise DataContractError(_no_snps_message(manifest, snp_qc))
        geno = read_genotypes(manifest.cohort.genotypes, snps=mapped["snp"].tolist())
        col = pd.Series(np.arange(len(geno.variants)), index=geno.variants["snp"])
        snps = mapped[["snp", "gene", "chrom", "pos"]].merge(geno.variants[["snp", "a1", "a2"]], on="snp", how="left")
        all_rows = geno.dosage[:, col.loc[mapped["snp"]].to_numpy()]
    else:
        snps = pd.read_csv(PreparedDir(reference).snps_tsv, sep="\t", dtype={"chrom": str})
        n_unmapped = 0
        geno = read_genotypes(manifest.cohort.genotypes, snps=snps["snp"].tolist())
        all_rows, alignment = align_to_reference(geno, snps, source=f"{manifest.cohort.genotypes}.bim")
    # Rows in subject order, columns in `snps` order.
    row = pd.Series(np.arange(len(geno.samples)), index=geno.samples["iid"])
    dosage = all_rows[row.loc[subjects["PTID"]].to_numpy()]
    files = PreparedDir(out)
    snps.to_csv(files.snps_tsv, sep="\t", index=False)
    np.save(files.dosage_npy, dosage.astype(np.float32))
    layout = prompt_layout(snps, genomic_gene_order(panel))
    with open(files.prompts_jsonl, "w") as fh:
        for i in range(len(subjects)):
            prompt = build_prompt(dosage[i], snps, layout)
            fh.write(json.dumps({"row": i, "text": prompt.text, "spans": [asdict(s) for s in prompt.spans]}) + "\n")
    summary = {
        "n_snps_in_files": int(len(snp_qc)),
        "n_snps_failing_qc": int((~snp_qc["pass"]).sum()),
        "n_snps_outside_panel_genes": int(n_unmapped),
        "n_snps_kept": int(len(snps)),
        "n_genes_with_snps": int(snps["gene"].nunique()),
        "n_panel_genes": int(len(panel)),
        "qc_fail_reasons": snp_qc.loc[~snp_qc["pass"], "fail_reason"].value_counts().to_dict(),
        "n_samples_removed_by_qc": int((~sample_qc["pass"]).sum()),
    }
    if alignment is not None:
        summary["aligned_to_reference"] = alignment
    return summary


def _no_snps_message(manifest: Manifest, snp_qc: pd.DataFrame) -> str:
    """Why no SNP is left for the genetic prompts (an empty prompt is never written silently)."""
    bim = f"{manifest.cohort.genotypes}.bim"
    failed = snp_qc.loc[~snp_qc["pass"], "fail_reason"].str.split(";").str[0].value_counts()
    if int(snp_qc["pass"].sum()) == 0:
        reasons = ", ".join(f"{n} {reason}" for reason, n in failed.head(5).items())
        hint = (
            " 'maf=NA' means no founder was found: allele frequencies use samples whose .fam father "
            "and mother (columns 3 and 4) are both 0, as PLINK; write 0 there for unrelated subjects."
            if failed.index.str.startswith("maf=NA").any()
            else " Check the qc thresholds in the manifest (min_call_rate, min_maf, hwe_p)."
        )
        return (
            f"{bim}: none of its {len(snp_qc)} SNPs passes genotype QC ({reasons}), so every genetic "
            f"prompt would be empty.{hint}"
        )
    return (
        f"{bim}: none of the {int(snp_qc['pass'].sum())} SNPs that pass QC lies within "
        f"{manifest.snp_gene_window_kb:g} kb of a gene of {manifest.gene_panel}, so every genetic prompt "
        "would be empty. Are the positions on GRCh37 (the panel's build) and the chromosome codes 1-22/X?"
    )


def _check_reference(reference: Path, manifest: Manifest, fingerprint: dict, config: PrepareConfig) -> dict:
    """The reference's prepare.json, after checking that this cohort can be read as it was."""
    previous = read_prepare_record(reference)
    if previous is None:
        raise DataContractError(
            f"{reference}: not a usable prepared folder (its prepare.json is missing or unreadable); "
            "run `rgenima prepare` on the training cohort first."
        )
    settings, files = previous["inputs"]["settings"], previous["inputs"]["files"]
    mine = fingerprint["files"]
    checks = [
        ("atlas", settings["atlas"], manifest.atlas.name),
        ("atlas image", files["atlas_image"], mine["atlas_image"]),
        ("atlas labels", files["atlas_labels"], mine["atlas_labels"]),
        ("gene panel", files["gene_panel"], mine["gene_panel"]),
        ("cube size", settings["config"]["cube_size"], config.cube_size),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise DataContractError(
                f"{manifest.path}: the {what} differs from the training cohort's ({reference}): "
                "an external cohort must be prepared with the same atlas, gene panel and cube size."
            )
    return previous


def _output_records(folder: Path) -> dict[str, dict]:
    """Size and sha256 of every file under ``folder`` (relative POSIX path -> record)."""
    return {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != PREPARE_RECORD
    }


def _cache_problem(target: Path, input_hash: str) -> str | None:
    """Why the prepared folder cannot be reused (None when it can)."""
    stamp = PreparedDir(target).prepare_json
    if not stamp.is_file():
        return f"no prepared data in {target}"
    record = read_prepare_record(target)
    if record is None:
        return f"{stamp} is unreadable (truncated by an interrupted run?)"
    if record.get("input_hash") != input_hash:
        return f"inputs changed (hash {str(record.get('input_hash', ''))[:12]} -> {input_hash[:12]})"
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return f"{stamp} lists no output checksums (an older format)"
    for rel, expected in outputs.items():
        path = target / rel
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != expected.get("bytes"):
            return f"{path} has {size} bytes, {expected.get('bytes')} when it was written"
        if sha256_file(path) != expected.get("sha256"):
            return f"{path} changed since it was written (sha256 differs)"
    return None


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """Hold ``run_dir/.prepare.lock`` (the system releases it if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    with open(run_dir / _LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = (handle.read().split() or ["unknown"])[-1]
            raise RunStateError(
                f"{run_dir}: another `rgenima prepare` (process {holder}) is preparing this run folder "
                "now; wait for it to finish (its result will be reused), or prepare into another --out."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _recover_interrupted(run_dir: Path, target: Path) -> None:
    """Clean up after a prepare that was killed (the caller holds the run lock)."""
    olds = sorted(run_dir.glob(f"{_OLD_PREFIX}*"), key=lambda p: p.stat().st_mtime)
    if olds and not target.exists():
        olds.pop().rename(target)
        logger.warning("%s was missing after an interrupted run: put the previous prepared data back", target)
    for leftover in olds + sorted(run_dir.glob(f"{_TMP_PREFIX}*")):
        logger.warning("removing %s, left unfinished by an interrupted run", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _empty_cohort_message(manifest: Manifest, report: DataReport) -> str:
    reasons = "; ".join(f"{n} {reason}" for reason, n in list(report.exclusion_counts().items())[:5])
    hints = " ".join(w for w in report.warnings if not w.startswith("no cohort subject has stage"))
    return (
        f"{manifest.path}: no subject has a baseline label, an MRI and genotypes, so there is nothing to "
        f"prepare. Excluded subjects by reason: {reasons or 'none'}.{' ' + hints if hints else ''} "
        "`rgenima validate` prints the whole data report."
    )


def prepare_cohort(
    manifest: Manifest,
    run_dir: str | Path,
    config: PrepareConfig = PrepareConfig(),
    force: bool = False,
    reference: str | Path | None = None,
) -> Path:
    """Prepare (or reuse) the model-ready inputs of a manifest under ``run_dir/prepared``.

    Parameters
    ----------
    reference : path, optional
        The ``prepared`` folder of a training cohort. The cohort is then prepared to be
        read by that cohort's models (external validation): the same SNPs in the same
        order and allele coding (:func:`rgenima.data.genetics.align_to_reference`), not
        the SNPs that pass QC here; its atlas, gene panel and cube size must be the
        reference's.

    Returns
    -------
    Path
        The ``prepared`` folder.

    Raises
    ------
    DataContractError
        On bad input (see :func:`rgenima.data.validate.validate_manifest`), an empty
        cohort (the message gives the exclusion reasons), an image whose grid loses
        atlas ROIs, or genotypes that QC removes for every subject.
    RunStateError
        If another process is preparing the same run folder.
    """
    run_dir = Path(run_dir)
    target = Run(run_dir).prepared
    t0 = time.perf_counter()
    report = validate_manifest(manifest)
    subjects = assemble_subjects(manifest, report)
    if subjects.empty:
        raise DataContractError(_empty_cohort_message(manifest, report))
    fingerprint = input_fingerprint(manifest, subjects, config)
    if reference is not None:
        reference = Path(reference)
        previous_reference = _check_reference(reference, manifest, fingerprint, config)
        # The reference's SNP table is an input: a retrained reference rebuilds this cache.
        fingerprint["settings"]["reference"] = previous_reference["input_hash"]
        blob = json.dumps({"files": fingerprint["files"], "settings": fingerprint["settings"]}, sort_keys=True)
        fingerprint["hash"] = hashlib.sha256(blob.encode()).hexdigest()
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir):
        _recover_interrupted(run_dir, target)
        if not force:
            problem = _cache_problem(target, fingerprint["hash"])
            if problem is None:
                logger.info(
                    "prepared data are up to date (hash %s, every output verified): reusing %s",
                    fingerprint["hash"][:12],
                    target,
                )
                return target
            logger.info("%s: rebuilding", problem)
        tmp = run_dir / f"{_TMP_PREFIX}{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _build(manifest, subjects, report, fingerprint, config, reference, tmp, t0)
            old = run_dir / f"{_OLD_PREFIX}{os.getpid()}"
            if target.exists():
                target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("prepared %d subjects into %s in %.1f s", report.n_cohort, target, time.perf_counter() - t0)
    return target


def _build(
    manifest: Manifest,
    subjects: pd.DataFrame,
    report: DataReport,
    fingerprint: dict,
    config: PrepareConfig,
    reference: Path | None,
    tmp: Path,
    t0: float,
) -> None:
    """Write every prepared file into ``tmp`` (prepare.json last, with the outputs' checksums)."""
    atlas = load_atlas(manifest.atlas)
    t_geno = time.perf_counter()
    snp_qc, sample_qc, subjects = _genotype_qc(manifest, subjects, report, config)
    t_mri = time.perf_counter()
    rois = _prepare_mri(subjects, atlas, config, tmp)
    t_prompts = time.perf_counter()
    genetics = _prepare_genotypes(manifest, subjects, tmp, snp_qc, sample_qc, reference)
    t_end = time.perf_counter()
    table = _covariates(subjects)
    files = PreparedDir(tmp)
    table.to_csv(files.subjects_csv, index=False)
    report.write_json(files.data_report_json)
    _write_json(
        files.prepare_json,
        {
            "input_hash": fingerprint["hash"],
            "inputs": fingerprint,
            "manifest": manifest.to_dict(),
            "rgenima_version": __version__,
            "python": platform.python_version(),
            "n_subjects": int(len(table)),
            "class_counts": table["stage"].value_counts().reindex(list(STAGES), fill_value=0).to_dict(),
            "n_rois": int(len(rois)),
            # Always empty: an image whose grid loses ROIs is refused (kept for readers).
            "rois_missing_on_grid": rois.loc[rois["n_voxels"] == 0, "name"].tolist(),
            "genetics": genetics,
            "reference": str(reference.resolve()) if reference is not None else None,
            "seconds": {
                "validate_and_hash": round(t_geno - t0, 2),
                "mri": round(t_prompts - t_mri, 2),
                "genotypes": round(t_end - t_prompts + t_mri - t_geno, 2),
            },
            "outputs": _output_records(tmp),
        },
    )
