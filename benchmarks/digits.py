"""A real held-out set for accuracy gates: scikit-learn's digits (1797 8x8 scans, bundled, no download).

`train_digits_model` trains xformer_xxs at 64x64 for about a minute, with fixed seeds, through the same
preprocessing contract every exported file embeds (the 8x8 scans are upscaled to 64x64 by it), so held-out
top-1 of PyTorch and of each exported file can be compared like for like. It trains on one thread: on a
shared two-core machine two OpenMP threads wait on each other and a step takes 15x longer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from xformer import PreprocessSpec, create_model, preprocess

__all__ = ["DIGITS_SPEC", "DigitsData", "load_digits_data", "top1", "train_digits_model"]

DIGITS_SPEC = PreprocessSpec(input_size=(64, 64), resize_size=None, interpolation="bilinear", scale=1 / 255,
                             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
LABELS = [str(i) for i in range(10)]


@dataclass
class DigitsData:
    train_images: list[Image.Image]
    train_labels: np.ndarray
    test_images: list[Image.Image]
    test_labels: np.ndarray

    def arrays(self, images: list[Image.Image]) -> np.ndarray:
        """NCHW float32 batch through the contract."""
        return np.concatenate([preprocess(image, DIGITS_SPEC) for image in images])


def load_digits_data(test_size: float = 0.3, seed: int = 0) -> DigitsData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 ink levels -> 8-bit grey
    images = [Image.fromarray(p, mode="L").convert("RGB") for p in pixels]
    train, test, y_train, y_test = train_test_split(images, digits.target, test_size=test_size, random_state=seed,
                                                    stratify=digits.target)
    return DigitsData(train, np.asarray(y_train), test, np.asarray(y_test))


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())


def train_digits_model(data: DigitsData, epochs: int = 5, seed: int = 0, log: bool = False) -> nn.Module:
    """xformer_xxs (10 classes, 64x64) trained with AdamW and a one-cycle schedule; returned in eval mode."""
    torch.manual_seed(seed)
    model = create_model("xformer_xxs", num_classes=10, labels=LABELS, preprocess=DIGITS_SPEC, seed=seed)
    x = torch.from_numpy(data.arrays(data.train_images))
    y = torch.from_numpy(data.train_labels).long()
    batch = 64
    steps = epochs * ((len(x) + batch - 1) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    generator = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), batch):
                idx = order[i: i + batch]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            if log:
                print(f"epoch {epoch + 1}: loss {loss.item():.3f}, {time.perf_counter() - start:.0f} s")
    finally:
        torch.set_num_threads(threads)
    return model.eval()
