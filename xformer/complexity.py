"""Model facts: parameter count and multiply-accumulates, measured with PyTorch's own flop counter."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int | tuple[int, int] = 256, batch: int = 1) -> int:
    """MACs of one forward pass (convs and matmuls, attention maps included), i.e. counted FLOPs / 2."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    x = torch.zeros(batch, 3, height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2
