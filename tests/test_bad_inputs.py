"""Bad-input corpus: every damaged input, fault and privacy probe gives one clear refusal.

Each case damages a fresh copy of the minimal cohort (``minimal_cohort.py``; nothing is
committed as a binary), runs one ``rgenima`` command in-process and checks:

- the exit code (0 only where the behaviour is documented, e.g. ADNI's baseline
  VISCODE variants, and then the result itself is checked);
- that the message names the file, the field, the line or the subject, and the fix;
- that no Python traceback is printed (``--debug`` is tested separately);
- that a run folder prepared before the corpus started is unchanged, byte for byte.

The cases are listed in :data:`CASES` (name -> expected exit code, damage function).
"""

from __future__ import annotations

import base64
import errno
import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from minimal_cohort import AFFINE, MinimalCohort, merge, write_minimal_cohort

from rgenima.cli import main

PTID = "991_S_9001"  # a subject of the minimal cohort (site 991 is not an ADNI site)
MASKED = "###_S_####"


# ----------------------------------------------------------------------------------
# The prepared run every case must leave alone


@dataclass
class Base:
    cohort: MinimalCohort
    run: Path
    snapshot: dict[str, str]


def _founders(cohort: MinimalCohort) -> None:
    """Unrelated subjects: father and mother 0 (pandas-plink writes '?')."""
    fam = pd.read_csv(cohort.fam, sep=r"\s+", header=None, dtype=str)
    fam[2], fam[3], fam[4], fam[5] = "0", "0", "0", "-9"
    fam.to_csv(cohort.fam, sep=" ", header=False, index=False)


def _snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the lock file's pid aside), and its folders."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.name == ".prepare.lock":
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def _prepare_argv(manifest: Path, out: Path, *extra: str) -> list:
    return ["prepare", "--manifest", manifest, "--out", out, "--cube-size", "4", *extra]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("bad_inputs")
    cohort = write_minimal_cohort(root / "good")
    _founders(cohort)
    run = root / "run"
    assert main([str(a) for a in _prepare_argv(cohort.manifest, run)]) == 0
    return Base(cohort, run, _snapshot(run))


def _copy_cohort(cohort: MinimalCohort, dst: Path) -> MinimalCohort:
    shutil.copytree(cohort.root, dst)
    moved = {
        f.name: dst / getattr(cohort, f.name).relative_to(cohort.root)
        for f in fields(cohort)
        if isinstance(getattr(cohort, f.name), Path)
    }
    return replace(cohort, **moved)


def _copy_run(base: Base, dst: Path) -> Path:
    shutil.copytree(base.run, dst)
    return dst


def _edit_manifest(cohort: MinimalCohort, overrides: dict) -> None:
    content = yaml.safe_load(cohort.manifest.read_text())
    cohort.manifest.write_text(yaml.safe_dump(merge(content, overrides), sort_keys=False))


def _clinical(cohort: MinimalCohort) -> pd.DataFrame:
    return pd.read_csv(cohort.clinical, dtype=str)


def _write_clinical(cohort: MinimalCohort, table: pd.DataFrame) -> None:
    table.to_csv(cohort.clinical, index=False)


def _t1w(cohort: MinimalCohort, ptid: str) -> Path:
    return cohort.t1w(ptid)


def _bed_set_missing(cohort: MinimalCohort, samples: list[int]) -> None:
    """Set every call of the given .fam rows to missing (PLINK code 01)."""
    n = len(cohort.fam.read_text().splitlines())
    width = (n + 3) // 4
    data = bytearray(cohort.bed.read_bytes())
    n_snps = (len(data) - 3) // width
    for j in range(n_snps):
        for k in samples:
            at = 3 + j * width + k // 4
            shift = 2 * (k % 4)
            data[at] = (data[at] & ~(3 << shift) & 0xFF) | (1 << shift)
    cohort.bed.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------
# Cases: name -> (expected exit code, damage). A damage function gets the copied
# cohort, the base run, a scratch folder and pytest's monkeypatch, and returns
# (argv, fragments the output must contain, optional check of the result).

Damage = Callable[..., tuple]
CASES: dict[str, tuple[int, Damage]] = {}


def case(rc: int = 1):
    def register(fn: Damage) -> Damage:
        CASES[fn.__name__] = (rc, fn)
        return fn

    return register


def _prepare(c: MinimalCohort, b: Base, *extra: str) -> list:
    """prepare into the base run: a refusal must leave it as it was."""
    return _prepare_argv(c.manifest, b.run, *extra)


# -- messy ADNIMERGE tables ----------------------------------------------------------


@case()
def clinical_windows_1252(c, b, tmp, mp):
    text = c.clinical.read_text().replace("Female", "Fémale", 1)
    c.clinical.write_bytes(text.encode("cp1252"))
    return _prepare(c, b), ["ADNIMERGE.csv, line 2", "0xe9", "iconv"], None


@case()
def clinical_header_only(c, b, tmp, mp):
    c.clinical.write_text(c.clinical.read_text().splitlines()[0] + "\n")
    return _prepare(c, b), ["ADNIMERGE.csv", "header line but no rows"], None


@case()
def clinical_empty_file(c, b, tmp, mp):
    c.clinical.write_bytes(b"")
    return _prepare(c, b), ["ADNIMERGE.csv", "empty"], None


@case()
def clinical_missing_dx_column(c, b, tmp, mp):
    _write_clinical(c, _clinical(c).drop(columns=["DX_bl"]))
    return _prepare(c, b), ["ADNIMERGE.csv", "DX_bl"], None


@case()
def clinical_ragged_line(c, b, tmp, mp):
    with open(c.clinical, "a") as handle:
        handle.write("9999,994_S_9999,bl,CN,70,Male,16,0,29,extra,fields\n")
    return _prepare(c, b), ["ADNIMERGE.csv", "line 20", "quotes"], None


@case()
def clinical_duplicate_baseline(c, b, tmp, mp):
    table = _clinical(c)
    table = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    _write_clinical(c, table)
    return _prepare(c, b), ["ADNIMERGE.csv", PTID, "lines 2, 20", "remove the duplicate"], None


@case()
def clinical_uppercase_viscode(c, b, tmp, mp):
    table = _clinical(c)
    table.loc[0, "VISCODE"] = "BL"
    _write_clinical(c, table)
    return _prepare(c, b), ["ADNIMERGE.csv", "line 2", "'BL'", "VISCODE"], None


@case()
def clinical_no_baseline_at_all(c, b, tmp, mp):
    table = _clinical(c)
    _write_clinical(c, table[table["VISCODE"] != "bl"])
    return ["validate", "--manifest", c.manifest], ["nothing to prepare", "no baseline visit"], None


@case()
def clinical_no_baseline_prepare(c, b, tmp, mp):
    table = _clinical(c)
    _write_clinical(c, table[table["VISCODE"] != "bl"])
    return _prepare(c, b), ["data_manifest.yaml", "nothing to prepare", "6 no baseline visit"], None


@case()
def clinical_unknown_diagnoses(c, b, tmp, mp):
    table = _clinical(c)
    table["DX_bl"] = "Dementia"
    _write_clinical(c, table)
    return _prepare(c, b), ["nothing to prepare", "DX_bl 'Dementia'"], None


def _baseline_variant(code: str):
    def damage(c, b, tmp, mp):
        table = _clinical(c)
        table["VISCODE"] = table["VISCODE"].replace("bl", code)
        _write_clinical(c, table)

        def check(out, err):
            subjects = pd.read_csv(tmp / "run" / "prepared" / "subjects.csv")
            assert len(subjects) == 6

        return _prepare_argv(c.manifest, tmp / "run"), ["prepared data"], check

    damage.__name__ = f"clinical_baseline_viscode_{code}"
    return damage


for _code in ("m00", "init", "sc", "scmri"):
    case(rc=0)(_baseline_variant(_code))


@case(rc=0)
def clinical_bl_preferred_to_screening(c, b, tmp, mp):
    table = _clinical(c)
    screening = table[table["VISCODE"] == "bl"].assign(VISCODE="sc", AGE="50.0")
    _write_clinical(c, pd.concat([screening, table], ignore_index=True))

    def check(out, err):
        subjects = pd.read_csv(tmp / "run" / "prepared" / "subjects.csv")
        assert len(subjects) == 6 and (subjects["age"] > 60).all()  # the bl rows' ages

    return _prepare_argv(c.manifest, tmp / "run"), ["prepared data"], check


@case(rc=0)
def clinical_dated_file_in_folder(c, b, tmp, mp):
    folder = c.clinical.parent / "adnimerge"
    folder.mkdir()
    c.clinical.rename(folder / "ADNIMERGE_2024-05-01.csv")
    _edit_manifest(c, {"cohort": {"clinical": "data/adnimerge"}})

    def check(out, err):
        assert len(pd.read_csv(tmp / "run" / "prepared" / "subjects.csv")) == 6

    return _prepare_argv(c.manifest, tmp / "run"), ["prepared data"], check


@case()
def clinical_two_files_in_folder(c, b, tmp, mp):
    folder = c.clinical.parent / "adnimerge"
    folder.mkdir()
    shutil.copy(c.clinical, folder / "ADNIMERGE_2024-05-01.csv")
    c.clinical.rename(folder / "ADNIMERGE_2023-01-01.csv")
    _edit_manifest(c, {"cohort": {"clinical": "data/adnimerge"}})
    return _prepare(c, b), ["adnimerge", "ADNIMERGE_2023-01-01.csv", "ADNIMERGE_2024-05-01.csv"], None


@case(rc=0)
def clinical_utf8_bom(c, b, tmp, mp):
    c.clinical.write_bytes(b"\xef\xbb\xbf" + c.clinical.read_bytes())
    return ["validate", "--manifest", c.manifest], ["6"], None


@case()
def clinical_path_missing(c, b, tmp, mp):
    c.clinical.unlink()
    return _prepare(c, b), ["clinical table not found", "ADNIMERGE.csv", "cohort.clinical", "does not exist"], None


@case()
def clinical_symlink_loop(c, b, tmp, mp):
    c.clinical.unlink()
    os.symlink(c.clinical.name, c.clinical)
    return _prepare(c, b), ["ADNIMERGE.csv", "symbolic link loop"], None


# -- broken NIfTI ----------------------------------------------------------------------


@case()
def nifti_truncated(c, b, tmp, mp):
    path = _t1w(c, "991_S_9002")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _prepare(c, b), ["sub-ADNI991S9002", "truncated"], None


@case()
def nifti_not_an_image(c, b, tmp, mp):
    _t1w(c, "991_S_9002").write_text("this is not a NIfTI file\n")
    return _prepare(c, b), ["sub-ADNI991S9002"], None


def _write_t1w(c: MinimalCohort, ptid: str, data: np.ndarray, affine=AFFINE) -> None:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), _t1w(c, ptid))


@case()
def nifti_all_zero(c, b, tmp, mp):
    _write_t1w(c, "991_S_9002", np.zeros((7, 8, 9)))
    return _prepare(c, b), ["sub-ADNI991S9002", "every voxel", "empty"], None


@case()
def nifti_nan_voxels(c, b, tmp, mp):
    data = np.random.default_rng(0).random((7, 8, 9))
    data[3, 3, 3] = np.nan
    _write_t1w(c, "991_S_9002", data)
    return _prepare(c, b), ["sub-ADNI991S9002", "non-finite"], None


@case()
def nifti_4d_series(c, b, tmp, mp):
    _write_t1w(c, "991_S_9002", np.random.default_rng(0).random((7, 8, 9, 2)))
    return _prepare(c, b), ["sub-ADNI991S9002", "3-D"], None


@case()
def nifti_coarse_grid_loses_rois(c, b, tmp, mp):
    coarse = AFFINE.copy()
    coarse[:3, :3] *= 3  # 60 mm voxels: ROIs 40 mm wide fall between samples
    _write_t1w(c, "991_S_9002", np.random.default_rng(0).random((3, 3, 3)) + 0.1, coarse)
    return _prepare(c, b), ["sub-ADNI991S9002", "loses", "of its 3 ROIs", "finer grid"], None


@case()
def nifti_not_in_mni_space(c, b, tmp, mp):
    far = AFFINE.copy()
    far[:3, 3] += 5000.0
    _write_t1w(c, "991_S_9002", np.random.default_rng(0).random((7, 8, 9)), far)
    return _prepare(c, b), ["sub-ADNI991S9002", "MNI"], None


@case()
def mri_bids_root_missing(c, b, tmp, mp):
    shutil.rmtree(c.bids_root)
    return _prepare(c, b), ["MRI BIDS folder not found", "cohort.mri.bids_root", "does not exist"], None


@case(rc=0)
def mri_pattern_folder_with_brackets(c, b, tmp, mp):
    folder = c.root / "data" / "scans[2024]"
    folder.mkdir()
    for ptid in c.ptids:
        shutil.copy(_t1w(c, ptid), folder / f"{ptid}.nii.gz")
    shutil.rmtree(c.bids_root)
    _edit_manifest(c, {"cohort": {"mri": {"bids_root": None, "pattern": "data/scans[2024]/{ptid}.nii.gz"}}})
    report = tmp / "report.json"

    def check(out, err):
        assert json.loads(report.read_text())["n_cohort"] == 6

    return ["validate", "--manifest", c.manifest, "--json", report], [], check


@case(rc=0)
def mri_symlink_loop(c, b, tmp, mp):
    path = _t1w(c, "991_S_9002")
    path.unlink()
    os.symlink(path.name, path)
    report = tmp / "report.json"

    def check(out, err):
        content = json.loads(report.read_text())
        reasons = {e["PTID"]: e["reason"] for e in content["exclusions"]}
        assert "link loop" in reasons["991_S_9002"] and content["n_cohort"] == 5

    # Excluded (listed with the reason), like any subject without a usable image.
    return ["validate", "--manifest", c.manifest, "--json", report], ["link loop"], check


# -- odd PLINK sets ----------------------------------------------------------------------


def _bim(c: MinimalCohort) -> list[list[str]]:
    return [line.split("\t") for line in c.bim.read_text().splitlines()]


def _write_bim(c: MinimalCohort, rows: list[list[str]]) -> None:
    c.bim.write_text("".join("\t".join(r) + "\n" for r in rows))


@case()
def plink_duplicated_snp_id(c, b, tmp, mp):
    rows = _bim(c)
    rows[1][1] = rows[0][1]
    _write_bim(c, rows)
    return _prepare(c, b), ["cohort.bim", "'rs1000' (lines 1, 2)", "--list-duplicate-vars"], None


@case(rc=0)
def plink_subject_all_missing(c, b, tmp, mp):
    _bed_set_missing(c, [1])  # 991_S_9002

    def check(out, err):
        prepared = tmp / "run" / "prepared"
        subjects = pd.read_csv(prepared / "subjects.csv")
        assert "991_S_9002" not in set(subjects["PTID"]) and len(subjects) == 5
        report = json.loads((prepared / "data_report.json").read_text())
        reasons = {e["PTID"]: e["reason"] for e in report["exclusions"]}
        assert "too many missing calls" in reasons["991_S_9002"]
        assert "max_subject_missing" in reasons["991_S_9002"]
        assert report["n_cohort"] == 5
        sample_qc = pd.read_csv(prepared / "sample_qc.tsv", sep="\t")
        assert sample_qc.set_index("iid").loc["991_S_9002", "pass"] == False  # noqa: E712
        # The other subjects keep every SNP that passes QC: the removed one does not
        # lower their call rates.
        assert len(pd.read_csv(prepared / "snps.tsv", sep="\t")) == len(
            pd.read_csv(b.run / "prepared" / "snps.tsv", sep="\t")
        )

    return _prepare_argv(c.manifest, tmp / "run"), ["prepared data", "removed by genotype QC"], check


@case()
def plink_every_subject_missing(c, b, tmp, mp):
    _bed_set_missing(c, list(range(6)))
    return _prepare(c, b), ["cohort.bed", "qc.max_subject_missing"], None


@case(rc=0)
def qc_command_lists_removed_samples(c, b, tmp, mp):
    _bed_set_missing(c, [1])

    def check(out, err):
        table = pd.read_csv(tmp / "qc" / "sample_qc.tsv", sep="\t")
        assert table["pass"].tolist() == [True, False, True, True, True, True]

    return ["qc", "--bfile", c.plink_prefix, "--out", tmp / "qc"], ["1 removed"], check


@case()
def plink_iids_are_not_ptids(c, b, tmp, mp):
    fam = pd.read_csv(c.fam, sep=r"\s+", header=None, dtype=str)
    fam[0] = fam[1] = [f"S{i}" for i in range(len(fam))]
    fam.to_csv(c.fam, sep=" ", header=False, index=False)
    return _prepare(c, b), ["cohort.fam", "PTID", "plink --update-ids"], None


@case()
def plink_fid_iid_swapped(c, b, tmp, mp):
    fam = pd.read_csv(c.fam, sep=r"\s+", header=None, dtype=str)
    fam[1] = [f"X{i}" for i in range(len(fam))]
    fam.to_csv(c.fam, sep=" ", header=False, index=False)
    return _prepare(c, b), ["cohort.fam", "swapped"], None


@case()
def plink_bed_truncated(c, b, tmp, mp):
    c.bed.write_bytes(c.bed.read_bytes()[:-3])
    return _prepare(c, b), ["cohort.bed", "bytes"], None


@case()
def plink_bed_bad_magic(c, b, tmp, mp):
    c.bed.write_bytes(b"\x00\x00\x01" + c.bed.read_bytes()[3:])
    return _prepare(c, b), ["cohort.bed", "magic"], None


@case()
def plink_bim_missing(c, b, tmp, mp):
    c.bim.unlink()
    return _prepare(c, b), ["incomplete", "cohort.bim"], None


@case()
def plink_bim_bad_position(c, b, tmp, mp):
    rows = _bim(c)
    rows[2][3] = "45,402,000"
    _write_bim(c, rows)
    return _prepare(c, b), ["cohort.bim, line 3", "position"], None


@case()
def plink_fam_empty(c, b, tmp, mp):
    c.fam.write_text("")
    return _prepare(c, b), ["cohort.fam", "no samples"], None


@case()
def plink_no_founders(c, b, tmp, mp):
    fam = pd.read_csv(c.fam, sep=r"\s+", header=None, dtype=str)
    fam[2], fam[3] = "?", "?"
    fam.to_csv(c.fam, sep=" ", header=False, index=False)
    return _prepare(c, b), ["cohort.bim", "none of its 10 SNPs passes", "founder"], None


@case(rc=2)
def qc_chunk_snps_zero(c, b, tmp, mp):
    return ["qc", "--bfile", c.plink_prefix, "--out", tmp / "qc", "--chunk-snps", "0"], ["--chunk-snps"], None


@case()
def manifest_max_subject_missing_out_of_range(c, b, tmp, mp):
    _edit_manifest(c, {"qc": {"max_subject_missing": 1.5}})
    return _prepare(c, b), ["data_manifest.yaml", "max_subject_missing"], None


# -- bad gene panels ------------------------------------------------------------------


def _panel(c: MinimalCohort) -> pd.DataFrame:
    return pd.read_csv(c.gene_panel, sep="\t", dtype=str)


@case()
def panel_comma_grouped_start(c, b, tmp, mp):
    panel = _panel(c)
    panel.loc[0, "start"] = "45,409,039"
    panel.to_csv(c.gene_panel, sep="\t", index=False)
    return _prepare(c, b), ["gene_panel.tsv, line 2", "thousands separators"], None


@case()
def panel_missing_column(c, b, tmp, mp):
    _panel(c).drop(columns=["ad_locus"]).to_csv(c.gene_panel, sep="\t", index=False)
    return _prepare(c, b), ["gene_panel.tsv", "'ad_locus'"], None


@case()
def panel_repeated_symbol(c, b, tmp, mp):
    panel = _panel(c)
    panel.loc[1, "symbol"] = "APOE"
    panel.to_csv(c.gene_panel, sep="\t", index=False)
    return _prepare(c, b), ["gene_panel.tsv", "APOE"], None


@case()
def panel_start_after_end(c, b, tmp, mp):
    panel = _panel(c)
    panel.loc[2, "start"] = "99999999"
    panel.to_csv(c.gene_panel, sep="\t", index=False)
    return _prepare(c, b), ["gene_panel.tsv, line 4", "CLU"], None


@case()
def panel_missing_file(c, b, tmp, mp):
    c.gene_panel.unlink()
    return _prepare(c, b), ["gene panel not found", "gene_panel.tsv", "does not exist"], None


@case()
def panel_no_gene_near_any_snp(c, b, tmp, mp):
    panel = _panel(c)
    panel["chrom"] = "2"
    panel.to_csv(c.gene_panel, sep="\t", index=False)
    return _prepare(c, b), ["cohort.bim", "within 10 kb", "GRCh37"], None


# -- bad manifests ------------------------------------------------------------------------


@case()
def manifest_not_yaml(c, b, tmp, mp):
    c.manifest.write_text("cohort: [unclosed\n")
    return _prepare(c, b), ["data_manifest.yaml: not valid YAML at line 2"], None


@case()
def manifest_unknown_key(c, b, tmp, mp):
    _edit_manifest(c, {"qcc": {"min_maf": 0.05}})
    return _prepare(c, b), ["data_manifest.yaml", "qcc"], None


@case()
def manifest_is_a_folder(c, b, tmp, mp):
    argv = _prepare(c, b)
    argv[2] = c.root
    return argv, ["is a folder", "data_manifest.yaml"], None


@case()
def manifest_missing(c, b, tmp, mp):
    c.manifest.unlink()
    return _prepare(c, b), ["data_manifest.yaml", "manifest file not found"], None


@case()
def manifest_empty(c, b, tmp, mp):
    c.manifest.write_text("")
    return _prepare(c, b), ["data_manifest.yaml", "'cohort'"], None


@case()
def manifest_negative_window(c, b, tmp, mp):
    _edit_manifest(c, {"snp_gene_window_kb": -5})
    return _prepare(c, b), ["data_manifest.yaml", "snp_gene_window_kb"], None


# -- interrupted and concurrent runs, file system faults -------------------------------


@case(rc=0)
def run_stale_tmp_folder_is_removed(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")
    stale = run / ".prepared.tmp-99999"
    (stale / "cubes").mkdir(parents=True)
    (stale / "cubes" / "00000.npy").write_bytes(b"\0" * 4096)

    def check(out, err):
        assert not stale.exists()
        assert _snapshot(run) == b.snapshot

    return _prepare_argv(b.cohort.manifest, run), ["removing", "up to date"], check


@case(rc=0)
def run_killed_during_swap_puts_back_cache(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")
    (run / "prepared").rename(run / ".prepared.old-99999")

    def check(out, err):
        assert not (run / ".prepared.old-99999").exists()
        assert _snapshot(run) == b.snapshot

    return _prepare_argv(b.cohort.manifest, run), ["put the previous prepared data back", "up to date"], check


@case(rc=0)
def run_truncated_prepare_json_rebuilds(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")
    stamp = run / "prepared" / "prepare.json"
    stamp.write_text(stamp.read_text()[:100])

    def check(out, err):
        assert json.loads(stamp.read_text())["n_subjects"] == 6

    return _prepare_argv(b.cohort.manifest, run), ["unreadable", "rebuilding"], check


@case(rc=0)
def run_deleted_cube_and_empty_dosage_rebuild(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")
    (run / "prepared" / "cubes" / "00003.npy").unlink()
    (run / "prepared" / "dosage.npy").write_bytes(b"")

    def check(out, err):
        assert "up to date" not in err
        assert np.load(run / "prepared" / "dosage.npy").shape[0] == 6
        assert (run / "prepared" / "cubes" / "00003.npy").is_file()

    return _prepare_argv(b.cohort.manifest, run), ["is missing", "rebuilding"], check


@case(rc=0)
def run_altered_output_rebuilds(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")
    prompts = run / "prepared" / "prompts.jsonl"
    prompts.write_text(prompts.read_text().replace("A", "G"))

    def check(out, err):
        assert _snapshot(run / "prepared")["prompts.jsonl"] == b.snapshot["prepared/prompts.jsonl"]

    return _prepare_argv(b.cohort.manifest, run), ["prompts.jsonl", "rebuilding"], check


@case()
def run_concurrent_prepare_refused(c, b, tmp, mp):
    import fcntl

    run = _copy_run(b, tmp / "run")
    handle = open(run / ".prepare.lock", "a+")  # noqa: SIM115 - released by the check
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.truncate(0)
    handle.write("4242\n")
    handle.flush()

    def check(out, err):
        handle.close()
        assert _snapshot(run) == b.snapshot

    return _prepare_argv(b.cohort.manifest, run, "--force"), ["another `rgenima prepare` (process 4242)"], check


@case()
def run_read_only_folder(c, b, tmp, mp):
    folder = tmp / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make creating the run folder fail as it would
        real_mkdir = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if folder in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        mp.setattr(Path, "mkdir", mkdir)
    else:
        folder.chmod(0o555)
    return _prepare_argv(c.manifest, folder / "run"), ["read-only", "permission denied"], None


@case()
def run_out_is_a_file(c, b, tmp, mp):
    (tmp / "run").write_text("not a folder")
    return _prepare_argv(c.manifest, tmp / "run"), [str(tmp / "run"), "file with this name"], None


@case()
def run_disk_full(c, b, tmp, mp):
    run = _copy_run(b, tmp / "run")

    def save(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    mp.setattr(np, "save", save)

    def check(out, err):
        assert _snapshot(run) == b.snapshot  # the previous cache is intact
        assert not list(run.glob(".prepared.tmp-*"))

    return _prepare_argv(b.cohort.manifest, run, "--force"), ["no space left", "earlier results were kept"], check


@case(rc=130)
def run_interrupted_prepare(c, b, tmp, mp):
    import rgenima.data.cohort as cohort_module

    run = _copy_run(b, tmp / "run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    mp.setattr(cohort_module, "_prepare_mri", interrupted)

    def check(out, err):
        assert _snapshot(run) == b.snapshot
        assert not list(run.glob(".prepared.tmp-*"))

    return _prepare_argv(b.cohort.manifest, run, "--force"), ["interrupted", "rerun"], check


@case(rc=2)
def cli_cube_size_one(c, b, tmp, mp):
    return _prepare(c, b, "--cube-size", "1"), ["--cube-size", "in [2, 128]"], None


@case(rc=2)
def cli_folds_one(c, b, tmp, mp):
    return ["train", "--manifest", c.manifest, "--out", b.run, "--folds", "1"], ["--folds", "at least 2"], None


@case()
def evaluate_untrained_run(c, b, tmp, mp):
    return ["evaluate", "--run", b.run], ["models", "train the models first"], None


@case()
def explain_untrained_run(c, b, tmp, mp):
    return ["explain", "--run", b.run], ["rgenima train"], None


@case()
def enrich_without_attributions(c, b, tmp, mp):
    return ["enrich", "--run", b.run], ["gene_attribution.csv", "explain"], None


@case(rc=2)
def check_privacy_missing_folder(c, b, tmp, mp):
    return ["check-privacy", tmp / "nothing", "--manifest", c.manifest], ["nothing"], None


# -- privacy probes ----------------------------------------------------------------------


def _restricted(c: MinimalCohort) -> MinimalCohort:
    _edit_manifest(c, {"cohort": {"restricted": True}})
    return c


def _site(tmp: Path) -> Path:
    html = tmp / "_build" / "html"
    (html / "_sources").mkdir(parents=True)
    (html / "index.html").write_text("<html><body><p>A clean page.</p></body></html>\n")
    return tmp / "_build"


def _privacy_case(plant: Callable[[Path], Path]):
    """check-privacy on a site with one identifier planted by ``plant`` (returns the file)."""

    def damage(c, b, tmp, mp):
        _restricted(c)
        site = _site(tmp)
        path = plant(site / "html")

        def check(out, err):
            assert PTID not in out + err  # the report itself masks it
            assert MASKED in out or "#" in out

        return ["check-privacy", site, "--manifest", c.manifest], [path.name, "restricted"], check

    damage.__name__ = plant.__name__
    return damage


def _png_with_text(html: Path) -> Path:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Description", f"scan of {PTID}")
    path = html / "_images" / "figure.png"
    path.parent.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path, "PNG", pnginfo=info)
    return path


def _executed_notebook_in_sources(html: Path) -> Path:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "source": "subjects.head()",
                "metadata": {},
                "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": [f"0  {PTID}  NC\n"]}],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = html / "_sources" / "01_cohort.ipynb"
    path.write_text(json.dumps(notebook, indent=1))
    return path


def _utf16_file(html: Path) -> Path:
    path = html / "subjects.csv"
    path.write_bytes(f"PTID,stage\n{PTID},NC\n".encode("utf-16"))
    return path


def _gzip_file(html: Path) -> Path:
    path = html / "searchindex.js.gz"
    path.write_bytes(gzip.compress(f'Search.setIndex({{"terms": {{"{PTID}": [1]}}}})'.encode()))
    return path


def _base64_data_uri(html: Path) -> Path:
    payload = base64.b64encode(f"<svg><text>{PTID}</text></svg>".encode()).decode()
    path = html / "figure.html"
    path.write_text(f'<html><img src="data:image/svg+xml;base64,{payload}"></html>\n')
    return path


def _text_variant(name: str, written: str):
    def plant(html: Path) -> Path:
        path = html / f"{name}.html"
        path.write_text(f"<html><body><p>subject {written} at baseline</p></body></html>\n")
        return path

    plant.__name__ = f"privacy_{name}"
    return plant


for _plant in (_png_with_text, _executed_notebook_in_sources, _utf16_file, _gzip_file, _base64_data_uri):
    _plant.__name__ = "privacy" + _plant.__name__
    case()(_privacy_case(_plant))
for _name, _written in (
    ("zero_padded", "991_S_09001"),
    ("spaces", "991 S 9001"),
    ("url_escaped", "991%5FS%5F9001"),
    ("html_entity", "991&#95;S&#95;9001"),
    ("bids_label", "sub-ADNI991S9001"),
):
    case()(_privacy_case(_text_variant(_name, _written)))


@case()
def restricted_prepare_error_masks_ptid(c, b, tmp, mp):
    _restricted(c)
    table = _clinical(c)
    _write_clinical(c, pd.concat([table, table.iloc[[0]]], ignore_index=True))

    def check(out, err):
        assert PTID not in out + err and MASKED in err

    return _prepare(c, b), ["ADNIMERGE.csv", "lines 2, 20"], check


@case()
def restricted_run_failure_masks_ptid(c, b, tmp, mp):
    import logging

    import rgenima.book
    from rgenima.errors import DataContractError

    _restricted(c)

    def failing_run_study(manifest, parameters=None, root=None, **kwargs):
        logging.getLogger("rgenima.book").warning("executing 02_preparation for sub-ADNI991S9001")
        raise DataContractError(f"notebook 02_preparation failed: KeyError: '{PTID}'")

    mp.setattr(rgenima.book, "run_study", failing_run_study)

    def check(out, err):
        assert PTID not in out + err and "991S9001" not in out + err
        assert MASKED in err.splitlines()[-1]

    return ["run", "--manifest", c.manifest], ["rgenima run: notebook 02_preparation failed"], check


# ----------------------------------------------------------------------------------
# The tests


def _run(argv: list) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: a bad command line
        return exc.code


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert sum(rc != 0 for rc, _ in CASES.values()) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, base, tmp_path, capsys, monkeypatch):
    rc_expected, damage = CASES[name]
    cohort = _copy_cohort(base.cohort, tmp_path / "cohort")
    argv, fragments, check = damage(cohort, base, tmp_path, monkeypatch)
    capsys.readouterr()
    rc = _run(argv)
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert rc == rc_expected, (rc, out, err)
    if rc_expected != 0:
        # One message for the failure, prefixed by the command.
        errors = [line for line in err.splitlines() if line.startswith("rgenima ")]
        assert len(errors) == 1, err
        assert err.rstrip().splitlines()[-1] == errors[0], err  # the last word, on one line
    for fragment in fragments:
        assert fragment in out + err, (fragment, out, err)
    if check is not None:
        check(out, err)
    assert _snapshot(base.run) == base.snapshot, f"{name} changed the prepared run"


def test_debug_shows_the_traceback(base, tmp_path, capsys):
    cohort = _copy_cohort(base.cohort, tmp_path / "cohort")
    cohort.clinical.write_text(cohort.clinical.read_text().splitlines()[0] + "\n")
    argv = _prepare_argv(cohort.manifest, base.run)
    assert _run(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "DataContractError" in err
    assert err.rstrip().splitlines()[-1].startswith("rgenima prepare: ")
    assert _run([*argv, "--debug"]) == 1  # after the command too
    assert "Traceback" in capsys.readouterr().err
    assert _snapshot(base.run) == base.snapshot


def test_a_failed_cell_is_described_by_notebook_cell_and_last_line(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from rgenima.book import _add_context
    from rgenima.cli import describe_run_failure

    executed = tmp_path / "03_training.ipynb"
    executed.write_text("{}")
    exc = PapermillExecutionError(4, 7, "train()", "ValueError", "line one\nno fold left", [])
    _add_context(exc, notebook="03_training", executed=executed, run_log=tmp_path / "run.log")
    message = describe_run_failure(exc)
    assert message.startswith("notebook 03_training.ipynb, cell 7 failed: ValueError: no fold left.")
    assert "the executed notebook with the full traceback" in message and "full log" in message
    assert "Rerun the same command to resume" in message
