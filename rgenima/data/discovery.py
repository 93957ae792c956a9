"""Find each subject's baseline MRI file (paths only; images are not opened here).

Two modes, chosen in the manifest (``cohort.mri``):

- **BIDS**, in the layout written by Clinica's ADNI-to-BIDS converter::

      <bids_root>/sub-ADNI023S0031/ses-M000/anat/sub-ADNI023S0031_ses-M000_T1w.nii.gz

  The participant label is ``ADNI`` + the PTID without underscores. The baseline
  session is ``ses-M000`` (older Clinica versions: ``ses-M00``); ``.nii`` is
  accepted as well as ``.nii.gz``.
- **pattern**: a glob with ``{ptid}`` and/or ``{participant}`` placeholders, e.g.
  ``/data/gm/{ptid}_gm_mni.nii.gz``; exactly one file must match. The folders before
  the first placeholder are taken literally when they exist, so a folder named
  ``scans[2024]`` works (``[``, ``]``, ``*`` and ``?`` are glob wildcards only in the
  rest of the pattern).
"""

from __future__ import annotations

import glob
import os.path
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from rgenima.data.manifest import MriSpec
from rgenima.errors import DataContractError

__all__ = [
    "BASELINE_SESSIONS",
    "find_mri",
    "participant_id",
    "ptid_from_participant",
]

#: Baseline session labels, in order of preference.
BASELINE_SESSIONS: tuple[str, ...] = ("ses-M000", "ses-M00")
_T1W_SUFFIXES = (".nii.gz", ".nii")
_PARTICIPANT_RE = re.compile(r"^(?:sub-)?ADNI(\d{3})S(\d{4})$")
_GLOB_CHARS = re.compile(r"[*?\[{]")


def participant_id(ptid: str) -> str:
    """BIDS participant label of an ADNI PTID, as Clinica writes it.

    Parameters
    ----------
    ptid : str
        ADNI subject ID, e.g. ``"023_S_0031"``.

    Returns
    -------
    str
        ``"ADNI"`` + the PTID without underscores, e.g. ``"ADNI023S0031"`` (without
        the ``sub-`` prefix).

    Raises
    ------
    DataContractError
        If the PTID is empty or holds characters other than letters, digits and
        underscores.
    """
    label = "ADNI" + str(ptid).strip().replace("_", "")
    if label == "ADNI" or not label.isalnum():
        raise DataContractError(
            f"cannot build a BIDS participant label from PTID {ptid!r}: expected "
            f"letters, digits and underscores such as '023_S_0031'."
        )
    return label


def ptid_from_participant(participant: str) -> str:
    """Inverse of :func:`participant_id` for ADNI-shaped labels.

    Parameters
    ----------
    participant : str
        ``"ADNI023S0031"`` or ``"sub-ADNI023S0031"``.

    Returns
    -------
    str
        The PTID, e.g. ``"023_S_0031"``.

    Raises
    ------
    DataContractError
        If the label is not ``[sub-]ADNI`` + 3 digits + ``S`` + 4 digits.
    """
    match = _PARTICIPANT_RE.match(str(participant).strip())
    if match is None:
        raise DataContractError(
            f"participant label {participant!r} is not in Clinica's ADNI form "
            f"'sub-ADNI<site>S<number>' such as 'sub-ADNI023S0031'."
        )
    return f"{match.group(1)}_S_{match.group(2)}"


def find_mri(mri_spec: MriSpec, ptids: Iterable[str]) -> tuple[dict[str, Path], pd.DataFrame]:
    """Map each PTID to its baseline MRI file.

    Parameters
    ----------
    mri_spec : MriSpec
        ``manifest.cohort.mri``: a BIDS root or a glob pattern.
    ptids : iterable of str
        Subjects to look for.

    Returns
    -------
    found : dict of str to pathlib.Path
        PTID -> image file, in the order of ``ptids``.
    missing : pandas.DataFrame
        Columns ``PTID`` and ``reason`` for every PTID without exactly one image.

    Raises
    ------
    DataContractError
        If the BIDS root, or the fixed folder part of the pattern, does not exist
        (a wrong path, rather than missing subjects).
    """
    from rgenima.fileio import why_missing

    ptids = list(dict.fromkeys(ptids))
    if mri_spec.bids_root is not None:
        root = Path(mri_spec.bids_root)
        if not root.is_dir():
            raise DataContractError(
                f"MRI BIDS folder not found: {root} (cohort.mri.bids_root in the manifest): the "
                f"path {why_missing(root) if not root.exists() else 'is a file, not a folder'}."
            )
        lookup = lambda ptid: _find_bids_t1w(root, ptid)  # noqa: E731
    elif mri_spec.pattern is not None:
        literal, rest = _literal_folder(str(mri_spec.pattern))
        fixed = Path(literal + str(_fixed_folder(rest))) if literal else _fixed_folder(rest)
        pattern = glob.escape(literal) + rest
        if not fixed.is_dir():
            raise DataContractError(
                f"MRI folder not found: {fixed} (the fixed part of cohort.mri.pattern "
                f"{str(mri_spec.pattern)!r} in the manifest): the path {why_missing(fixed)}."
            )
        lookup = lambda ptid: _find_by_pattern(pattern, ptid)  # noqa: E731
    else:
        raise DataContractError("cohort.mri: neither 'bids_root' nor 'pattern' is set.")

    found: dict[str, Path] = {}
    missing: list[tuple[str, str]] = []
    for ptid in ptids:
        path, reason = lookup(ptid)
        if path is not None:
            found[ptid] = path
        else:
            missing.append((ptid, reason))
    return found, pd.DataFrame(missing, columns=["PTID", "reason"])


def _find_bids_t1w(root: Path, ptid: str) -> tuple[Path | None, str]:
    sub = f"sub-{participant_id(ptid)}"
    subject_dir = root / sub
    if not subject_dir.is_dir():
        return None, "no MRI: no BIDS participant folder"
    for session in BASELINE_SESSIONS:
        anat = subject_dir / session / "anat"
        if not anat.is_dir():
            continue
        exact = [
            anat / f"{sub}_{session}_T1w{suffix}"
            for suffix in _T1W_SUFFIXES
            if (anat / f"{sub}_{session}_T1w{suffix}").is_file()
        ]
        if len(exact) == 1:
            return exact[0], ""
        if not exact and any((anat / f"{sub}_{session}_T1w{suffix}").is_symlink() for suffix in _T1W_SUFFIXES):
            return None, _BAD_LINK
        candidates = exact or sorted(
            p
            for p in anat.iterdir()
            if p.is_file()
            and p.name.startswith(f"{sub}_{session}")
            and any(p.name.endswith(f"_T1w{s}") for s in _T1W_SUFFIXES)
        )
        if len(candidates) == 1:
            return candidates[0], ""
        if candidates:
            names = ", ".join(p.name for p in candidates)
            return None, f"no MRI: several baseline T1w files ({names})"
        return None, f"no MRI: no T1w NIfTI in {session}/anat"
    return None, "no MRI: no baseline session (ses-M000 or ses-M00)"


_BAD_LINK = "no MRI: the baseline T1w is a broken symbolic link or a link loop (fix the link)"


def _find_by_pattern(pattern: str, ptid: str) -> tuple[Path | None, str]:
    concrete = pattern.format(ptid=ptid, participant=participant_id(ptid))
    matches = sorted(p for p in glob.glob(concrete) if Path(p).is_file())
    if len(matches) == 1:
        return Path(matches[0]), ""
    if not matches:
        if any(Path(p).is_symlink() for p in glob.glob(concrete)):
            return None, _BAD_LINK
        return None, "no MRI: no file matches the pattern"
    names = ", ".join(Path(m).name for m in matches[:5])
    more = f", ... ({len(matches)} in all)" if len(matches) > 5 else ""
    return None, f"no MRI: several files match the pattern ({names}{more})"


def _fixed_folder(pattern: str) -> Path:
    """Longest leading folder of ``pattern`` free of placeholders and wildcards."""
    match = _GLOB_CHARS.search(pattern)
    prefix = pattern[: match.start()] if match else pattern
    return Path(os.path.dirname(prefix) or ("." if not pattern.startswith("/") else "/"))


def _literal_folder(pattern: str) -> tuple[str, str]:
    """Split off the longest existing folder before the first placeholder, if it holds
    wildcard characters (``/data/scans[2024]``), to be matched literally.

    Returns
    -------
    literal, rest : str
        ``literal + rest == pattern``; ``literal`` is empty when no such folder exists.
    """
    head = pattern[: pattern.find("{")] if "{" in pattern else pattern
    folder = os.path.dirname(head)
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        folder = "" if parent == folder else parent
    if not folder or not re.search(r"[*?\[]", folder):
        return "", pattern
    return folder, pattern[len(folder) :]
