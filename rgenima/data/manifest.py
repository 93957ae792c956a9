"""Read and check ``data_manifest.yaml``, the file that says which data a run uses.

The manifest only *locates* data: :func:`load_manifest` checks its fields and turns
every path into an absolute :class:`pathlib.Path` (relative paths are relative to the
manifest's own folder), but it does not require the files to exist, so that a
manifest can be loaded before the data are downloaded or generated. Missing files are
reported by :func:`rgenima.data.validate.validate_manifest`; recorded checksums are
verified by :func:`verify_checksums`.

Format (see ``manifests/adni.example.yaml`` for a commented example)::

    cohort:
      name: synthetic
      restricted: false          # optional; true for ADNI (no subject IDs published)
      clinical: data/synthetic/ADNIMERGE.csv
      mri: {bids_root: data/synthetic/bids}   # or {pattern: "dir/{ptid}.nii.gz"}
      genotypes: data/synthetic/genotypes/cohort   # PLINK prefix (.bed/.bim/.fam)
    atlas: aal2                  # aal2 | desikan_killiany | {image: x.nii.gz, labels: x.tsv}
    gene_panel: builtin          # or a TSV path
    snp_gene_window_kb: 10
    qc: {min_call_rate: 0.95, min_maf: 0.01, hwe_p: 1.0e-6, max_subject_missing: 0.1}
    checksums:                   # optional: relative path -> sha256 hex digest
      data/synthetic/ADNIMERGE.csv: 3f2a...
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rgenima._utils.hashing import sha256_file
from rgenima.data._manifest_fields import (
    _check_keys,
    _did_you_mean,
    _fmt_keys,
    _number_field,
    _parse_checksums,
    _path_field,
)
from rgenima.errors import ManifestError

__all__ = [
    "BUILTIN_ATLASES",
    "BUILTIN_GENE_PANEL",
    "MANIFEST_KEYS",
    "AtlasSpec",
    "CohortSpec",
    "Manifest",
    "MriSpec",
    "QCSpec",
    "builtin_gene_panel_path",
    "load_manifest",
    "sha256_file",
    "verify_checksums",
]

#: Names accepted for ``atlas:`` (read offline from installed data packages).
BUILTIN_ATLASES: tuple[str, ...] = ("aal2", "desikan_killiany")

#: File name of the shipped gene panel inside ``rgenima/resources``.
BUILTIN_GENE_PANEL = "gene_panel_grch37.tsv"

#: Allowed top-level keys; a key outside this tuple is an error (catches typos).
MANIFEST_KEYS: tuple[str, ...] = (
    "cohort",
    "atlas",
    "gene_panel",
    "snp_gene_window_kb",
    "qc",
    "checksums",
)
_REQUIRED_KEYS = ("cohort",)
_COHORT_KEYS = ("name", "restricted", "clinical", "mri", "genotypes", "truth")
_COHORT_REQUIRED = ("name", "clinical", "mri", "genotypes")
_MRI_KEYS = ("bids_root", "pattern")
_ATLAS_KEYS = ("name", "image", "labels")
_QC_DEFAULTS = {"min_call_rate": 0.95, "min_maf": 0.01, "hwe_p": 1.0e-6, "max_subject_missing": 0.1}
_QC_RANGES = {
    "min_call_rate": (0.0, 1.0),
    "min_maf": (0.0, 0.5),
    "hwe_p": (0.0, 1.0),
    "max_subject_missing": (0.0, 1.0),
}
_DEFAULT_WINDOW_KB = 10.0
_MAX_WINDOW_KB = 10_000.0
_PATTERN_FIELDS = ("ptid", "participant")


# ---------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class MriSpec:
    """Where the MRI images are.

    Exactly one of ``bids_root`` and ``pattern`` is set.

    Attributes
    ----------
    bids_root : pathlib.Path or None
        Absolute path of a BIDS folder in the layout written by Clinica's
        ADNI-to-BIDS converter (``sub-ADNI023S0031/ses-M000/anat/..._T1w.nii.gz``).
    pattern : str or None
        Absolute glob pattern with a ``{ptid}`` and/or ``{participant}`` placeholder,
        e.g. ``/data/mri/{ptid}_gm.nii.gz``.
    """

    bids_root: Path | None = None
    pattern: str | None = None

    @property
    def mode(self) -> str:
        """``"bids"`` or ``"pattern"``."""
        return "bids" if self.bids_root is not None else "pattern"


@dataclass(frozen=True)
class CohortSpec:
    """The subject-level inputs of the data contract (see DESIGN.md).

    Attributes
    ----------
    name : str
        Short cohort name, e.g. ``"synthetic"`` or ``"adni"``.
    restricted : bool
        True for access-controlled data (ADNI): published output must not contain
        subject identifiers.
    clinical : pathlib.Path
        ADNIMERGE-style CSV (a dated name such as ``ADNIMERGE_27Nov2026.csv`` is fine).
    mri : MriSpec
        How to find each subject's baseline MRI.
    genotypes : pathlib.Path
        PLINK 1 binary prefix: ``<prefix>.bed``, ``.bim`` and ``.fam`` (GRCh37,
        IID = PTID).
    truth : pathlib.Path or None
        A synthetic cohort's ``truth.json`` (planted effects), read only by the
        validation of the attributions; None for real data. Without it, a
        ``truth.json`` beside the clinical table is used (``rgenima synth`` writes it
        there).
    """

    name: str
    restricted: bool
    clinical: Path
    mri: MriSpec
    genotypes: Path
    truth: Path | None = None


@dataclass(frozen=True)
class AtlasSpec:
    """Which atlas to read.

    Attributes
    ----------
    name : str
        A built-in name (one of :data:`BUILTIN_ATLASES`) or, for a user atlas, the
        name given in the manifest (default: the image file name without extension).
    image : pathlib.Path or None
        Integer label image in MNI space (user atlas only).
    labels : pathlib.Path or None
        TSV/CSV table with columns ``index`` and ``name`` (user atlas only).
    """

    name: str
    image: Path | None = None
    labels: Path | None = None

    @property
    def is_builtin(self) -> bool:
        """True for a built-in atlas read from an installed package."""
        return self.image is None

    def user_files(self) -> tuple[Path, Path]:
        """``(image, labels)`` of a user atlas (the manifest requires both)."""
        if self.image is None or self.labels is None:
            raise ValueError(f"atlas {self.name!r} is built in: it has no user image and labels files.")
        return self.image, self.labels


@dataclass(frozen=True)
class QCSpec:
    """Genotype quality-control thresholds (applied by the genetics step).

    Attributes
    ----------
    min_call_rate : float
        Minimum per-SNP call rate, in [0, 1].
    min_maf : float
        Minimum minor-allele frequency, in [0, 0.5].
    hwe_p : float
        Hardy-Weinberg equilibrium p-value below which a SNP is dropped, in [0, 1].
    max_subject_missing : float
        A subject (sample) with more than this fraction of its genotype calls missing
        is removed before the SNP filters, as PLINK's ``--mind`` (which PLINK 1.9 also
        applies before ``--geno``, ``--maf`` and ``--hwe``); in [0, 1], 1 keeps every
        subject. Removed subjects are listed in the data report.
    """

    min_call_rate: float = _QC_DEFAULTS["min_call_rate"]
    min_maf: float = _QC_DEFAULTS["min_maf"]
    hwe_p: float = _QC_DEFAULTS["hwe_p"]
    max_subject_missing: float = _QC_DEFAULTS["max_subject_missing"]


@dataclass(frozen=True)
class Manifest:
    """A checked data manifest with absolute paths.

    Attributes
    ----------
    path : pathlib.Path
        Absolute path of the manifest file.
    cohort : CohortSpec
        Clinical table, MRI and genotypes.
    atlas : AtlasSpec
        Atlas used to cut images into ROI tokens.
    gene_panel : pathlib.Path
        Gene panel TSV (columns ``symbol, chrom, start, end, ad_locus, source``).
    gene_panel_builtin : bool
        True when ``gene_panel: builtin`` (the panel shipped with rgenima).
    snp_gene_window_kb : float
        A SNP maps to a gene when within this many kilobases of it (GRCh37).
    qc : QCSpec
        Genotype QC thresholds.
    checksums : dict of str to str
        Relative path (as written in the manifest) -> expected sha256 hex digest.
        Empty when the manifest records none.
    """

    path: Path
    cohort: CohortSpec
    atlas: AtlasSpec
    gene_panel: Path
    gene_panel_builtin: bool = True
    snp_gene_window_kb: float = _DEFAULT_WINDOW_KB
    qc: QCSpec = field(default_factory=QCSpec)
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Folder that relative paths in the manifest are resolved against."""
        return self.path.parent

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description for provenance files.

        Returns
        -------
        dict
            Paths as strings; nothing that identifies a subject.
        """
        mri = self.cohort.mri
        atlas: dict[str, Any] = {"name": self.atlas.name, "builtin": self.atlas.is_builtin}
        if not self.atlas.is_builtin:
            atlas["image"] = str(self.atlas.image)
            atlas["labels"] = str(self.atlas.labels)
        return {
            "manifest": str(self.path),
            "cohort": {
                "name": self.cohort.name,
                "restricted": self.cohort.restricted,
                "clinical": str(self.cohort.clinical),
                "mri": ({"bids_root": str(mri.bids_root)} if mri.mode == "bids" else {"pattern": mri.pattern}),
                "genotypes": str(self.cohort.genotypes),
                **({"truth": str(self.cohort.truth)} if self.cohort.truth is not None else {}),
            },
            "atlas": atlas,
            "gene_panel": str(self.gene_panel),
            "gene_panel_builtin": self.gene_panel_builtin,
            "snp_gene_window_kb": self.snp_gene_window_kb,
            "qc": {
                "min_call_rate": self.qc.min_call_rate,
                "min_maf": self.qc.min_maf,
                "hwe_p": self.qc.hwe_p,
                "max_subject_missing": self.qc.max_subject_missing,
            },
            "checksums": dict(self.checksums),
        }


# ---------------------------------------------------------------------------
# Loading


def builtin_gene_panel_path() -> Path:
    """Path of the gene panel shipped with rgenima.

    Returns
    -------
    pathlib.Path
        ``rgenima/resources/gene_panel_grch37.tsv`` (may not exist in a broken
        install; :func:`~rgenima.data.validate.validate_manifest` reports that).
    """
    return Path(str(resources.files("rgenima").joinpath("resources", BUILTIN_GENE_PANEL)))


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a data manifest.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML manifest. Relative paths inside it are resolved against its folder.

    Returns
    -------
    Manifest
        Frozen, with absolute paths. Data files are not required to exist yet.

    Raises
    ------
    ManifestError
        If the file is missing or not YAML, or a field is unknown, missing or out
        of range. The message names the manifest and the field.
    """
    from rgenima.fileio import why_missing

    label = str(path)
    manifest_path = Path(path).expanduser()
    if manifest_path.is_dir():
        raise ManifestError(f"{label}: is a folder; give the manifest file itself (e.g. {label}/data_manifest.yaml).")
    if not manifest_path.is_file():
        raise ManifestError(f"{label}: manifest file not found (the path {why_missing(manifest_path)}).")
    try:
        raw = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ManifestError(
            f"{label}: not valid YAML{where} ({problem}); check the indentation and the brackets and "
            "quotes there (manifests/adni.example.yaml shows the format)."
        ) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{label}: not a UTF-8 text file ({exc}).") from None
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{label}: expected a YAML mapping with keys {_fmt_keys(_REQUIRED_KEYS)} "
            f"at the top level; got {type(raw).__name__}."
        )
    manifest_path = manifest_path.resolve()
    return _parse(raw, root=manifest_path.parent, label=label, path=manifest_path)


def _parse(raw: dict, *, root: Path, label: str, path: Path) -> Manifest:
    _check_keys(raw, MANIFEST_KEYS, _REQUIRED_KEYS, where="", label=label)
    cohort = _parse_cohort(raw["cohort"], root=root, label=label)
    atlas = _parse_atlas(raw.get("atlas", "aal2"), root=root, label=label)

    panel = raw.get("gene_panel", "builtin")
    if panel == "builtin":
        panel_path, panel_builtin = builtin_gene_panel_path(), True
    else:
        panel_path = _path_field(panel, "gene_panel", root=root, label=label)
        panel_builtin = False

    window = _number_field(
        raw.get("snp_gene_window_kb", _DEFAULT_WINDOW_KB),
        "snp_gene_window_kb",
        0.0,
        _MAX_WINDOW_KB,
        label=label,
    )

    qc_raw = raw.get("qc", {})
    if qc_raw is None:
        qc_raw = {}
    if not isinstance(qc_raw, dict):
        raise ManifestError(
            f"{label}: field 'qc' must be a mapping with keys {_fmt_keys(_QC_DEFAULTS)}; got {qc_raw!r}."
        )
    _check_keys(qc_raw, tuple(_QC_DEFAULTS), (), where="qc", label=label)
    qc = QCSpec(
        **{
            key: _number_field(qc_raw.get(key, default), f"qc.{key}", *_QC_RANGES[key], label=label)
            for key, default in _QC_DEFAULTS.items()
        }
    )

    checksums = _parse_checksums(raw.get("checksums"), label=label)
    return Manifest(
        path=path,
        cohort=cohort,
        atlas=atlas,
        gene_panel=panel_path,
        gene_panel_builtin=panel_builtin,
        snp_gene_window_kb=window,
        qc=qc,
        checksums=checksums,
    )


def _parse_cohort(raw: Any, *, root: Path, label: str) -> CohortSpec:
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{label}: field 'cohort' must be a mapping with keys {_fmt_keys(_COHORT_REQUIRED)}; got {raw!r}."
        )
    _check_keys(raw, _COHORT_KEYS, _COHORT_REQUIRED, where="cohort", label=label)
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{label}: field 'cohort.name' must be a non-empty string; got {name!r}.")
    restricted = raw.get("restricted", False)
    if not isinstance(restricted, bool):
        raise ManifestError(f"{label}: field 'cohort.restricted' must be true or false; got {restricted!r}.")
    return CohortSpec(
        name=name.strip(),
        restricted=restricted,
        clinical=_path_field(raw["clinical"], "cohort.clinical", root=root, label=label),
        mri=_parse_mri(raw["mri"], root=root, label=label),
        genotypes=_path_field(raw["genotypes"], "cohort.genotypes", root=root, label=label),
        truth=(
            _path_field(raw["truth"], "cohort.truth", root=root, label=label) if raw.get("truth") is not None else None
        ),
    )


def _parse_mri(raw: Any, *, root: Path, label: str) -> MriSpec:
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{label}: field 'cohort.mri' must be a mapping with exactly one of 'bids_root' or 'pattern'; got {raw!r}."
        )
    _check_keys(raw, _MRI_KEYS, (), where="cohort.mri", label=label)
    given = [key for key in _MRI_KEYS if raw.get(key) is not None]
    if len(given) != 1:
        raise ManifestError(
            f"{label}: field 'cohort.mri' must set exactly one of 'bids_root' or "
            f"'pattern'; got {_fmt_keys(given) if given else 'neither'}."
        )
    if given == ["bids_root"]:
        return MriSpec(bids_root=_path_field(raw["bids_root"], "cohort.mri.bids_root", root=root, label=label))
    pattern = raw["pattern"]
    if not isinstance(pattern, str) or not pattern.strip():
        raise ManifestError(f"{label}: field 'cohort.mri.pattern' must be a non-empty string; got {pattern!r}.")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as exc:
        raise ManifestError(
            f"{label}: field 'cohort.mri.pattern' is not a valid pattern ({exc}); got {pattern!r}."
        ) from None
    unknown = sorted(fields - set(_PATTERN_FIELDS))
    if unknown:
        raise ManifestError(
            f"{label}: field 'cohort.mri.pattern' may only use the placeholders "
            f"{{ptid}} and {{participant}}; got {pattern!r} with "
            + ", ".join("{" + name + "}" for name in unknown)
            + "."
        )
    if not fields:
        raise ManifestError(
            f"{label}: field 'cohort.mri.pattern' must contain a {{ptid}} or "
            f"{{participant}} placeholder; got {pattern!r}."
        )
    expanded = Path(pattern).expanduser()
    if not expanded.is_absolute():
        expanded = root / expanded
    return MriSpec(pattern=str(expanded))


def _parse_atlas(raw: Any, *, root: Path, label: str) -> AtlasSpec:
    if isinstance(raw, str):
        if raw not in BUILTIN_ATLASES:
            raise ManifestError(
                f"{label}: field 'atlas' must be one of {_fmt_keys(BUILTIN_ATLASES)} "
                f"or a mapping {{image: ..., labels: ...}}; got {raw!r}." + _did_you_mean(raw, BUILTIN_ATLASES)
            )
        return AtlasSpec(name=raw)
    if not isinstance(raw, dict):
        raise ManifestError(
            f"{label}: field 'atlas' must be one of {_fmt_keys(BUILTIN_ATLASES)} "
            f"or a mapping {{image: ..., labels: ...}}; got {raw!r}."
        )
    _check_keys(raw, _ATLAS_KEYS, ("image", "labels"), where="atlas", label=label)
    image = _path_field(raw["image"], "atlas.image", root=root, label=label)
    labels = _path_field(raw["labels"], "atlas.labels", root=root, label=label)
    name = raw.get("name")
    if name is None:
        name = image.name.removesuffix(".gz").removesuffix(".nii")
    elif not isinstance(name, str) or not name.strip():
        raise ManifestError(f"{label}: field 'atlas.name' must be a non-empty string; got {name!r}.")
    return AtlasSpec(name=name.strip(), image=image, labels=labels)


# ---------------------------------------------------------------------------
# Checksums


def verify_checksums(manifest: Manifest) -> list[str]:
    """Check every file listed under ``checksums:`` against its sha256 digest.

    Parameters
    ----------
    manifest : Manifest
        A loaded manifest. Keys of ``manifest.checksums`` are resolved against the
        manifest's folder.

    Returns
    -------
    list of str
        The relative paths verified, in manifest order (empty when none recorded).

    Raises
    ------
    ManifestError
        If a listed file is missing or its digest differs; the message names the
        file, the expected and the actual digest.
    """
    verified = []
    for rel, expected in manifest.checksums.items():
        path = Path(rel).expanduser()
        if not path.is_absolute():
            path = manifest.root / path
        if not path.is_file():
            raise ManifestError(
                f"{manifest.path}: field 'checksums' lists {rel!r}, but the file "
                f"{path} does not exist (expected sha256 {expected})."
            )
        actual = sha256_file(path)
        if actual != expected:
            raise ManifestError(
                f"{path}: sha256 checksum mismatch: the manifest {manifest.path} "
                f"expects {expected}, the file has {actual}. The file changed since "
                f"the checksum was recorded (re-download it, or update the manifest "
                f"if the change is intended)."
            )
        verified.append(rel)
    return verified
