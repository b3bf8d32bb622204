"""The weights' identity: a digest that names them across checkpoints and exported files, and whether they are
still the seeded ones `create_model` gave (parity checks do not judge quantisation error on those)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

__all__ = ["has_seeded_weights", "mark_seeded", "weights_sha256"]


def weights_sha256(model: nn.Module) -> str:
    """Digest of the weights alone (names, dtypes, shapes, bytes): identifies weights across formats."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def has_seeded_weights(model: nn.Module) -> bool:
    """True while `model` holds the seeded weights `create_model` gave it (no training has changed them)."""
    seeded = getattr(model, "seeded_weights_sha256", None)
    return seeded is not None and seeded == weights_sha256(model)


def mark_seeded(model: nn.Module) -> None:
    """Remember the digest of `model`'s current weights as untrained, so parity checks know not to judge
    quantisation error on them (it depends on trained weights) until the weights change."""
    model.seeded_weights_sha256 = weights_sha256(model)
