"""The run directory: one owner for its layout.

Every step of the study writes into one run directory (``RUNDIR``; the layout is drawn in
the book's Architecture page). :class:`Run` names each file once, so that a step reads
what another wrote through the same path, and answers the questions several steps ask:
which configurations were trained or explained, which one is the main one, what
``prepare.json`` recorded, and where the synthetic cohort's ``truth.json`` is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: The preparation record inside ``prepared/`` (also inside its temporary build folders).
PREPARE_RECORD = "prepare.json"
#: Prefix of the main configuration's folder (two modalities; a suffix names the profile).
MAIN_PREFIX = "rgenima_mri+snp"


def read_prepare_record(prepared: str | Path) -> dict | None:
    """The ``prepare.json`` of a prepared folder, or None if it is missing or unreadable.

    Parameters
    ----------
    prepared : str or pathlib.Path
        A ``RUNDIR/prepared`` folder.

    Returns
    -------
    dict or None
        None when the file is absent, truncated or not a JSON object (an interrupted
        or damaged cache, which :func:`rgenima.data.cohort.prepare_cohort` rebuilds).
    """
    path = Path(prepared) / PREPARE_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True)
class PreparedDir:
    """The files of a prepared cohort (``RUNDIR/prepared/``, or its temporary build
    folder): what :func:`rgenima.data.cohort.prepare_cohort` writes and
    :class:`rgenima.model.inputs.PreparedData` reads. Every array's rows follow
    ``subjects.csv``.

    Parameters
    ----------
    path : Path
    """

    path: Path

    @property
    def prepare_json(self) -> Path:
        """Manifest, settings, input hashes and QC summary (written last)."""
        return self.path / PREPARE_RECORD

    @property
    def subjects_csv(self) -> Path:
        return self.path / "subjects.csv"

    @property
    def cubes(self) -> Path:
        return self.path / "cubes"

    def cube_file(self, row: int) -> Path:
        """The ROI cubes, (n_rois, D, D, D) float16, of the subject in row ``row``."""
        return self.cubes / f"{row:05d}.npy"

    @property
    def roi_features_npz(self) -> Path:
        return self.path / "roi_features.npz"

    @property
    def rois_tsv(self) -> Path:
        return self.path / "rois.tsv"

    @property
    def snps_tsv(self) -> Path:
        return self.path / "snps.tsv"

    @property
    def dosage_npy(self) -> Path:
        return self.path / "dosage.npy"

    @property
    def prompts_jsonl(self) -> Path:
        return self.path / "prompts.jsonl"

    @property
    def data_report_json(self) -> Path:
        return self.path / "data_report.json"

    @property
    def snp_qc_tsv(self) -> Path:
        return self.path / "snp_qc.tsv"

    @property
    def sample_qc_tsv(self) -> Path:
        return self.path / "sample_qc.tsv"


@dataclass(frozen=True)
class FoldDir:
    """The files of one trained fold (``models/<configuration>/fold_<k>/``, or the
    permuted-label fold of the explain step): what rgenima.train writes and resumes from.

    Parameters
    ----------
    path : Path
    """

    path: Path

    @property
    def state_json(self) -> Path:
        """Epoch history and resume state."""
        return self.path / "state.json"

    @property
    def best(self) -> Path:
        """The kept weights (warm starts read them)."""
        return self.path / "best.safetensors"

    @property
    def last(self) -> Path:
        return self.path / "last.safetensors"

    @property
    def average(self) -> Path:
        return self.path / "average.safetensors"

    @property
    def optimizer(self) -> Path:
        return self.path / "optimizer.safetensors"

    @property
    def pretrained(self) -> Path:
        """The kept model as a pretrained folder (RGenIMAForStaging.from_pretrained)."""
        return self.path / "pretrained"

    @property
    def predictions_csv(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def done_json(self) -> Path:
        """Written last: the fold is finished."""
        return self.path / "done.json"


@dataclass(frozen=True)
class Run:
    """A run directory and the paths of its files.

    Parameters
    ----------
    path : str or Path
        ``RUNDIR`` (``rgenima prepare --out`` / ``rgenima train --out``).
    """

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    # -- preparation ---------------------------------------------------------------
    @property
    def prepared(self) -> Path:
        return self.path / "prepared"

    @property
    def prepared_files(self) -> PreparedDir:
        return PreparedDir(self.prepared)

    @property
    def prepare_json(self) -> Path:
        return self.prepared_files.prepare_json

    @property
    def rois_tsv(self) -> Path:
        return self.prepared_files.rois_tsv

    def cube_file(self, row: int) -> Path:
        """The ROI cubes of the subject in row ``row`` of ``subjects.csv``."""
        return self.prepared_files.cube_file(row)

    @property
    def snp_qc_tsv(self) -> Path:
        return self.prepared_files.snp_qc_tsv

    @property
    def sample_qc_tsv(self) -> Path:
        return self.prepared_files.sample_qc_tsv

    def prepare_record(self) -> dict | None:
        """``prepare.json`` (manifest, settings, input hashes), or None if absent or unreadable."""
        return read_prepare_record(self.prepared)

    def gene_panel(self) -> Path | None:
        """The gene panel the run was prepared with (None: not recorded)."""
        recorded = ((self.prepare_record() or {}).get("manifest") or {}).get("gene_panel")
        return Path(recorded) if recorded else None

    def truth_path(self) -> Path | None:
        """The synthetic cohort's ``truth.json``, or None (real data, or not found).

        The manifest's optional ``cohort.truth`` entry, as recorded in ``prepare.json``;
        without it, ``truth.json`` beside the clinical table, where ``rgenima synth``
        writes it.
        """
        from rgenima.data.truth import locate_truth

        cohort = ((self.prepare_record() or {}).get("manifest") or {}).get("cohort") or {}
        path = locate_truth(cohort.get("truth") or None, cohort.get("clinical") or None)
        if path is not None and not path.is_file():
            # The manifest was checked when the run was prepared; the file went since.
            logger.warning("%s: the manifest's truth file %s is missing", self.prepare_json, path)
            return None
        return path

    # -- training ------------------------------------------------------------------
    @property
    def folds_csv(self) -> Path:
        return self.path / "folds.csv"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def model_dir(self, configuration: str) -> Path:
        return self.models / configuration

    def fold_dir(self, configuration: str, fold: int) -> Path:
        return self.model_dir(configuration) / f"fold_{fold}"

    def fold(self, configuration: str, fold: int) -> FoldDir:
        """The files of one fold of ``configuration``."""
        return FoldDir(self.fold_dir(configuration, fold))

    def fold_checkpoint(self, configuration: str, fold: int) -> Path:
        """The kept weights of one fold (``best.safetensors``; warm starts read them)."""
        return self.fold(configuration, fold).best

    def fold_pretrained(self, configuration: str, fold: int) -> Path:
        """The fold's kept model as a pretrained folder (RGenIMAForStaging.from_pretrained)."""
        return self.fold(configuration, fold).pretrained

    def fold_predictions_csv(self, configuration: str, fold: int) -> Path:
        return self.fold(configuration, fold).predictions_csv

    def backbone_dir(self, profile: str) -> Path:
        """The default language model trained for ``profile``."""
        return self.path / "backbone" / profile

    def training_json(self, configuration: str) -> Path:
        return self.model_dir(configuration) / "training.json"

    def predictions_csv(self, configuration: str) -> Path:
        return self.model_dir(configuration) / "predictions.csv"

    @property
    def timings_json(self) -> Path:
        return self.path / "timings.json"

    def fold_states(self, configuration: str) -> list[Path]:
        """``fold_<k>/state.json`` (training history) of every fold of ``configuration``, sorted."""
        return sorted(self.model_dir(configuration).glob("fold_*/state.json"))

    def all_predictions(self) -> list[Path]:
        """``models/*/predictions.csv`` of every trained model (R-GenIMA and baselines), sorted."""
        return sorted(self.models.glob("*/predictions.csv"))

    def trained_configurations(self) -> list[str]:
        """R-GenIMA configurations with a ``training.json``, sorted."""
        return sorted(p.parent.name for p in self.models.glob("rgenima_*/training.json"))

    def main_configuration(self, configuration: str | None = None) -> str:
        """The configuration the study reports first: ``configuration`` if given (it must
        be trained), else ``rgenima_mri+snp`` when trained, else the only
        ``rgenima_mri+snp__*`` one.

        Raises
        ------
        FileNotFoundError
            If the requested or default configuration is not trained.
        ValueError
            If several ``rgenima_mri+snp__*`` configurations exist and none is named.
        """
        trained = self.trained_configurations()
        if configuration is not None:
            if configuration not in trained:
                raise FileNotFoundError(
                    f"'configuration' must be one of the trained configurations in {self.models} {trained}; "
                    f"got {configuration!r}."
                )
            return configuration
        main = [c for c in trained if c == MAIN_PREFIX or c.startswith(MAIN_PREFIX + "__")]
        if MAIN_PREFIX in main:
            return MAIN_PREFIX
        if len(main) == 1:
            return main[0]
        if not main:
            raise FileNotFoundError(
                f"{self.models}: no trained {MAIN_PREFIX} configuration (training.json); found {trained}. "
                "Train one with `rgenima train`, or pass --configuration."
            )
        raise ValueError(f"{self.models}: several {MAIN_PREFIX} configurations {main}; pass 'configuration'.")

    # -- evaluation ----------------------------------------------------------------
    @property
    def metrics_json(self) -> Path:
        return self.path / "metrics.json"

    def external_dir(self, cohort: str) -> Path:
        return self.path / "external" / cohort

    # -- interpretation ------------------------------------------------------------
    def explain_dir(self, configuration: str) -> Path:
        return self.path / "explain" / configuration

    def attributions_npz(self, configuration: str) -> Path:
        return self.explain_dir(configuration) / "attributions.npz"

    def sanity_json(self, configuration: str) -> Path:
        return self.explain_dir(configuration) / "sanity.json"

    def explain_json(self, configuration: str) -> Path:
        return self.explain_dir(configuration) / "explain.json"

    def validation_csv(self, configuration: str) -> Path:
        return self.explain_dir(configuration) / "validation.csv"

    def configuration_recovery_json(self, configuration: str) -> Path:
        return self.explain_dir(configuration) / "recovery.json"

    def label_randomised_dir(self, configuration: str, fold: int) -> Path:
        """The fold retrained on permuted labels (label randomisation)."""
        return self.explain_dir(configuration) / "label_randomised" / f"fold_{fold}"

    def read_sanity(self, configuration: str) -> dict | None:
        path = self.sanity_json(configuration)
        return json.loads(path.read_text()) if path.is_file() else None

    def explain_records(self) -> list[Path]:
        """``explain/*/explain.json`` of every explained configuration, sorted."""
        return sorted((self.path / "explain").glob("*/explain.json"))

    def explained_configurations(self) -> list[str]:
        """Configurations with an ``attributions.npz``, sorted."""
        folder = self.path / "explain"
        return sorted(p.parent.name for p in folder.glob("*/attributions.npz")) if folder.is_dir() else []

    def find_attributions(self, configuration: str | None = None) -> Path:
        """``attributions.npz`` of ``configuration``; by default the main configuration's
        if explained, else the only explained one.

        Raises
        ------
        FileNotFoundError
            If the file is missing, or several configurations exist and none is chosen.
        """
        if configuration is not None:
            path = self.attributions_npz(configuration)
            if not path.is_file():
                raise FileNotFoundError(
                    f"attributions file not found: {path} (run the explain step for "
                    f"configuration {configuration!r} first)."
                )
            return path
        found = self.explained_configurations()
        if not found:
            raise FileNotFoundError(
                f"no attributions found under {self.path / 'explain'} (expected "
                "explain/<configuration>/attributions.npz; run the explain step first)."
            )
        if MAIN_PREFIX in found:
            return self.attributions_npz(MAIN_PREFIX)
        if len(found) == 1:
            return self.attributions_npz(found[0])
        raise FileNotFoundError(
            f"several explained configurations under {self.path / 'explain'}: {found}; "
            "'configuration' must name one of them."
        )

    @property
    def roi_attribution_csv(self) -> Path:
        return self.path / "roi_attribution.csv"

    @property
    def gene_attribution_csv(self) -> Path:
        return self.path / "gene_attribution.csv"

    @property
    def roi_gene_csv(self) -> Path:
        return self.path / "roi_gene.csv"

    @property
    def recovery_json(self) -> Path:
        return self.path / "recovery.json"

    @property
    def enrichment_csv(self) -> Path:
        return self.path / "enrichment.csv"

    @property
    def enrichment_controls_json(self) -> Path:
        return self.path / "enrichment_controls.json"

    def book_files(self) -> dict[str, Path]:
        """Every file the book's chapters read, by name (for checks and tests)."""
        main = self.main_configuration()
        return {
            "prepare.json": self.prepare_json,
            "folds.csv": self.folds_csv,
            "training.json": self.training_json(main),
            "predictions.csv": self.predictions_csv(main),
            "metrics.json": self.metrics_json,
            "attributions.npz": self.attributions_npz(main),
            "sanity.json": self.sanity_json(main),
            "explain.json": self.explain_json(main),
            "validation.csv": self.validation_csv(main),
            "roi_attribution.csv": self.roi_attribution_csv,
            "gene_attribution.csv": self.gene_attribution_csv,
            "roi_gene.csv": self.roi_gene_csv,
            "enrichment.csv": self.enrichment_csv,
            "enrichment_controls.json": self.enrichment_controls_json,
        }
