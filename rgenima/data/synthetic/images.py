"""The synthetic T1w images: the MNI152 template darkened by each subject's atrophy."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima.data.synthetic.config import SynthConfig
from rgenima.fileio import atomic_write_bytes


@dataclass
class ImageModel:
    """Everything shared by all synthetic images of one grid.

    Attributes
    ----------
    affine : ndarray of shape (4, 4)
        MNI-space affine of the written images (mm).
    shape : tuple of int
        Grid shape.
    brain : ndarray of int, shape (n_brain_voxels,)
        Flat indices of the brain voxels (template > 0).
    t1 : ndarray of shape (n_brain_voxels,)
        Template T1 intensity in brain voxels (arbitrary units, 0-1000).
    gm : ndarray of shape (n_brain_voxels,)
        Grey-matter probability in brain voxels.
    roi_of_voxel : ndarray of int, shape (n_brain_voxels,)
        Column of the ROI each brain voxel belongs to, -1 outside the atlas.
    bias_basis : ndarray of shape (n_brain_voxels, n_basis)
        Low-order polynomials of the voxel coordinates for a smooth bias field.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    brain: np.ndarray
    t1: np.ndarray
    gm: np.ndarray
    roi_of_voxel: np.ndarray
    bias_basis: np.ndarray


def build_image_model(voxel_mm: float, atlas_img: nib.Nifti1Image, atlas_labels: pd.DataFrame) -> ImageModel:
    """MNI152 template and grey-matter map at ``voxel_mm``, with the atlas on that grid."""
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template
    from nilearn.image import resample_img, resample_to_img

    if float(voxel_mm).is_integer():
        t1_img = load_mni152_template(resolution=int(voxel_mm))
    else:
        # nilearn resamples only to whole-mm resolutions; go through the 1 mm template.
        t1_img = resample_img(
            load_mni152_template(resolution=1),
            target_affine=np.eye(3) * voxel_mm,
            interpolation="continuous",
            force_resample=True,
            copy_header=True,
        )
    gm_img = load_mni152_gm_template(resolution=1)
    gm_img = resample_to_img(gm_img, t1_img, interpolation="continuous", force_resample=True, copy_header=True)
    atlas_on_grid = resample_to_img(atlas_img, t1_img, interpolation="nearest", force_resample=True, copy_header=True)
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float64)
    gm = np.clip(np.asarray(gm_img.get_fdata(), dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(atlas_on_grid.get_fdata()).round().astype(np.int64)
    brain = np.flatnonzero(t1.ravel() > 0.02)
    column = {int(idx): i for i, idx in enumerate(atlas_labels["index"])}
    lut = np.full(labels.max() + 1, -1, dtype=np.int64)
    for idx, col in column.items():
        if idx <= labels.max():
            lut[idx] = col
    roi_of_voxel = lut[labels.ravel()[brain]]
    coords = np.stack(np.unravel_index(brain, t1.shape), axis=1).astype(np.float64)
    coords = (coords - coords.mean(axis=0)) / coords.std(axis=0)
    x, y, z = coords.T
    basis = np.stack([x, y, z, x * y, x * z, y * z, x**2 - 1, y**2 - 1, z**2 - 1], axis=1)
    return ImageModel(
        affine=t1_img.affine.copy(),
        shape=t1.shape,
        brain=brain,
        t1=t1.ravel()[brain] * 1000.0,
        gm=gm.ravel()[brain],
        roi_of_voxel=roi_of_voxel,
        bias_basis=basis,
    )


def render_t1(model: ImageModel, atrophy: np.ndarray, rng: np.random.Generator, config: SynthConfig) -> nib.Nifti1Image:
    """One subject's T1w image.

    Parameters
    ----------
    atrophy : ndarray of shape (n_rois,)
        Fraction of grey matter lost per ROI (negative values: above-average volume).

    Returns
    -------
    Nifti1Image
        int16 image on the template grid, MNI152 affine, sform/qform code 4 (MNI).
    """
    loss = np.where(model.roi_of_voxel >= 0, atrophy[np.maximum(model.roi_of_voxel, 0)], 0.0)
    # Grey matter lost is replaced by CSF, which is dark on T1w: scale GM signal down.
    values = model.t1 * (1.0 - np.clip(loss, -0.5, 0.95) * model.gm)
    gain = 1.0 + config.gain_sd * rng.standard_normal()
    bias = np.exp(model.bias_basis @ (config.bias_sd * rng.standard_normal(model.bias_basis.shape[1])))
    values = values * gain * bias + config.noise_sd * rng.standard_normal(values.shape)
    data = np.zeros(int(np.prod(model.shape)), dtype=np.int16)
    data[model.brain] = np.clip(np.round(values), 0, 32767).astype(np.int16)
    img = nib.Nifti1Image(data.reshape(model.shape), model.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(model.affine, code=4)
    img.set_qform(model.affine, code=4)
    img.header["descrip"] = b"rgenima synthetic T1w (MNI152 space)"
    return img


def _write_nifti_gz(img: nib.Nifti1Image, path: Path) -> None:
    # gzip with mtime=0 so that the same image always gives the same bytes.
    atomic_write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
