"""What every study notebook needs: its parameters, the cohort, and a privacy gate.

Each notebook in ``notebooks/`` starts with the same ``parameters`` cell (manifest, run
directory, seed, profile, modalities, backbone, folds) and builds a :class:`Study` from
it. Tables and figures go through :meth:`Study.publish` / :meth:`Study.glue_figure`
before they are shown: for a manifest marked ``restricted: true`` (ADNI) they are
refused when they carry a subject identifier of the cohort
(:func:`rgenima.privacy.assert_publishable`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgenima.data.manifest import Manifest, load_manifest

logger = logging.getLogger(__name__)


def parse_modalities(modalities: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"mri+snp"``, ``"mri,snp"`` or a sequence -> ("mri", "snp") in canonical order."""
    parts = modalities.replace("+", ",").split(",") if isinstance(modalities, str) else list(modalities)
    parts = [p.strip() for p in parts if p.strip()]
    unknown = sorted(set(parts) - {"mri", "snp"})
    if not parts or unknown:
        raise ValueError(f"'modalities' must be mri, snp or mri+snp; got {modalities!r}.")
    return tuple(m for m in ("mri", "snp") if m in parts)


@dataclass
class Study:
    """One study run: the notebook parameters, resolved.

    Attributes
    ----------
    manifest : Manifest
    run_dir : Path
        Holds ``prepared/``, ``models/``, ``explain/`` and the result tables.
    seed, folds : int
    profile : str
        Training profile ("quick", "default", "gpu").
    modalities : tuple of str
        The main configuration's modalities.
    backbone : str or None
        A local Hugging Face model directory; None for the default backbone.
    """

    manifest: Manifest
    run_dir: Path
    seed: int = 0
    profile: str = "default"
    modalities: tuple[str, ...] = ("mri", "snp")
    backbone: str | None = None
    folds: int = 5

    @classmethod
    def from_parameters(
        cls, manifest, run_dir, seed=0, profile="default", modalities="mri+snp", backbone=None, folds=5
    ) -> Study:
        """Build from a notebook's parameters (strings as papermill injects them)."""
        from rgenima.train import get_profile

        get_profile(profile)  # validates the name
        if int(folds) < 2:
            raise ValueError(f"'folds' must be at least 2; got {folds!r}.")
        return cls(
            manifest=load_manifest(manifest),
            run_dir=Path(run_dir),
            seed=int(seed),
            profile=str(profile),
            modalities=parse_modalities(modalities),
            backbone=backbone or None,
            folds=int(folds),
        )

    # -- names and paths ------------------------------------------------------------
    @property
    def configuration(self) -> str:
        """Folder name of the main configuration under ``models/`` (e.g. "rgenima_mri+snp")."""
        from rgenima.train import configuration_name

        return configuration_name(self.modalities, self.profile, self.backbone)

    @property
    def run(self):
        """The run directory's files (:class:`rgenima.run.Run`)."""
        from rgenima.run import Run

        return Run(self.run_dir)

    @property
    def restricted(self) -> bool:
        return bool(self.manifest.cohort.restricted)

    @property
    def truth_path(self) -> Path | None:
        """``truth.json`` of a synthetic cohort: the manifest's ``cohort.truth``, else the one
        next to its clinical table; None for real data."""
        from rgenima.data.clinical import resolve_clinical_path
        from rgenima.data.truth import locate_truth

        cohort = self.manifest.cohort
        return locate_truth(cohort.truth, resolve_clinical_path(cohort.clinical))

    def truth(self) -> dict | None:
        from rgenima.data.truth import read_truth

        return read_truth(self.truth_path) if self.truth_path else None

    # -- privacy --------------------------------------------------------------------
    @property
    def identifiers(self):
        """Every PTID and RID of the cohort (cached; see rgenima.privacy)."""
        if not hasattr(self, "_identifiers"):
            from rgenima.privacy import cohort_identifiers

            self._identifiers = cohort_identifiers(self.manifest)
        return self._identifiers

    def publish(self, obj: Any, what: str) -> Any:
        """Return ``obj`` for display, or raise PrivacyError if a restricted cohort's ID is in it."""
        if not self.restricted:
            return obj
        from rgenima.privacy import assert_publishable

        return assert_publishable(obj, self.identifiers, what)

    def glue_figure(self, key: str, figure, what: str | None = None):
        """Check a figure and glue it for a ``{glue:figure}`` with a caption (not displayed here).

        Returns None, so that a cell ending with this call does not show the figure a
        second time as the cell's value (the page shows it once, where it is glued).
        """
        import matplotlib.pyplot as plt
        from myst_nb import glue

        self.publish(figure, what or key)
        glue(key, figure, display=False)
        plt.close(figure)
        return None

    @staticmethod
    def glue_value(key: str, value: Any) -> Any:
        """Glue a number or text for ``{glue:text}`` in the narrative (not displayed here)."""
        from myst_nb import glue

        glue(key, value, display=False)
        return value
