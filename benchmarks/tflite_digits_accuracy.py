"""Held-out top-1 of every TFLite precision next to PyTorch's, on scikit-learn's digits (the accuracy gate).

    python -m benchmarks.tflite_digits_accuracy [--out runs/accuracy] [--converter litert-torch|onnx2tf]

Trains xformer_xxs at 64x64 as the test fixture does (benchmarks/digits.py, fixed seeds), calibrates static
precisions on 128 training images written as PNG files (the `--calib DIR` path users take), exports every
precision and writes OUT/tflite_digits.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.digits import load_digits_data, top1, train_digits_model
from xformer.export import export
from xformer.runtimes import load

PRECISIONS = ["fp32", "fp16", "dynamic-int8", "int8", "w8a16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/accuracy", help="where the files and tflite_digits.json go")
    parser.add_argument("--converter", default="litert-torch", choices=("litert-torch", "onnx2tf"),
                        help="TFLite converter route")
    parser.add_argument("--calibration-images", type=int, default=128,
                        help="training images written as PNG files for --calib")
    args = parser.parse_args()

    data = load_digits_data()
    model = train_digits_model(data, log=True)
    x = data.arrays(data.test_images)
    with torch.no_grad():
        result = {"pytorch": {"top1": top1(model(torch.from_numpy(x)).numpy(), data.test_labels)}}
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as calib:
        for i, image in enumerate(data.train_images[:args.calibration_images]):
            image.save(Path(calib) / f"{i:04d}.png")
        records = export(model, formats="tflite", precisions=PRECISIONS, out_dir=out / "digits", calib=calib,
                         tflite_converter=args.converter)
    for r in records:
        if not r.ok:
            result[r.precision] = {"error": r.error}
            continue
        runtime = load(r.path)
        logits = np.concatenate([runtime.run(s[None]) for s in x])
        result[r.precision] = {"top1": top1(logits, data.test_labels), "size_mb": round(r.size_mb, 3),
                               "gpu_incompatible_ops": r.details["gpu"]["incompatible"]}
    summary = {"dataset": f"sklearn digits, {len(x)} held-out images", "model": "xformer_xxs 64x64",
               "converter": args.converter, "calibration_images": args.calibration_images, "results": result}
    out.mkdir(parents=True, exist_ok=True)
    (out / "tflite_digits.json").write_text(json.dumps(summary, indent=2))
    reference = result["pytorch"]["top1"]
    print(f"\n{summary['dataset']}, {summary['model']}, {args.converter}")
    for name, entry in result.items():
        if "top1" in entry:
            print(f"  {name:13s} top-1 {entry['top1'] * 100:6.2f} %  ({(entry['top1'] - reference) * 100:+.2f} pt)")
        else:
            print(f"  {name:13s} failed: {entry['error']}")


if __name__ == "__main__":
    main()
