"""Tests of rgenima.data.plink: header-level checks of a PLINK 1 fileset."""

from __future__ import annotations

from pathlib import Path

import pytest
from minimal_cohort import write_plink

from rgenima.data.plink import (
    PlinkShape,
    check_plink_fileset,
    expected_bed_size,
    plink_paths,
    read_fam_iids,
)
from rgenima.errors import DataContractError

IIDS = ["991_S_9001", "991_S_9002", "992_S_9003", "992_S_9004", "993_S_9005"]  # 5 -> 2 bytes/SNP


@pytest.fixture
def prefix(tmp_path) -> Path:
    return write_plink(tmp_path / "geno" / "cohort", IIDS, n_snps=10)


def _path(prefix: Path, ext: str) -> Path:
    return Path(f"{prefix}.{ext}")


def test_expected_bed_size():
    assert expected_bed_size(5, 10) == 3 + 10 * 2
    assert expected_bed_size(4, 10) == 3 + 10 * 1
    assert expected_bed_size(1, 1) == 4


def test_check_plink_fileset_valid(prefix):
    shape = check_plink_fileset(prefix)
    assert shape == PlinkShape(n_samples=5, n_snps=10)
    assert _path(prefix, "bed").stat().st_size == expected_bed_size(5, 10)


def test_prefix_may_end_in_bed(prefix):
    assert check_plink_fileset(f"{prefix}.bed") == (5, 10)


def test_plink_paths_keep_dots_in_prefix():
    paths = plink_paths("/data/ADNI_1.v2")
    assert paths["bed"] == Path("/data/ADNI_1.v2.bed")
    assert paths["fam"] == Path("/data/ADNI_1.v2.fam")


def test_read_fam_iids(prefix):
    assert read_fam_iids(prefix) == IIDS


@pytest.mark.parametrize("ext", ["bed", "bim", "fam"])
def test_missing_file_is_named(prefix, ext):
    _path(prefix, ext).unlink()
    with pytest.raises(
        DataContractError,
        match=rf"PLINK fileset .*cohort \(cohort\.genotypes\) is incomplete: missing .*cohort\.{ext}\.",
    ):
        check_plink_fileset(prefix)


def test_truncated_bed(prefix):
    bed = _path(prefix, "bed")
    bed.write_bytes(bed.read_bytes()[:-5])
    with pytest.raises(
        DataContractError,
        match=r"cohort\.bed: size is 18 bytes but cohort\.bim lists 10 SNPs and cohort\.fam lists "
        r"5 samples, so it should be 3 \+ 10 \* ceil\(5 / 4\) = 23 bytes \(truncated\)\.",
    ):
        check_plink_fileset(prefix)


def test_bim_fam_count_mismatch(prefix):
    fam = _path(prefix, "fam")
    # Three more samples: ceil(8 / 4) = 2 bytes per SNP, still 23 bytes. Four more
    # make 3 bytes per SNP and the .bed no longer fits.
    extra = "".join(f"994_S_900{i} 994_S_900{i} 0 0 0 -9\n" for i in range(4))
    fam.write_text(fam.read_text() + extra)
    with pytest.raises(
        DataContractError,
        match=r"cohort\.bed: size is 23 bytes but cohort\.bim lists 10 SNPs and cohort\.fam lists "
        r"9 samples, so it should be .* = 33 bytes \(truncated\)\. The \.bed is incomplete "
        r"or the \.bim/\.fam belong to another fileset\.",
    ):
        check_plink_fileset(prefix)


def test_bim_with_extra_snps(prefix):
    bim = _path(prefix, "bim")
    bim.write_text(bim.read_text() + "19\trs9999\t0\t45500000\tA\tG\n")
    with pytest.raises(DataContractError, match=r"cohort\.bim lists 11 SNPs .* = 25 bytes \(truncated\)"):
        check_plink_fileset(prefix)


def test_bed_too_large(prefix):
    bed = _path(prefix, "bed")
    bed.write_bytes(bed.read_bytes() + b"\x00\x00")
    with pytest.raises(DataContractError, match=r"size is 25 bytes .* = 23 bytes \(too large\)"):
        check_plink_fileset(prefix)


def test_bad_magic_bytes(prefix):
    bed = _path(prefix, "bed")
    bed.write_bytes(b"PK" + bed.read_bytes()[2:])
    with pytest.raises(
        DataContractError,
        match=r"cohort\.bed: not a PLINK 1 \.bed file: expected magic bytes 0x6c 0x1b, got 0x50 0x4b\.",
    ):
        check_plink_fileset(prefix)


def test_sample_major_bed(prefix):
    bed = _path(prefix, "bed")
    data = bytearray(bed.read_bytes())
    data[2] = 0x00
    bed.write_bytes(bytes(data))
    with pytest.raises(DataContractError, match=r"cohort\.bed: expected SNP-major mode byte 0x01 .* got 0x00\."):
        check_plink_fileset(prefix)


def test_empty_bed(prefix):
    _path(prefix, "bed").write_bytes(b"")
    with pytest.raises(DataContractError, match=r"expected magic bytes 0x6c 0x1b, got nothing \(file too short\)"):
        check_plink_fileset(prefix)


def test_fam_line_with_wrong_column_count(prefix):
    fam = _path(prefix, "fam")
    lines = fam.read_text().splitlines()
    lines[2] = "992_S_9003 992_S_9003 0 0 0"
    fam.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataContractError,
        match=r"cohort\.fam, line 3: expected 6 whitespace-separated columns \(FID IID father "
        r"mother sex phenotype\); found 5\.",
    ):
        check_plink_fileset(prefix)


def test_bim_position_not_integer(prefix):
    bim = _path(prefix, "bim")
    lines = bim.read_text().splitlines()
    lines[6] = "19\trs1006\t0\t45.4e6\tA\tG"
    bim.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataContractError,
        match=r"cohort\.bim, line 7: column 4 \(base-pair position\) must be an integer; got '45\.4e6'\.",
    ):
        check_plink_fileset(prefix)


def test_bim_line_with_wrong_column_count(prefix):
    bim = _path(prefix, "bim")
    bim.write_text("19 rs1 0 100 A\n" + bim.read_text())
    with pytest.raises(DataContractError, match=r"cohort\.bim, line 1: expected 6 whitespace-separated columns"):
        check_plink_fileset(prefix)


def test_blank_line_inside_fam(prefix):
    fam = _path(prefix, "fam")
    lines = fam.read_text().splitlines()
    fam.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    with pytest.raises(DataContractError, match=r"cohort\.fam, line 3: empty line inside the file\."):
        check_plink_fileset(prefix)


def test_trailing_blank_lines_are_fine(prefix):
    fam = _path(prefix, "fam")
    fam.write_text(fam.read_text() + "\n\n")
    assert check_plink_fileset(prefix) == (5, 10)


def test_empty_fam(prefix):
    _path(prefix, "fam").write_text("")
    with pytest.raises(DataContractError, match=r"cohort\.fam: no samples \(the file is empty\)\."):
        check_plink_fileset(prefix)


def test_read_fam_iids_missing_file(tmp_path):
    with pytest.raises(DataContractError, match=r"PLINK \.fam file not found: .*nothing\.fam"):
        read_fam_iids(tmp_path / "nothing")
