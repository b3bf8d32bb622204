"""What a training run writes besides checkpoints: metrics per epoch (CSV and JSON) and the training curves."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..checkpoint import atomic_path
from ..errors import require

__all__ = ["write_curves", "write_metrics"]


def write_metrics(history: list[dict], run_dir: Path) -> None:
    """metrics.csv (one row per epoch, stable columns) and metrics.json, each replaced atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    for name, text in (("metrics.csv", buffer.getvalue()), ("metrics.json", json.dumps(history, indent=2))):
        with atomic_path(run_dir / name) as tmp:
            tmp.write_text(text)


SCORE_NAMES = {"top1": "top-1", "top5": "top-5", "miou": "mIoU", "pixel_acc": "pixel accuracy", "ap": "AP",
               "ap50": "AP50", "ap75": "AP75"}


def write_curves(history: list[dict], path: Path) -> None:
    """Loss, validation scores (top-1, mIoU, ...) and learning rate against epochs, one panel each."""
    require("matplotlib", "the training-curve plot", "train").use("Agg")
    plt = require("matplotlib.pyplot", "the training-curve plot", "train")

    epochs = [row["epoch"] for row in history]
    figure, (loss, top1, lr) = plt.subplots(1, 3, figsize=(12, 3.5))
    loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    loss.plot(epochs, [r["val_loss"] for r in history], label="val")
    loss.set(title="loss", xlabel="epoch")
    loss.legend()
    for key in [k for k in history[0] if k not in ("epoch", "train_loss", "val_loss", "lr", "seconds")]:
        top1.plot(epochs, [100 * r[key] for r in history], label=SCORE_NAMES.get(key, key))
    top1.set(title="val scores (%)", xlabel="epoch")
    top1.legend()
    lr.plot(epochs, [r["lr"] for r in history])
    lr.set(title="learning rate (end of epoch)", xlabel="epoch")
    lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
