"""MRI -> ROI cubes: shapes, masking, features, grids, and bad images."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rgenima.data.mri import RoiExtractor, RoiSampler, load_mri
from rgenima.errors import DataContractError

AFFINE = np.array([[3.0, 0, 0, -12], [0, 3.0, 0, -15], [0, 0, 3.0, -18], [0, 0, 0, 1]])


def _atlas(shape=(9, 10, 11)) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Two box ROIs (ids 5 and 9) and a single-voxel ROI (id 12), unequal dimensions."""
    labels = np.zeros(shape, dtype=np.int16)
    labels[1:4, 2:7, 3:9] = 5
    labels[5:8, 1:9, 2:5] = 9
    labels[6, 8, 9] = 12
    return nib.Nifti1Image(labels, AFFINE), np.array([5, 9, 12])


def _image(shape=(9, 10, 11), affine=AFFINE, value=None) -> nib.Nifti1Image:
    rng = np.random.default_rng(0)
    data = rng.uniform(50, 100, shape).astype(np.float32) if value is None else np.full(shape, value, np.float32)
    return nib.Nifti1Image(data, affine)


def test_roi_cubes_shape_and_masking():
    atlas, ids = _atlas()
    img = _image()
    cubes, features = RoiExtractor(atlas, ids, cube_size=6).transform(img, name="img")
    assert cubes.shape == (3, 6, 6, 6) and cubes.dtype == np.float32
    # ROI 5 is a full box: every sample is inside; ROI 12 is one voxel.
    assert (cubes[0] != 0).all()
    assert (cubes[2] != 0).all()  # its bounding box is the voxel itself
    assert list(features.index) == [5, 9, 12]
    assert features.loc[5, "n_voxels"] == 3 * 5 * 6
    data = img.get_fdata()
    labels = atlas.get_fdata()
    np.testing.assert_allclose(features.loc[9, "mean_intensity"], data[labels == 9].mean(), rtol=1e-6)
    global_mean = data[labels > 0].mean()
    np.testing.assert_allclose(
        features.loc[9, "mean_intensity_norm"], data[labels == 9].mean() / global_mean, rtol=1e-6
    )
    np.testing.assert_allclose(
        features.loc[5, "tissue_sum_ml"], data[labels == 5].sum() / global_mean * 27 / 1000, rtol=1e-6
    )


def test_roi_cube_is_zero_outside_roi():
    shape = (9, 10, 11)
    labels = np.zeros(shape, dtype=np.int16)
    labels[2:7, 2:7, 2:7] = 3
    labels[2, 2, 2] = 0  # a corner voxel of the box is not in the ROI
    atlas = nib.Nifti1Image(labels, AFFINE)
    cubes, _ = RoiExtractor(atlas, [3], cube_size=5).transform(_image(value=10.0), name="img")
    assert cubes[0, 0, 0, 0] == 0.0
    assert (cubes[0][cubes[0] != 0] > 0).all()
    assert (cubes[0] != 0).sum() == 5**3 - 1


def test_roi_cubes_constant_image_is_one_after_normalisation():
    atlas, ids = _atlas()
    cubes, features = RoiExtractor(atlas, ids, cube_size=4).transform(_image(value=80.0), name="img")
    inside = cubes != 0
    np.testing.assert_allclose(cubes[inside], 1.0, rtol=1e-6)
    np.testing.assert_allclose(features["mean_intensity_norm"], 1.0)


def test_atlas_resampled_once_per_grid():
    atlas, ids = _atlas()
    extractor = RoiExtractor(atlas, ids, cube_size=4)
    extractor.transform(_image(), name="a")
    extractor.transform(_image(), name="b")
    assert len(extractor._samplers) == 1
    finer = AFFINE.copy()
    finer[:3, :3] = np.eye(3) * 1.5
    extractor.transform(_image(shape=(18, 20, 22), affine=finer), name="c")
    assert len(extractor._samplers) == 2


def test_lost_roi_is_named_in_warning():
    atlas, ids = _atlas()
    coarse = AFFINE.copy()
    coarse[:3, :3] = np.eye(3) * 9.0  # the one-voxel ROI 12 cannot survive
    with pytest.warns(UserWarning, match=r"the following labels were removed: \[12\]"):
        sampler = RoiSampler.for_grid(atlas, ids, _image(shape=(3, 4, 4), affine=coarse), cube_size=4)
    assert sampler.missing_rois == [12]
    assert sampler.n_voxels[2] == 0


def test_load_mri_rejects_4d_image(tmp_path):
    path = tmp_path / "sub-4d.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((7, 8, 9, 2), np.float32), AFFINE), path)
    with pytest.raises(DataContractError, match=r"sub-4d\.nii\.gz: MRI image must be 3-D .* got shape \(7, 8, 9, 2\)"):
        load_mri(path)


def test_load_mri_accepts_single_volume_4d(tmp_path):
    path = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((7, 8, 9, 1), np.float32), AFFINE), path)
    img, data = load_mri(path)
    assert data.shape == (7, 8, 9)


def test_load_mri_rejects_non_finite(tmp_path):
    data = np.ones((7, 8, 9), np.float32)
    data[3, 3, 3] = np.nan
    data[1, 1, 1] = np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    with pytest.raises(DataContractError, match=r"nan\.nii\.gz: MRI image holds 2 non-finite voxel values"):
        load_mri(path)


def test_load_mri_rejects_garbage(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(b"not a nifti file")
    with pytest.raises(DataContractError, match=r"junk\.nii\.gz: cannot read MRI image as NIfTI"):
        load_mri(path)


def test_image_not_overlapping_atlas_is_rejected():
    atlas, ids = _atlas()
    shifted = AFFINE.copy()
    shifted[:3, 3] += 200.0  # a grid 200 mm away from the atlas
    with pytest.raises(
        DataContractError, match=r"native\.nii: the image does not overlap the atlas: 0% of atlas voxels"
    ):
        RoiExtractor(atlas, ids, cube_size=4).transform(_image(affine=shifted), name="native.nii")


def test_native_space_image_is_rejected_by_centre_of_mass():
    atlas, ids = _atlas()
    # Covers the atlas box, but the head sits far off the atlas (as in a native-space
    # image whose origin is at a corner): the centre of mass gives it away.
    data = np.zeros((40, 40, 40), np.float32)
    data[:, :, :] = 1.0
    data[25:40, 25:40, 25:40] = 500.0
    img = nib.Nifti1Image(data, AFFINE)
    with pytest.raises(DataContractError, match=r"centre of mass is \d+ mm from the atlas's"):
        RoiExtractor(atlas, ids, cube_size=4).transform(img, name="native.nii")


def test_synthetic_images_at_two_voxel_sizes_agree(small_cohort, tmp_path):
    """The same subject written at 4 mm and 3 mm gives similar normalised ROI means."""
    from rgenima.data.atlas import load_atlas
    from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort

    atlas = load_atlas("aal2")
    ids = atlas.labels["index"].to_numpy()
    other = tmp_path / "c3"
    write_synthetic_cohort(other, SynthConfig(n_subjects=8, seed=3, voxel_mm=3.0))
    name = "sub-ADNI990S9000/ses-M000/anat/sub-ADNI990S9000_ses-M000_T1w.nii.gz"
    ex = RoiExtractor(atlas.image, ids, cube_size=8)
    _, f4 = ex.transform(small_cohort / "bids" / name)
    _, f3 = ex.transform(other / "bids" / name)
    both = (f4["n_voxels"] > 20) & (f3["n_voxels"] > 20)
    r = np.corrcoef(f4.loc[both, "mean_intensity_norm"], f3.loc[both, "mean_intensity_norm"])[0, 1]
    assert r > 0.9
