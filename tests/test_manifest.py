"""Tests of rgenima.data.manifest: parsing, field checks, checksums."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from minimal_cohort import default_manifest, merge, write_manifest, write_minimal_cohort

from rgenima.data.manifest import (
    BUILTIN_GENE_PANEL,
    Manifest,
    builtin_gene_panel_path,
    load_manifest,
    sha256_file,
    verify_checksums,
)
from rgenima.errors import DataContractError, ManifestError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, overrides: dict) -> Path:
    return write_manifest(tmp_path / "data_manifest.yaml", merge(default_manifest(), overrides))


def test_load_manifest_resolves_paths_against_manifest_folder(tmp_path):
    path = _write(tmp_path, {})
    manifest = load_manifest(path)
    assert isinstance(manifest, Manifest)
    assert manifest.path == path.resolve()
    assert manifest.root == tmp_path.resolve()
    assert manifest.cohort.name == "minimal"
    assert manifest.cohort.restricted is False
    assert manifest.cohort.clinical == tmp_path.resolve() / "data" / "ADNIMERGE.csv"
    assert manifest.cohort.mri.mode == "bids"
    assert manifest.cohort.mri.bids_root == tmp_path.resolve() / "data" / "bids"
    assert manifest.cohort.mri.pattern is None
    assert manifest.cohort.genotypes == tmp_path.resolve() / "data" / "genotypes" / "cohort"
    assert manifest.atlas.name == "atlas"
    assert not manifest.atlas.is_builtin
    assert manifest.gene_panel == tmp_path.resolve() / "data" / "gene_panel.tsv"
    assert manifest.gene_panel_builtin is False
    assert manifest.snp_gene_window_kb == 10.0
    assert (manifest.qc.min_call_rate, manifest.qc.min_maf, manifest.qc.hwe_p) == (
        0.95,
        0.01,
        1e-6,
    )
    assert manifest.checksums == {}


def test_load_manifest_does_not_require_data_files(tmp_path):
    # Nothing but the manifest exists: loading still works (validate reports it).
    manifest = load_manifest(_write(tmp_path, {}))
    assert not manifest.cohort.clinical.exists()


def test_manifest_is_frozen(tmp_path):
    manifest = load_manifest(_write(tmp_path, {}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.cohort = None  # type: ignore[misc]


def test_manifest_to_dict_is_json(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"checksums": {"a.csv": "0" * 64}}))
    out = json.loads(json.dumps(manifest.to_dict()))
    assert out["cohort"]["clinical"] == str(tmp_path.resolve() / "data" / "ADNIMERGE.csv")
    assert out["cohort"]["mri"] == {"bids_root": str(tmp_path.resolve() / "data" / "bids")}
    assert out["atlas"]["builtin"] is False
    assert out["qc"]["hwe_p"] == 1e-6
    assert out["checksums"] == {"a.csv": "0" * 64}


def test_defaults_for_optional_fields(tmp_path):
    content = {"cohort": default_manifest()["cohort"]}
    manifest = load_manifest(write_manifest(tmp_path / "m.yaml", content))
    assert manifest.atlas.name == "aal2" and manifest.atlas.is_builtin
    assert manifest.gene_panel_builtin
    assert manifest.snp_gene_window_kb == 10.0
    assert manifest.qc.min_maf == 0.01


def test_builtin_gene_panel_resolves_to_package_resources(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"gene_panel": "builtin"}))
    assert manifest.gene_panel_builtin
    assert manifest.gene_panel == builtin_gene_panel_path()
    assert manifest.gene_panel.name == BUILTIN_GENE_PANEL
    assert manifest.gene_panel.parent == REPO / "rgenima" / "resources"


def test_repository_default_manifest_points_at_synthetic_cohort():
    manifest = load_manifest(REPO / "data_manifest.yaml")
    assert manifest.cohort.name == "synthetic"
    assert manifest.cohort.restricted is False
    assert manifest.cohort.clinical == REPO / "data" / "synthetic" / "ADNIMERGE.csv"
    assert manifest.cohort.mri.bids_root == REPO / "data" / "synthetic" / "bids"
    assert manifest.cohort.genotypes == REPO / "data" / "synthetic" / "genotypes" / "cohort"
    assert manifest.atlas.name == "aal2"
    assert manifest.gene_panel_builtin
    assert manifest.checksums == {}


def test_adni_example_manifest_loads_and_is_restricted():
    manifest = load_manifest(REPO / "manifests" / "adni.example.yaml")
    assert manifest.cohort.restricted is True
    assert manifest.cohort.clinical.name.startswith("ADNIMERGE_")
    assert manifest.cohort.mri.mode == "bids"


def test_pattern_mode_keeps_placeholders(tmp_path):
    path = _write(tmp_path, {"cohort": {"mri": {"bids_root": None, "pattern": "mri/{ptid}_gm.nii.gz"}}})
    mri = load_manifest(path).cohort.mri
    assert mri.mode == "pattern"
    assert mri.bids_root is None
    assert mri.pattern == str(tmp_path.resolve() / "mri" / "{ptid}_gm.nii.gz")


def test_dated_clinical_file_name_is_accepted(tmp_path):
    path = _write(tmp_path, {"cohort": {"clinical": "clin/ADNIMERGE_27Nov2026.csv"}})
    assert load_manifest(path).cohort.clinical.name == "ADNIMERGE_27Nov2026.csv"


def test_hwe_p_written_without_dot_is_a_number(tmp_path):
    # PyYAML reads 1e-6 (no dot) as a string; the manifest accepts it.
    path = tmp_path / "m.yaml"
    text = _write(tmp_path, {}).read_text()
    path.write_text(text.replace("hwe_p: 1.0e-06", "hwe_p: 1e-6"))
    assert "1e-6" in path.read_text()
    assert load_manifest(path).qc.hwe_p == 1e-6


# --- errors -----------------------------------------------------------------


def test_manifest_error_is_a_data_contract_error():
    assert issubclass(ManifestError, DataContractError)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match=r"nope\.yaml: manifest file not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("cohort: [unclosed\n")
    with pytest.raises(ManifestError, match=r"m\.yaml: not valid YAML"):
        load_manifest(path)


def test_top_level_must_be_mapping(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ManifestError, match=r"m\.yaml: expected a YAML mapping .* got list"):
        load_manifest(path)


def test_unknown_top_level_key_with_hint(tmp_path):
    path = _write(tmp_path, {"atlass": "aal2"})
    with pytest.raises(
        ManifestError,
        match=r"data_manifest\.yaml: unknown field 'atlass' at the top level; allowed: .*"
        r"Did you mean 'atlas'\?",
    ):
        load_manifest(path)


def test_unknown_nested_key(tmp_path):
    path = _write(tmp_path, {"qc": {"min_mafs": 0.01}})
    with pytest.raises(ManifestError, match=r"unknown field 'qc\.min_mafs' in 'qc'"):
        load_manifest(path)


def test_missing_cohort(tmp_path):
    path = write_manifest(tmp_path / "m.yaml", {"atlas": "aal2"})
    with pytest.raises(ManifestError, match=r"m\.yaml: missing required field 'cohort'\."):
        load_manifest(path)


def test_missing_cohort_clinical(tmp_path):
    path = _write(tmp_path, {"cohort": {"clinical": None}})
    with pytest.raises(ManifestError, match=r"missing required field 'cohort\.clinical'\."):
        load_manifest(path)


def test_mri_both_bids_root_and_pattern(tmp_path):
    path = _write(tmp_path, {"cohort": {"mri": {"pattern": "{ptid}.nii.gz"}}})
    with pytest.raises(
        ManifestError,
        match=r"field 'cohort\.mri' must set exactly one of 'bids_root' or 'pattern'; "
        r"got 'bids_root', 'pattern'\.",
    ):
        load_manifest(path)


def test_mri_neither_bids_root_nor_pattern(tmp_path):
    path = _write(tmp_path, {"cohort": {"mri": {"bids_root": None}}})
    with pytest.raises(ManifestError, match=r"exactly one of 'bids_root' or 'pattern'; got neither"):
        load_manifest(path)


def test_pattern_without_placeholder(tmp_path):
    path = _write(tmp_path, {"cohort": {"mri": {"bids_root": None, "pattern": "mri/*.nii.gz"}}})
    with pytest.raises(
        ManifestError,
        match=r"field 'cohort\.mri\.pattern' must contain a \{ptid\} or \{participant\} "
        r"placeholder; got 'mri/\*\.nii\.gz'\.",
    ):
        load_manifest(path)


def test_pattern_with_unknown_placeholder(tmp_path):
    path = _write(tmp_path, {"cohort": {"mri": {"bids_root": None, "pattern": "{subject}.nii"}}})
    with pytest.raises(ManifestError, match=r"may only use the placeholders .* with \{subject\}"):
        load_manifest(path)


def test_unknown_atlas_name(tmp_path):
    path = _write(tmp_path, {"atlas": "aal3"})
    with pytest.raises(
        ManifestError,
        match=r"field 'atlas' must be one of 'aal2', 'desikan_killiany' or a mapping .*"
        r"got 'aal3'\. Did you mean 'aal2'\?",
    ):
        load_manifest(path)


def test_user_atlas_needs_labels(tmp_path):
    path = _write(tmp_path, {"atlas": {"labels": None}})
    with pytest.raises(ManifestError, match=r"missing required field 'atlas\.labels'"):
        load_manifest(path)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("min_maf", "abc", r"field 'qc\.min_maf' must be a number in \[0, 0\.5\]; got 'abc'\."),
        ("min_maf", 0.7, r"field 'qc\.min_maf' must be a number in \[0, 0\.5\]; got 0\.7\."),
        ("min_call_rate", 1.5, r"field 'qc\.min_call_rate' must be a number in \[0, 1\]; got 1\.5\."),
        ("hwe_p", True, r"field 'qc\.hwe_p' must be a number in \[0, 1\]; got True\."),
        ("hwe_p", -1e-6, r"field 'qc\.hwe_p' must be a number in \[0, 1\]"),
    ],
)
def test_qc_numbers_in_range(tmp_path, field, value, expected):
    path = _write(tmp_path, {"qc": {field: value}})
    with pytest.raises(ManifestError, match=r"data_manifest\.yaml: " + expected):
        load_manifest(path)


def test_window_must_be_non_negative(tmp_path):
    path = _write(tmp_path, {"snp_gene_window_kb": -5})
    with pytest.raises(ManifestError, match=r"field 'snp_gene_window_kb' must be a number in \[0, 10000\]; got -5\."):
        load_manifest(path)


def test_restricted_must_be_boolean(tmp_path):
    path = _write(tmp_path, {"cohort": {"restricted": "yes please"}})
    with pytest.raises(ManifestError, match=r"field 'cohort\.restricted' must be true or false"):
        load_manifest(path)


def test_path_field_must_be_string(tmp_path):
    path = _write(tmp_path, {"cohort": {"genotypes": 42}})
    with pytest.raises(ManifestError, match=r"field 'cohort\.genotypes' must be a file path \(string\); got 42\."):
        load_manifest(path)


def test_checksum_must_be_sha256_hex(tmp_path):
    path = _write(tmp_path, {"checksums": {"data/ADNIMERGE.csv": "abc123"}})
    with pytest.raises(
        ManifestError,
        match=r"field 'checksums\.data/ADNIMERGE\.csv' must be a sha256 hex digest .* got 'abc123'",
    ):
        load_manifest(path)


# --- checksums ---------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"rgenima" * 1000)
    assert sha256_file(path, chunk_size=7) == hashlib.sha256(b"rgenima" * 1000).hexdigest()


def test_verify_checksums_passes(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    digest = sha256_file(cohort.clinical)
    path = _write(tmp_path, {"checksums": {"data/ADNIMERGE.csv": digest.upper()}})
    assert verify_checksums(load_manifest(path)) == ["data/ADNIMERGE.csv"]


def test_verify_checksums_without_checksums(tmp_path):
    assert verify_checksums(load_manifest(_write(tmp_path, {}))) == []


def test_checksum_mismatch_names_file_and_both_digests(tmp_path):
    cohort = write_minimal_cohort(tmp_path)
    actual = sha256_file(cohort.clinical)
    wrong = "0" * 64
    manifest = load_manifest(_write(tmp_path, {"checksums": {"data/ADNIMERGE.csv": wrong}}))
    with pytest.raises(
        ManifestError,
        match=rf"ADNIMERGE\.csv: sha256 checksum mismatch: .* expects {wrong}, the file has {actual}\.",
    ):
        verify_checksums(manifest)


def test_checksum_of_missing_file(tmp_path):
    manifest = load_manifest(_write(tmp_path, {"checksums": {"data/gone.csv": "1" * 64}}))
    with pytest.raises(
        ManifestError, match=r"field 'checksums' lists 'data/gone\.csv', but the file .*gone\.csv does not exist"
    ):
        verify_checksums(manifest)
