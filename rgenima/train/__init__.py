"""Cross-validated training of R-GenIMA (being split into submodules)."""

from rgenima.train.fold_loop import *  # noqa: F403
from rgenima.train.fold_loop import _save_tensors, _tensors  # noqa: F401
