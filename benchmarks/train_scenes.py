"""Train xformer_xxs_seg on the rendered scenes with `xformer train` and report wall time and the held-out mIoU.

    python -m benchmarks.train_scenes [--out runs/train-scenes] [--epochs 6]
    cp runs/train-scenes/train_scenes.json benchmarks/results/scenes-training.json

The goal it prints: >= 0.6 mIoU on the held-out split (100 scenes never trained on) from a short CPU run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from xformer.scenes import write_scenes

GOAL_MIOU = 0.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/train-scenes"), help="data and run directory")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    console = Console()

    data = args.out / "scenes"
    if not data.exists():
        write_scenes(data)
    run = args.out / f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "xformer", "train", "xformer_xxs_seg", "--data", str(data), "--imgsz",
               "128x256", "--epochs", str(args.epochs), "--batch", "16", "--out", str(run)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    history = json.loads((run / "metrics.json").read_text())
    best = max(history, key=lambda row: row["miou"])
    summary = {"command": " ".join(command[1:]), "wall_seconds": round(wall, 1), "best_miou": best["miou"],
               "best_epoch": best["epoch"], "pixel_acc": best["pixel_acc"],
               "per_class_iou": {k: v["iou"] for k, v in json.loads((run / "best_per_class.json").read_text()).items()},
               "goal": f"mIoU >= {GOAL_MIOU}", "met": best["miou"] >= GOAL_MIOU}
    (args.out / "train_scenes.json").write_text(json.dumps(summary, indent=2))
    verdict = "met" if summary["met"] else "NOT met"
    console.print(f"train: {wall:.0f} s wall, best held-out mIoU {best['miou']:.2%} at epoch {best['epoch']} "
                  f"(goal {summary['goal']}: {verdict}); {args.out / 'train_scenes.json'}", highlight=False)


if __name__ == "__main__":
    main()
