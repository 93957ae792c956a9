"""``attributions.npz``: the per-subject attributions of one explained configuration.

The one reader of the file :mod:`rgenima.explain` writes (its layout is documented
there), with the names every later step uses: stages, contrast groups, ROI x gene
directions, and the NaN-aware group means shared by signatures, recovery and validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rgenima import STAGES
from rgenima.errors import DataContractError

#: Columns of ``roi_attribution.csv`` and ``gene_attribution.csv``, in order.
ATTRIBUTION_COLUMNS: tuple[str, ...] = ("name", "stage", "method", "score", "ci_low", "ci_high", "rank")
#: Columns of ``roi_gene.csv``, in order.
ROI_GENE_COLUMNS: tuple[str, ...] = ("stage", "direction", "roi", "gene", "score", "rank")
#: Suffix of the method name on mean-level rows (mean |attribution| per stage).
MEAN_SUFFIX = "@mean_abs"
#: Directions of the ROI x gene association arrays (``roi_gene__<direction>``).
DIRECTIONS: tuple[str, ...] = ("gene_to_roi", "roi_to_gene", "occlusion")
#: Reference group of the stage signatures, and the stages contrasted with it.
REFERENCE_STAGE = "NC"
CONTRAST_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s != REFERENCE_STAGE)
#: Group label of "every subject" in level tables.
ALL = "all"

_KINDS = ("roi", "gene", "snp")
_NAME_KEYS = {"roi": ("roi_names",), "gene": ("gene_names",), "snp": ("snp_names", "snp_gene")}
_SUBJECT_KEYS = ("ptid", "label", "pred", "fold")
#: Attribution methods of rgenima.explain, in the order of its output arrays (and of
#: every table and figure).
METHODS: tuple[str, ...] = (
    "attention",
    "rollout",
    "relevance",
    "integrated_gradients",
    "occlusion",
    "occlusion_contrast",
    "atrophy_sensitivity",
)
_PREFERRED_METHODS = METHODS
_RANDOM = "random__"


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------
def _method_order(method: str) -> tuple:
    if method in _PREFERRED_METHODS:
        return (0, _PREFERRED_METHODS.index(method), 0, method)
    m = re.fullmatch(r"attention_L(\d+)", method)
    if m:
        return (1, 0, int(m.group(1)), method)
    return (2, 0, 0, method)


@dataclass(frozen=True)
class Attributions:
    """Per-subject attributions of one configuration (the content of ``attributions.npz``).

    Attributes
    ----------
    path : Path
        The file read (named in every error).
    ptid : ndarray of str, shape (n_subjects,)
    label : ndarray of int, shape (n_subjects,)
        True stage index into :data:`rgenima.STAGES`.
    pred : ndarray of int, shape (n_subjects,)
    fold : ndarray of int, shape (n_subjects,)
    roi_names : ndarray of str, shape (n_rois,) or None when there are no ROI arrays
    gene_names : ndarray of str, shape (n_genes,) or None when there are no gene arrays
    snp_names, snp_gene : ndarray of str, shape (n_snps,) or None
    arrays : dict of str to ndarray
        Every attribution array by its npz key: ``roi__<method>`` (n_subjects, n_rois),
        ``gene__<method>`` (n_subjects, n_genes), ``snp__<method>`` (n_subjects, n_snps),
        ``roi_gene__<direction>`` (n_subjects, n_rois, n_genes), and ``random__``
        versions. NaN marks a missing value.
    """

    path: Path
    ptid: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    fold: np.ndarray
    roi_names: np.ndarray | None
    gene_names: np.ndarray | None
    snp_names: np.ndarray | None
    snp_gene: np.ndarray | None
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_subjects(self) -> int:
        return int(self.label.shape[0])

    @property
    def stage(self) -> np.ndarray:
        """Stage name of each subject, ndarray of str, shape (n_subjects,)."""
        return np.asarray(STAGES, dtype=object)[self.label]

    def stage_counts(self) -> dict[str, int]:
        """Subjects per stage, in :data:`STAGES` order (0 for an absent stage)."""
        return {s: int((self.label == k).sum()) for k, s in enumerate(STAGES)}

    def names(self, kind: str) -> np.ndarray:
        """Feature names of ``kind`` ('roi', 'gene' or 'snp')."""
        self._check_kind(kind)
        names = {"roi": self.roi_names, "gene": self.gene_names, "snp": self.snp_names}[kind]
        if names is None:
            raise DataContractError(
                f"{self.path}: no {kind} attributions (no '{kind}__<method>' arrays; "
                f"{'an SNP-only' if kind == 'roi' else 'an MRI-only'} configuration?)."
            )
        return names

    def has(self, kind: str) -> bool:
        """Whether any ``<kind>__<method>`` array is present."""
        self._check_kind(kind)
        return bool(self.methods(kind))

    def methods(self, kind: str, random: bool = False) -> list[str]:
        """Methods with a ``<kind>__<method>`` array (``random__<kind>__`` if ``random``),
        ordered attention, rollout, integrated_gradients, attention_L0, L1, ..., others."""
        self._check_kind(kind)
        prefix = (_RANDOM if random else "") + f"{kind}__"
        found = [k[len(prefix) :] for k in self.arrays if k.startswith(prefix)]
        return sorted(found, key=_method_order)

    def get(self, kind: str, method: str, random: bool = False) -> np.ndarray:
        """Attribution array of shape (n_subjects, n_features) as float64."""
        available = self.methods(kind, random=random)
        if not self.methods(kind):
            self.names(kind)  # raises: no arrays of this kind at all
        if method not in available:
            key = (_RANDOM if random else "") + f"{kind}__{method}"
            raise DataContractError(
                f"{self.path}: no array '{key}'. 'method' must be one of {tuple(available)}; got {method!r}."
            )
        key = (_RANDOM if random else "") + f"{kind}__{method}"
        return np.asarray(self.arrays[key], dtype=np.float64)

    def directions(self) -> list[str]:
        """Directions with a ``roi_gene__<direction>`` array."""
        return [d for d in DIRECTIONS if f"roi_gene__{d}" in self.arrays]

    def roi_gene(self, direction: str = "gene_to_roi") -> np.ndarray:
        """ROI x gene association of shape (n_subjects, n_rois, n_genes), float64."""
        if direction not in DIRECTIONS:
            raise ValueError(f"'direction' must be one of {DIRECTIONS}; {direction!r} was provided.")
        key = f"roi_gene__{direction}"
        if key not in self.arrays:
            raise DataContractError(f"{self.path}: missing array '{key}'.")
        return np.asarray(self.arrays[key], dtype=np.float64)

    def _check_kind(self, kind: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"'kind' must be one of {_KINDS}; {kind!r} was provided.")


def load_attributions(path: str | Path) -> Attributions:
    """Read and check an ``attributions.npz`` written by :mod:`rgenima.explain`.

    Parameters
    ----------
    path : str or Path
        The npz file (read with ``allow_pickle=False``: names must be stored as
        fixed-width unicode arrays, never as pickled objects).

    Returns
    -------
    Attributions

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataContractError
        If a required array is missing (the message names the file and the key), an
        array has the wrong shape, or a label is outside 0..3.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attributions file not found: {path} (run the explain step first).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays need pickle
        raise DataContractError(
            f"{path}: cannot be read without unpickling ({exc}); names must be stored as unicode string arrays."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - zip/format errors
        raise DataContractError(f"{path}: not a readable npz file ({exc}).") from exc

    def need(key: str, why: str | None = None) -> np.ndarray:
        if key not in data:
            reason = f" (needed by '{why}')" if why else ""
            raise DataContractError(f"{path}: missing array '{key}'{reason}; found {sorted(data)}.")
        return data[key]

    subject = {k: need(k) for k in _SUBJECT_KEYS}
    n = subject["label"].shape[0]
    for k, v in subject.items():
        if v.ndim != 1 or v.shape[0] != n:
            raise DataContractError(f"{path}: array '{k}' must have shape ({n},) like 'label'; got {v.shape}.")
    label = subject["label"]
    if not np.issubdtype(label.dtype, np.integer):
        if np.issubdtype(label.dtype, np.floating) and np.all(np.isfinite(label)) and np.all(label == np.round(label)):
            label = label.astype(np.int64)
        else:
            raise DataContractError(f"{path}: array 'label' must hold integer stage indices; got dtype {label.dtype}.")
    bad = (label < 0) | (label >= len(STAGES))
    if bad.any():
        raise DataContractError(
            f"{path}: array 'label' must lie in 0..{len(STAGES) - 1} (index into "
            f"{STAGES}); got {sorted(set(label[bad].tolist()))}."
        )

    names: dict[str, np.ndarray | None] = {"roi_names": None, "gene_names": None, "snp_names": None, "snp_gene": None}
    sizes: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    keys = [k for k in data if k not in _SUBJECT_KEYS and k not in names]
    for kind in _KINDS:
        users = [k for k in keys if k.startswith(f"{kind}__") or k.startswith(f"{_RANDOM}{kind}__")]
        if not users:
            continue
        read = {nk: np.asarray(need(nk, users[0])).astype(str) for nk in _NAME_KEYS[kind]}
        names.update(read)
        sizes[kind] = read[_NAME_KEYS[kind][0]].shape[0]
        for nk in _NAME_KEYS[kind][1:]:
            if read[nk].shape != (sizes[kind],):
                raise DataContractError(
                    f"{path}: array '{nk}' must have shape ({sizes[kind]},) like "
                    f"'{_NAME_KEYS[kind][0]}'; got {read[nk].shape}."
                )
        for k in users:
            if data[k].shape != (n, sizes[kind]):
                raise DataContractError(
                    f"{path}: array '{k}' must have shape (n_subjects, n_{kind}s) = "
                    f"({n}, {sizes[kind]}); got {data[k].shape}."
                )
            arrays[k] = data[k]
    for direction in DIRECTIONS:
        k = f"roi_gene__{direction}"
        if k not in data:
            continue
        roi_names, gene_names = names["roi_names"], names["gene_names"]
        if roi_names is None:
            roi_names = names["roi_names"] = np.asarray(need("roi_names", k)).astype(str)
        if gene_names is None:
            gene_names = names["gene_names"] = np.asarray(need("gene_names", k)).astype(str)
        shape = (n, roi_names.shape[0], gene_names.shape[0])
        if data[k].shape != shape:
            raise DataContractError(
                f"{path}: array '{k}' must have shape (n_subjects, n_rois, n_genes) = {shape}; got {data[k].shape}."
            )
        arrays[k] = data[k]
    return Attributions(
        path=path,
        ptid=subject["ptid"].astype(str),
        label=label.astype(np.int64),
        pred=subject["pred"],
        fold=subject["fold"],
        arrays=arrays,
        **names,
    )


# ---------------------------------------------------------------------------------
# Group means
# ---------------------------------------------------------------------------------
def _group_masks(label: np.ndarray) -> dict[str, np.ndarray]:
    masks = {s: label == k for k, s in enumerate(STAGES)}
    masks[ALL] = np.ones(label.shape[0], dtype=bool)
    return masks


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN, NaN where a column has no finite value; (n, F) -> (F,)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=0)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _mean_matrix(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NaN-aware mean over the masked subjects of (n, R, G) -> (R, G)."""
    sub = values[mask]
    return _nanmean(sub.reshape(sub.shape[0], -1)).reshape(values.shape[1:])
