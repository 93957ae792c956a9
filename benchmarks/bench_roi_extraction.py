"""Benchmark: ROI cube extraction vs nilearn's NiftiLabelsMasker, same images and atlas.

Usage: python benchmarks/bench_roi_extraction.py [--n-subjects 200] [--cube-size 16]

Writes a synthetic cohort (2 mm, AAL2) to a temporary folder, then times, in one run:
  * rgenima: RoiExtractor.transform on every image (load + checks + 120 cubes + ROI
    features), and the same with the float16 cubes written to disk;
  * nilearn: NiftiLabelsMasker (fitted once, resampling_target="data") computing ROI
    means of every image.
Target (issue "Data preparation"): full cube extraction at most 2x the masker's time.
Peak memory is measured with tracemalloc (Python allocations, numpy included).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from rgenima.data.atlas import load_atlas
from rgenima.data.mri import RoiExtractor
from rgenima.data.synthetic import SynthConfig, write_synthetic_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-subjects", type=int, default=200)
    parser.add_argument("--cube-size", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_roi_"))
    try:
        write_synthetic_cohort(work / "cohort", SynthConfig(n_subjects=args.n_subjects, seed=1, n_defective=0))
        images = sorted((work / "cohort" / "bids").glob("sub-*/ses-M000/anat/*_T1w.nii.gz"))
        atlas = load_atlas("aal2")
        ids = atlas.labels["index"].to_numpy()

        extractor = RoiExtractor(atlas.image, ids, cube_size=args.cube_size)
        tracemalloc.start()
        t0 = time.perf_counter()
        for path in images:
            cubes, features = extractor.transform(path)
        t_ours = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        out = work / "cubes"
        out.mkdir()
        t0 = time.perf_counter()
        for i, path in enumerate(images):
            cubes, features = extractor.transform(path)
            np.save(out / f"{i}.npy", cubes.astype(np.float16))
        t_ours_write = time.perf_counter() - t0

        from nilearn.maskers import NiftiLabelsMasker

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker = NiftiLabelsMasker(atlas.image, resampling_target="data", strategy="mean")
            masker.fit(images[0])
            t0 = time.perf_counter()
            for path in images:
                masker.transform(path)
            t_masker = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(images)
    print(f"images                           {n} (2 mm, AAL2, {len(ids)} ROIs, cube {args.cube_size}^3)")
    print(f"rgenima cubes+features           {t_ours:7.2f} s  ({1000 * t_ours / n:.1f} ms/image)")
    print(f"rgenima incl. float16 .npy write {t_ours_write:7.2f} s  ({1000 * t_ours_write / n:.1f} ms/image)")
    print(f"nilearn NiftiLabelsMasker means  {t_masker:7.2f} s  ({1000 * t_masker / n:.1f} ms/image)")
    print(
        f"ratio rgenima / masker           {t_ours / t_masker:7.2f}  (incl. write {t_ours_write / t_masker:.2f}; target <= 2)"
    )
    print(f"peak traced memory (rgenima)     {peak / 1e6:7.1f} MB")


if __name__ == "__main__":
    main()
