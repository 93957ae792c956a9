"""What training writes besides the model: tensors and optimiser state in safetensors
(no pickle), and the shared predictions table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima import STAGES
from rgenima.evaluate import PROBA_COLUMNS
from rgenima.fileio import atomic_write_text


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata={k: json.dumps(v) for k, v in (metadata or {}).items()},
    )
    os.replace(tmp, path)


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state in safetensors (tensors) + metadata (param groups), no pickle."""
    sd = optimizer.state_dict()
    tensors = {f"{idx}.{key}": value for idx, st in sd["state"].items() for key, value in st.items()}
    _save_tensors(path, tensors, {"param_groups": sd["param_groups"]})


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    from safetensors import safe_open

    state: dict[int, dict] = {}
    with safe_open(str(path), framework="pt") as fh:
        groups = json.loads(fh.metadata()["param_groups"])
        for key in fh.keys():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = fh.get_tensor(key)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def write_predictions(path: Path, ptids, folds, y_true: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """The shared predictions format: PTID, fold, y_true, y_pred, p_NC, p_SMC, p_MCI, p_AD."""
    table = pd.DataFrame({"PTID": list(ptids), "fold": np.asarray(folds, dtype=int)})
    table["y_true"] = [STAGES[i] for i in y_true]
    table["y_pred"] = [STAGES[i] for i in proba.argmax(axis=1)]
    for c, col in enumerate(PROBA_COLUMNS):
        table[col] = proba[:, c]
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6f"))
    return table
