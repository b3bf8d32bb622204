"""Train xformer_xxs_yolov3 on the rendered shapes with `xformer train` and report wall time and held-out COCO AP50.

    python -m benchmarks.train_shapes [--out runs/train-shapes] [--epochs 12]

Writes benchmarks/results/shapes-detection.json. The goal it prints: AP50 >= 0.5 on the held-out split (images never
trained on) from a run of a few minutes on a 2-core CPU. The set and the options are what reached it here fastest:
small images (128 px, the shapes' own size, so the letterbox does not rescale), AdamW instead of the COCO recipe's
SGD (which needs far more steps from seeded weights), one warm-up epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from xformer.shapes import write_shapes

GOAL_AP50 = 0.5
RESULTS = Path(__file__).parent / "results" / "shapes-detection.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/train-shapes"), help="data and run directory")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train", type=int, default=600, help="training images")
    parser.add_argument("--size", type=int, default=128, help="image size and --imgsz")
    args = parser.parse_args()
    console = Console()

    data = args.out / f"shapes-{args.train}-{args.size}"
    if not data.exists():
        write_shapes(data, train=args.train, val=150, size=args.size)
    run = args.out / f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "xformer", "train", "xformer_xxs_yolov3", "--data", str(data), "--imgsz",
               str(args.size), "--epochs", str(args.epochs), "--batch", "16", "--optimizer", "adamw", "--lr", "3e-3",
               "--weight-decay", "0.01", "--warmup-epochs", "1", "--out", str(run)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    history = json.loads((run / "metrics.json").read_text())
    best = max(history, key=lambda row: row["ap50"])
    per_class = json.loads((run / "best_per_class.json").read_text())
    summary = {"command": " ".join(command[1:]), "wall_seconds": round(wall, 1), "load_average_at_start": load,
               "train_images": args.train, "val_images": 150, "best_ap50": best["ap50"], "ap": best["ap"],
               "ap75": best["ap75"], "best_epoch": best["epoch"],
               "epoch_seconds": [round(row["seconds"], 1) for row in history],
               "per_class_ap50": {k: v["ap50"] for k, v in per_class.items()},
               "goal": f"AP50 >= {GOAL_AP50}", "met": best["ap50"] >= GOAL_AP50}
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    verdict = "met" if summary["met"] else "NOT met"
    console.print(f"train: {wall:.0f} s wall (load average {load:.1f} at start), best held-out AP50 "
                  f"{best['ap50']:.2%} (AP {best['ap']:.2%}) at epoch {best['epoch']} (goal {summary['goal']}: "
                  f"{verdict}); {RESULTS}", highlight=False)


if __name__ == "__main__":
    main()
