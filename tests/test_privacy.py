"""Tests of rgenima.privacy and the ``rgenima check-privacy`` command.

The cohort is the shared synthetic ``small_cohort`` (PTIDs ``99x_S_90yy``, RID = the
subject number, e.g. ``990_S_9000`` / RID 9000) with a manifest marked restricted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from rgenima.cli import main
from rgenima.data.plink import read_fam_iids
from rgenima.errors import DataContractError, PrivacyError
from rgenima.privacy import (
    IdentifierSet,
    assert_publishable,
    check_figure_for_identifiers,
    check_table_for_identifiers,
    cohort_identifiers,
    list_build_files,
    scan_directory,
    scan_text,
)

PTID = "990_S_9000"  # first subject of the synthetic cohort; its RID is 9000


def _manifest(folder: Path, cohort: Path, restricted: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.yaml"
    content = {
        "cohort": {
            "name": "adni-like" if restricted else "synthetic-small",
            "restricted": restricted,
            "clinical": str(cohort / "ADNIMERGE.csv"),
            "mri": {"bids_root": str(cohort / "bids")},
            "genotypes": str(cohort / "genotypes" / "cohort"),
        },
        "atlas": "aal2",
        "gene_panel": "builtin",
    }
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def restricted_manifest(small_cohort, tmp_path_factory) -> Path:
    return _manifest(tmp_path_factory.mktemp("restricted"), small_cohort, True)


@pytest.fixture(scope="module")
def open_manifest(small_cohort, tmp_path_factory) -> Path:
    return _manifest(tmp_path_factory.mktemp("open"), small_cohort, False)


@pytest.fixture(scope="module")
def ids(restricted_manifest) -> IdentifierSet:
    return cohort_identifiers(restricted_manifest)


@pytest.fixture(scope="module")
def open_ids(open_manifest) -> IdentifierSet:
    return cohort_identifiers(open_manifest)


def _book(root: Path) -> Path:
    """A fake built book without identifiers, full of numbers equal to RIDs."""
    html = root / "_build" / "html"
    (html / "_images").mkdir(parents=True)
    (html / "_static").mkdir()
    (html / "index.html").write_text(
        "<html><body>\n"
        "<h1>Results</h1>\n"
        "<p>We ran 9000 permutations; n = 9001 subjects, p = 0.9002, in 2009.</p>\n"
        "<p>The RID column of ADNIMERGE is dropped; a grid 9003 wide.</p>\n"
        "</body></html>\n"
    )
    (html / "chapter.html").write_text(
        "<html>\n<body>\n<p>Placeholder</p>\n<table><tr><td>NC</td><td>9004</td></tr></table>\n</body>\n</html>\n"
    )
    (html / "_static" / "metrics.json").write_text(
        json.dumps({"n_subjects": 40, "n_permutations": 9000, "seed": 9005}, indent=1)
    )
    (html / "_images" / "figure.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg">\n<text x="1" y="2">NC</text>\n<text x="3" y="4">9006</text>\n</svg>\n'
    )
    (html / "searchindex.js").write_text('Search.setIndex({"terms": {"9000": [1], "permut": [0]}})')
    _png(html / "_images" / "figure.png", {"Software": "matplotlib 9000"})
    return html


def _png(path: Path, texts: dict[str, str]) -> Path:
    """A 4 x 4 PNG with the given text chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path, "PNG", pnginfo=info)
    return path


def _plant(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(line - 1, text + "\n")
    path.write_text("".join(lines))


# ---------------------------------------------------------------------------
# Identifiers


def test_cohort_identifiers_collects_ptids_iids_and_rids(ids, small_cohort):
    clinical = pd.read_csv(small_cohort / "ADNIMERGE.csv", dtype=str)
    assert set(clinical["PTID"]) <= ids.ptids
    assert set(read_fam_iids(small_cohort / "genotypes" / "cohort")) <= ids.ptids
    assert {int(r) for r in clinical["RID"]} <= ids.rids
    assert PTID in ids.ptids and 9000 in ids.rids
    assert ids.restricted is True and ids.cohort == "adni-like"


def test_identifier_set_repr_shows_no_identifiers(ids):
    assert PTID not in repr(ids) and "9000" not in repr(ids)
    assert "restricted=True" in repr(ids)


def test_cohort_identifiers_missing_clinical_table(tmp_path, small_cohort):
    path = _manifest(tmp_path, small_cohort, True)
    path.write_text(path.read_text().replace("ADNIMERGE.csv", "missing.csv"))
    with pytest.raises(DataContractError, match="clinical table not found"):
        cohort_identifiers(path)


# ---------------------------------------------------------------------------
# Text rules


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"subject {PTID} at baseline", (PTID, "ptid")),
        ("subject 990-S-9000.", (PTID, "ptid")),
        ("(990s9000)", (PTID, "ptid")),
        ("file fig_990_S_9000.png", (PTID, "ptid")),
        ("sub-ADNI990S9000", (PTID, "bids")),
        ("sub-ADNI990S9000_ses-M000_T1w.nii.gz", (PTID, "bids")),
        ("participant ADNI990S9000", (PTID, "bids")),
        ("RID 9000", ("RID 9000", "rid")),
        ("RID=9000", ("RID 9000", "rid")),
        ("rid: 9000", ("RID 9000", "rid")),
        ('{"RID": 9000}', ("RID 9000", "rid")),
        ('{"RID": "09000"}', ("RID 9000", "rid")),
        ("&quot;RID&quot;: 9000", ("RID 9000", "rid")),
        ("<td>RID</td><td>9000</td>", ("RID 9000", "rid")),
        ("RID_9000", ("RID 9000", "rid")),
    ],
)
def test_scan_text_flags(ids, text, expected):
    findings = scan_text(text, ids)
    assert [(f.identifier, f.kind) for f in findings] == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "We ran 9000 permutations.",
        "n = 9001 subjects",
        "p = 0.9002, year 2009, 9000-9010",
        "a grid 9000 wide; RIDE 9000",
        "1990_S_9000 and 990_S_90001 and 990_S_9000x",
        "RID 123456",  # a RID, but not one of this cohort
        "123_S_4567 and sub-ADNI123S4567",  # PTID shape, other cohort
    ],
)
def test_scan_text_ignores_ordinary_numbers(ids, text):
    assert scan_text(text, ids) == []


def test_scan_text_other_identifier_shapes():
    ids = IdentifierSet(ptids=frozenset({"SUBJ_A1", "1234"}), cohort="x")
    found = [(f.identifier, f.match) for f in scan_text("SUBJ_A1, subj_a12, sub-ADNISUBJA1, 1234, RID 1234", ids)]
    assert found == [("SUBJ_A1", "SUBJ_A1"), ("SUBJ_A1", "sub-ADNISUBJA1"), ("RID 1234", "RID 1234")]


def test_scan_is_fast_for_2000_subjects_and_100_files(tmp_path):
    ptids = frozenset(f"{990 + i % 10:03d}_S_{9000 + i:04d}" for i in range(2000))
    ids = IdentifierSet(ptids=ptids, rids=frozenset(range(9000, 11000)), cohort="big")
    page = "<p>We ran 9000 permutations, n = 9001, p = 0.9002, 123_S_4567.</p>\n" * 400
    for i in range(100):
        (tmp_path / f"page{i}.html").write_text(page)
    (tmp_path / "page42.html").write_text(page + "<td>999_S_10999</td>\n")
    start = time.perf_counter()
    findings = scan_directory(tmp_path, ids)
    assert time.perf_counter() - start < 10
    assert [(f.file.name, f.line, f.identifier) for f in findings] == [("page42.html", 401, "999_S_10999")]


# ---------------------------------------------------------------------------
# Built book


def test_clean_book_has_no_findings(tmp_path, ids):
    html = _book(tmp_path)
    files, partial = list_build_files(html)
    assert len(files) == 6 and partial == []  # the PNG is read too (its text chunks)
    assert scan_directory(html, ids) == []


def test_planted_ptid_found_with_file_and_line(tmp_path, ids):
    html = _book(tmp_path)
    _plant(html / "chapter.html", 3, f"<p>outlier: {PTID}</p>")
    findings = scan_directory(html, ids)
    assert len(findings) == 1
    finding = findings[0]
    assert finding.file == html / "chapter.html"
    assert finding.line == 3
    assert finding.identifier == PTID and finding.kind == "ptid"
    assert "outlier" in finding.context
    assert str(finding) == f"{html / 'chapter.html'}:3: {PTID}"


def test_planted_bids_label_and_svg_found(tmp_path, ids):
    html = _book(tmp_path)
    _plant(html / "index.html", 2, '<img src="_images/sub-ADNI991S9001_ses-M000_T1w.png">')
    _plant(html / "_images" / "figure.svg", 3, '<text x="5" y="6">992_S_9002</text>')
    findings = scan_directory(html, ids)
    assert [(f.file.name, f.line, f.identifier, f.kind) for f in findings] == [
        ("figure.svg", 3, "992_S_9002", "ptid"),
        ("index.html", 2, "991_S_9001", "bids"),
    ]


def test_rid_flagged_only_in_context(tmp_path, ids):
    html = _book(tmp_path)
    _plant(html / "index.html", 4, "<p>excluded: RID 9000</p>")
    findings = scan_directory(html, ids)
    assert [(f.file.name, f.line, f.identifier) for f in findings] == [("index.html", 4, "RID 9000")]


def test_rid_in_json_found(tmp_path, ids):
    html = _book(tmp_path)
    (html / "_static" / "report.json").write_text(json.dumps([{"RID": 9003, "n": 9001}], indent=1))
    findings = scan_directory(html, ids)
    assert [(f.file.name, f.line, f.identifier) for f in findings] == [("report.json", 3, "RID 9003")]


# ---------------------------------------------------------------------------
# Objects before publishing


def test_assert_publishable_table_with_ptid_column(ids):
    table = pd.DataFrame({"PTID": [PTID, "991_S_9001"], "stage": ["MCI", "NC"], "AGE": [70.1, 65.0]})
    with pytest.raises(PrivacyError, match=r"Table 2: .*column 'PTID', 2 row\(s\)") as info:
        assert_publishable(table, ids, "Table 2")
    assert PTID not in str(info.value)  # the message may end up in a notebook's output
    assert {f.identifier for f in info.value.findings} == {PTID, "991_S_9001"}


def test_assert_publishable_unrestricted_cohort_is_a_no_op(open_ids):
    table = pd.DataFrame({"PTID": [PTID], "stage": ["MCI"]})
    assert open_ids.restricted is False
    assert assert_publishable(table, open_ids, "Table 2") is table
    assert len(check_table_for_identifiers(table, open_ids)) == 1  # detection still works


def test_assert_publishable_clean_table_returns_it(ids):
    table = pd.DataFrame(
        {"stage": ["NC", "MCI"], "n": [9000, 9001], "p": [0.9002, 0.01]},
        index=pd.Index([2009, 2010], name="year"),
    )
    assert assert_publishable(table, ids, "Table 3") is table


def test_rid_column_and_ptid_index_are_found(ids):
    table = pd.DataFrame({"RID": [9000, 12], "n": [9001, 9002]}, index=pd.Index([PTID, "x"], name="PTID"))
    found = check_table_for_identifiers(table, ids)
    assert [(f.where, f.row, f.identifier) for f in found] == [
        ("index 'PTID'", 0, PTID),
        ("column 'RID'", 0, "RID 9000"),
    ]
    wide = pd.DataFrame(np.zeros((1, 2)), columns=["NC", PTID])
    with pytest.raises(PrivacyError, match=r"column name 1: ptid such as '###_S_####'"):
        assert_publishable(wide, ids, "wide table")


def test_assert_publishable_figure_with_ptid_tick_label(ids):
    fig = Figure()
    ax = fig.add_subplot()
    ax.bar([0, 1], [3.0, 2.0])
    ax.set_xticks([0, 1], ["NC", PTID])
    ax.set_title("9000 permutations")
    with pytest.raises(PrivacyError, match=r"Figure 3: .*axes 0 x tick label"):
        assert_publishable(fig, ids, "Figure 3")


def test_figure_categorical_axis_and_legend(ids):
    fig = Figure()
    ax = fig.add_subplot()
    ax.bar(["991_S_9001", "NC"], [1.0, 2.0])
    ax.plot([0, 1], [1, 2], label="RID 9002")
    ax.legend()
    found = {(f.where, f.identifier) for f in check_figure_for_identifiers(fig, ids)}
    assert ("axes 0 x tick label", "991_S_9001") in found
    assert ("axes 0 legend", "RID 9002") in found
    clean = Figure()
    clean.add_subplot().plot([9000, 9001], label="n = 9000")
    assert assert_publishable(clean, ids, "clean figure") is clean


def test_assert_publishable_text_and_report(ids):
    assert assert_publishable({"n_permutations": 9000}, ids, "report") == {"n_permutations": 9000}
    with pytest.raises(PrivacyError, match="report"):
        assert_publishable({"excluded": [{"RID": 9000}]}, ids, "report")
    with pytest.raises(PrivacyError, match="caption"):
        assert_publishable(f"Subject {PTID}", ids, "caption")
    with pytest.raises(TypeError, match="cannot check an object of type"):
        assert_publishable(object(), ids, "thing")


# ---------------------------------------------------------------------------
# CLI


def test_cli_check_privacy_clean(tmp_path, restricted_manifest, capsys):
    html = _book(tmp_path)
    assert main(["check-privacy", str(html), "--manifest", str(restricted_manifest)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("no identifiers found in 6 files")


def test_cli_check_privacy_findings(tmp_path, restricted_manifest, capsys):
    html = _book(tmp_path)
    _plant(html / "chapter.html", 3, f"<p>{PTID}</p>")
    assert main(["check-privacy", str(html), "--manifest", str(restricted_manifest)]) == 1
    captured = capsys.readouterr()
    # File and line, but the identifier masked: the output of a restricted run may be
    # published (a CI log).
    assert f"{html / 'chapter.html'}:3: ###_S_####" in captured.out
    assert PTID not in captured.out + captured.err
    assert "restricted" in captured.err


def test_cli_check_privacy_unrestricted(tmp_path, open_manifest, capsys):
    html = _book(tmp_path)
    _plant(html / "chapter.html", 3, f"<p>{PTID}</p>")
    assert main(["check-privacy", str(html), "--manifest", str(open_manifest)]) == 0
    out = capsys.readouterr().out
    assert "is not restricted" in out and "1 identifier occurrences in 1 of 6 files" in out


def test_cli_check_privacy_missing_dir(tmp_path, restricted_manifest, capsys):
    assert main(["check-privacy", str(tmp_path / "nope"), "--manifest", str(restricted_manifest)]) == 2
    assert "not a folder" in capsys.readouterr().err
