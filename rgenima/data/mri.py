"""MRI -> ROI tokens: one fixed-size cube per atlas region, plus ROI summary features.

For every ROI of the atlas the image is cropped to the ROI's bounding box, masked to
the ROI, and resampled to a cube of ``cube_size``³ samples. The geometry (bounding
boxes, sample coordinates, ROI membership of each sample) depends only on the image
grid, so it is computed once per distinct grid (:class:`RoiSampler`) and every image
on that grid costs one trilinear interpolation of ``n_rois * cube_size**3`` points.

ROIs are always identified by their atlas label id, never by column position: an ROI
that resampling to a grid loses (nilearn #1673, #4289) has an all-zero cube and zero
features, flagged in ``RoiSampler.missing_rois``. :class:`RoiExtractor` names the
image and the ROIs lost, in a warning or (``lost_rois="raise"``, what ``rgenima
prepare`` uses) in a :class:`~rgenima.errors.DataContractError`, since a token that
is empty for some subjects only would be a silently wrong input to the model.
"""

from __future__ import annotations

import logging
import typing
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from rgenima.errors import DataContractError

logger = logging.getLogger(__name__)

#: Minimum fraction of atlas voxels that must fall on non-zero image voxels.
MIN_ATLAS_COVERAGE = 0.80
#: Maximum distance (mm) between the image's and the atlas's centres of mass.
MAX_CENTROID_SHIFT_MM = 25.0


def load_mri(img: str | Path | nib.Nifti1Image, name: str | None = None) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Load a 3-D image and check its voxels.

    Parameters
    ----------
    img : str, Path or Nifti1Image
        A NIfTI file or an in-memory image (Niimg-like).
    name : str, optional
        How to name the image in errors (defaults to the file path).

    Returns
    -------
    img : Nifti1Image
    data : ndarray of shape (x, y, z), float32

    Raises
    ------
    DataContractError
        If the file is unreadable or truncated, the image is not 3-D, it holds NaN/inf
        values, or every voxel is 0 (an empty image).
    """
    label = name or (str(img) if not isinstance(img, nib.Nifti1Image) else "<in-memory image>")
    if not isinstance(img, nib.spatialimages.SpatialImage):
        try:
            img = nib.load(str(img))
        except Exception as exc:  # nibabel raises many types on a bad file
            raise DataContractError(f"{label}: cannot read MRI image as NIfTI ({type(exc).__name__}: {exc}).") from None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine, img.header)
    elif len(shape) != 3:
        raise DataContractError(f"{label}: MRI image must be 3-D (one volume per subject); got shape {shape}.")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        raise DataContractError(
            f"{label}: cannot read the MRI voxel data ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt (an interrupted copy or download?): copy it again."
        ) from None
    bad = ~np.isfinite(data)
    if bad.any():
        raise DataContractError(
            f"{label}: MRI image holds {int(bad.sum())} non-finite voxel values (NaN or inf); "
            "expected a finite T1w or grey-matter map."
        )
    if not data.any():
        raise DataContractError(
            f"{label}: every voxel of the MRI image is 0: the image is empty "
            "(a failed conversion or segmentation?); expected a T1w or grey-matter map in MNI space."
        )
    return typing.cast(nib.Nifti1Image, img), data


def _grid_key(img: nib.spatialimages.SpatialImage) -> tuple:
    return tuple(int(n) for n in img.shape[:3]) + tuple(np.round(np.asarray(img.affine), 4).ravel().tolist())


@dataclass
class RoiSampler:
    """Per-grid geometry of ROI cube extraction.

    Attributes
    ----------
    roi_ids : ndarray of int, shape (n_rois,)
        Atlas label ids, in the atlas table's order (the order of cube rows).
    labels : ndarray of int, shape (x, y, z)
        The atlas on this image grid (nearest-neighbour resampling).
    coords : ndarray of shape (3, n_rois * cube_size**3)
        Voxel coordinates (in this grid) of every cube sample.
    inside : ndarray of bool, shape (n_rois, cube_size, cube_size, cube_size)
        Whether each sample lies in its ROI (nearest atlas label equals the ROI id).
    n_voxels : ndarray of int, shape (n_rois,)
        ROI size in voxels on this grid; 0 for a lost ROI.
    voxel_volume_mm3 : float
    missing_rois : list of int
        Label ids that have no voxel on this grid.
    """

    roi_ids: np.ndarray
    labels: np.ndarray
    coords: np.ndarray
    inside: np.ndarray
    n_voxels: np.ndarray
    voxel_volume_mm3: float
    missing_rois: list[int]
    atlas_centroid_mm: np.ndarray
    affine: np.ndarray

    @property
    def cube_size(self) -> int:
        return int(self.inside.shape[1])

    @classmethod
    def for_grid(
        cls,
        atlas_img: nib.Nifti1Image,
        roi_ids: np.ndarray,
        reference: nib.spatialimages.SpatialImage,
        cube_size: int = 16,
        warn: bool = True,
    ) -> RoiSampler:
        """Resample the atlas to ``reference``'s grid and precompute the cube samples.

        ``warn``: warn when ROIs are lost on this grid (else the caller reports them).
        """
        from nilearn.image import resample_to_img

        if cube_size < 2:
            raise ValueError(f"'cube_size' must be at least 2; got {cube_size}.")
        ref = nib.Nifti1Image(np.zeros(reference.shape[:3], dtype=np.int8), reference.affine)
        on_grid = resample_to_img(atlas_img, ref, interpolation="nearest", force_resample=True, copy_header=True)
        labels = np.asarray(on_grid.dataobj).round().astype(np.int32)
        roi_ids = np.asarray(roi_ids, dtype=np.int64)
        objects = ndimage.find_objects(labels, max_label=int(roi_ids.max()))
        n_vox = np.bincount(labels.ravel(), minlength=int(roi_ids.max()) + 1)[roi_ids]
        grid = (np.arange(cube_size) + 0.5) / cube_size  # sample centres in [0, 1]
        coords = np.zeros((len(roi_ids), 3, cube_size, cube_size, cube_size), dtype=np.float32)
        inside = np.zeros((len(roi_ids), cube_size, cube_size, cube_size), dtype=bool)
        missing = []
        for r, rid in enumerate(roi_ids):
            box = objects[rid - 1] if rid - 1 < len(objects) else None
            if box is None or n_vox[r] == 0:
                missing.append(int(rid))
                continue
            # Sample positions spread over the bounding box, per axis, in voxel units.
            axes = [sl.start - 0.5 + grid * (sl.stop - sl.start) for sl in box]
            mesh = np.stack(np.meshgrid(*axes, indexing="ij"))
            coords[r] = mesh
            nearest = np.clip(np.round(mesh).astype(np.int64), 0, np.array(labels.shape)[:, None, None, None] - 1)
            inside[r] = labels[nearest[0], nearest[1], nearest[2]] == rid
        if missing and warn:
            warnings.warn(
                f"{len(missing)} atlas ROIs have no voxel on the image grid "
                f"{labels.shape} and get empty cubes: the following labels were removed: {missing}",
                stacklevel=2,
            )
        in_atlas = np.argwhere(np.isin(labels, roi_ids))
        centroid = (reference.affine @ np.c_[in_atlas, np.ones(len(in_atlas))].T)[:3].mean(axis=1)
        return cls(
            roi_ids=roi_ids,
            labels=labels,
            coords=coords.transpose(1, 0, 2, 3, 4).reshape(3, -1),
            inside=inside,
            n_voxels=n_vox,
            voxel_volume_mm3=float(abs(np.linalg.det(reference.affine[:3, :3]))),
            missing_rois=missing,
            atlas_centroid_mm=centroid,
            affine=np.asarray(reference.affine),
        )

    def check_overlap(self, data: np.ndarray, name: str) -> None:
        """Raise if the image does not cover the atlas (an image not in MNI space).

        Two checks: at least MIN_ATLAS_COVERAGE of the atlas voxels fall on non-zero
        image voxels, and the image's intensity centre of mass lies within
        MAX_CENTROID_SHIFT_MM of the atlas's.
        """
        atlas_mask = self.labels > 0
        n_atlas = int(atlas_mask.sum())
        coverage = float((data[atlas_mask] != 0).sum()) / n_atlas if n_atlas else 0.0
        if n_atlas == 0 or coverage < MIN_ATLAS_COVERAGE:
            raise DataContractError(
                f"{name}: the image does not overlap the atlas: {100 * coverage:.0f}% of atlas voxels fall "
                f"on non-zero image voxels (at least {100 * MIN_ATLAS_COVERAGE:.0f}% expected). "
                "Is the image in MNI space (normalised, e.g. by Clinica t1-volume)?"
            )
        weights = np.clip(data, 0, None)
        total = weights.sum()
        com_vox = np.array(ndimage.center_of_mass(weights)) if total > 0 else np.zeros(3)
        com_mm = (self.affine @ np.r_[com_vox, 1.0])[:3]
        shift = float(np.linalg.norm(com_mm - self.atlas_centroid_mm))
        if shift > MAX_CENTROID_SHIFT_MM:
            raise DataContractError(
                f"{name}: the image's centre of mass is {shift:.0f} mm from the atlas's "
                f"(at most {MAX_CENTROID_SHIFT_MM:.0f} mm expected in MNI space). "
                "Is the image in native space rather than MNI space?"
            )

    def extract(self, data: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        """Cubes and summary features of one image on this grid.

        Parameters
        ----------
        data : ndarray of shape (x, y, z)
            Image voxels (the grid this sampler was built for).

        Returns
        -------
        cubes : ndarray of shape (n_rois, cube_size, cube_size, cube_size), float32
            Each ROI's bounding box resampled trilinearly to the cube, zero outside
            the ROI; intensities divided by the mean over all atlas voxels, so that a
            global scanner gain cancels.
        features : DataFrame, one row per ROI (index: label id)
            ``mean_intensity`` (raw units), ``mean_intensity_norm`` (divided by the
            mean over all atlas voxels), ``tissue_sum_ml`` (sum of normalised
            intensity times voxel volume, in ml), ``n_voxels``.
        """
        if data.shape != self.labels.shape:
            raise ValueError(f"image shape {data.shape} differs from the sampler's grid {self.labels.shape}")
        flat_labels = self.labels.ravel()
        minlength = int(self.roi_ids.max()) + 1
        sums = np.bincount(flat_labels, weights=data.ravel().astype(np.float64), minlength=minlength)[self.roi_ids]
        n = self.n_voxels.astype(np.float64)
        in_atlas = n.sum()
        global_mean = sums.sum() / in_atlas if in_atlas else 1.0
        scale = global_mean if global_mean > 0 else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, sums / np.maximum(n, 1), 0.0)
        samples = ndimage.map_coordinates(data, self.coords, order=1, mode="nearest", prefilter=False)
        cubes = samples.reshape(self.inside.shape) * self.inside / scale
        features = pd.DataFrame(
            {
                "mean_intensity": mean,
                "mean_intensity_norm": mean / scale,
                "tissue_sum_ml": sums / scale * self.voxel_volume_mm3 / 1000.0,
                "n_voxels": self.n_voxels,
            },
            index=pd.Index(self.roi_ids, name="roi_id"),
        )
        return cubes.astype(np.float32), features


class RoiExtractor:
    """ROI cubes for images on any grid: one :class:`RoiSampler` per distinct grid.

    Parameters
    ----------
    atlas_img : Nifti1Image
        Integer label image in MNI space.
    roi_ids : array-like of int
        Label ids to extract, in output order.
    cube_size : int
        Edge of each ROI cube, in samples.
    check_space : bool
        Check that each image overlaps the atlas (see RoiSampler.check_overlap).
    lost_rois : {"warn", "raise"}, default="warn"
        What to do when an image's grid loses ROIs of the atlas (too coarse for small
        regions): a warning naming the image and the ROIs, or a DataContractError.
    roi_names : dict of int to str, optional
        Names of the label ids, used in those messages.
    """

    def __init__(
        self,
        atlas_img: nib.Nifti1Image,
        roi_ids,
        cube_size: int = 16,
        check_space: bool = True,
        lost_rois: str = "warn",
        roi_names: dict | None = None,
    ):
        self.atlas_img = atlas_img
        self.roi_ids = np.asarray(roi_ids, dtype=np.int64)
        self.cube_size = cube_size
        self.check_space = check_space
        self.lost_rois = lost_rois
        self.roi_names = roi_names
        self._samplers: dict[tuple, RoiSampler] = {}

    def sampler(self, img: nib.spatialimages.SpatialImage, name: str = "<image>") -> RoiSampler:
        """The sampler of ``img``'s grid, built on first use.

        Raises
        ------
        DataContractError
            If the image does not overlap the atlas, or (``lost_rois="raise"``) the
            grid loses ROIs; the message names the image, its grid and the ROIs.
        """
        from nilearn.image.resampling import BoundingBoxError

        if self.lost_rois not in ("warn", "raise"):
            raise ValueError(f"'lost_rois' must be one of ('warn', 'raise'). {self.lost_rois!r} was provided.")
        key = _grid_key(img)
        if key not in self._samplers:
            logger.info("resampling the atlas to a new image grid %s", img.shape[:3])
            try:
                sampler = RoiSampler.for_grid(self.atlas_img, self.roi_ids, img, self.cube_size, warn=False)
            except BoundingBoxError:
                raise DataContractError(
                    f"{name}: the image does not overlap the atlas: 0% of atlas voxels fall inside "
                    "the image's field of view. Is the image in MNI space?"
                ) from None
            self._samplers[key] = sampler
            if sampler.missing_rois:
                self._report_lost(sampler, img, name)
        return self._samplers[key]

    def _report_lost(self, sampler: RoiSampler, img, name: str) -> None:
        names = self.roi_names or {}
        lost = [names.get(r, str(r)) for r in sampler.missing_rois]
        voxel = np.sqrt((np.asarray(img.affine)[:3, :3] ** 2).sum(axis=0))
        atlas_voxel = np.sqrt((np.asarray(self.atlas_img.affine)[:3, :3] ** 2).sum(axis=0))
        text = (
            f"{name}: on this image's grid ({' x '.join(map(str, img.shape[:3]))} voxels of "
            f"{' x '.join(f'{v:g}' for v in voxel.round(2))} mm) the atlas loses {len(lost)} of its "
            f"{len(self.roi_ids)} ROIs, whose tokens would be empty: {', '.join(lost[:20])}"
            + (f", ... ({len(lost)} in all)" if len(lost) > 20 else "")
        )
        if self.lost_rois == "raise":
            raise DataContractError(
                text + f". Resample the image to a finer grid (the atlas has {atlas_voxel.max():g} mm voxels) "
                "or use an atlas with larger regions."
            )
        warnings.warn(f"{text}; the following labels were removed: {sampler.missing_rois}", stacklevel=3)

    def transform(self, img: str | Path | nib.Nifti1Image, name: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Cubes (n_rois, D, D, D) and ROI features of one image; see RoiSampler.extract."""
        label = name or str(img)
        img, data = load_mri(img, label)
        sampler = self.sampler(img, label)
        if self.check_space:
            sampler.check_overlap(data, label)
        return sampler.extract(data)
