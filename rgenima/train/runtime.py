"""Where and how training runs: the accelerator (CPU, CUDA, DDP under torchrun), seeded
determinism, and the weight digests that show all ranks end with the same model."""

from __future__ import annotations

import numpy as np
import torch


def make_accelerator():
    """CUDA with bf16 autocast when present, else CPU (gloo under torchrun)."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    return Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")


def set_determinism(seed: int) -> None:
    """Seed torch's and numpy's global generators; on CPU, also ask torch for
    deterministic algorithms (a warning where an operation has none)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    if not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)


def weight_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in state-dict order."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_weight_digests(model: torch.nn.Module, accelerator) -> list[str]:
    """Each rank's final-weight digest (one entry on a single process): under DDP
    they must all be equal, and done.json records them so that this can be checked."""
    digest = weight_digest(model)
    if accelerator.num_processes == 1:
        return [digest]
    from accelerate.utils import gather_object

    return list(gather_object([digest]))
