"""Session fixtures shared across test files: models, the digits data set, ONE trained checkpoint and its
exported files (training and exporting are the slow parts of the suite, so each happens once, also across
pytest-xdist's worker processes: see `shared`)."""

import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock

# pytest-xdist's workers report an 80-column terminal: without this, rich lays our tables out at 80 columns and
# tests that read them would depend on how a run was started (test_cli.py checks what must hold at 80 columns).
os.environ["COLUMNS"] = "160"

from xformer.models import create_model, list_models  # noqa: E402

CLASSIFIERS = list_models(task="classify")
XFORMER_VARIANTS = [name for name in CLASSIFIERS if name.startswith(("xformer", "mobilevit"))]
SMOKE_VARIANT = "xformer_s"


def per_variant(names: list[str]) -> list:
    """Parameters for a conversion run once per variant: the default model in the default run (the smoke test),
    every other variant marked slow (`make test-all`), since each conversion costs seconds to a minute."""
    return [name if name == SMOKE_VARIANT else pytest.param(name, marks=pytest.mark.slow) for name in names]
# What `make demo` runs, shortened: xformer_xxs at 64x64 on the digits folder (about a minute and a half here).
# No loader processes: forking a test process that has loaded JAX (through the TFLite quantiser) can deadlock;
# the command-line runs in test_train.py use workers.
DIGITS_TRAINING = {"source": "xformer_xxs", "epochs": 10, "batch": 64, "imgsz": 64, "hflip": 0.0,
                   "crop_scale": 0.5, "seed": 0, "workers": 0}
DIGITS_PRECISIONS = ["fp32", "fp16", "dynamic-int8", "int8", "w8a16"]


def shared(name: str, tmp_path_factory, worker_id: str, produce):
    """`produce()` once per test run, by whichever pytest-xdist worker asks first (the others would train or export
    the same thing again): computed under a file lock beside the workers' temp dirs, pickled, loaded by the rest."""
    if worker_id == "master":  # not under xdist
        return produce()
    path = tmp_path_factory.getbasetemp().parent / f"{name}.pickle"
    with FileLock(f"{path}.lock"):
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = produce()
        path.write_bytes(pickle.dumps(value))
        return value


@pytest.fixture(scope="session")
def xformer_s():
    return create_model("xformer_s")


@pytest.fixture(scope="session")
def sample_photo():
    from xformer.samples import sample_images

    return sample_images()[1]  # chelsea.png, a cat


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory, worker_id) -> Path:
    from xformer.datasets import write_digits

    return shared("digits_root", tmp_path_factory, worker_id,
                  lambda: write_digits(tmp_path_factory.mktemp("data") / "digits"))


@pytest.fixture(scope="session")
def digits_run(digits_root, tmp_path_factory, worker_id):
    from xformer.train import train

    return shared("digits_run", tmp_path_factory, worker_id, lambda: train(
        {**DIGITS_TRAINING, "data": str(digits_root), "out": str(tmp_path_factory.mktemp("train"))}))


@pytest.fixture(scope="session")
def digits_model(digits_run):
    from xformer import load_checkpoint

    return load_checkpoint(digits_run.best)


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory, worker_id) -> Path:
    """The `xformer bench --cache-dir` the digits exports are written into, so bench tests reuse them."""
    return shared("bench_cache", tmp_path_factory, worker_id, lambda: tmp_path_factory.mktemp("bench-cache"))


@pytest.fixture(scope="session")
def digits_exports(digits_model, digits_root, bench_cache, tmp_path_factory, worker_id) -> dict:
    """ONNX fp32 and every TFLite precision of the trained checkpoint, static files calibrated on the training
    split, written where `xformer bench CKPT --data DIGITS --cache-dir bench_cache` looks for them."""
    from xformer.benchmarks.sources import export_dir
    from xformer.export import export

    def produce():
        calib = str(digits_root / "train")
        out = export_dir(digits_model, (64, 64), bench_cache, calib)
        # jobs=1, in this process: later tests reuse its ONNX graph and TFLite conversions
        records = export(digits_model, formats=["onnx", "tflite"], precisions=DIGITS_PRECISIONS, out_dir=out,
                         calib=calib, jobs=1)
        return {(r.format, r.precision): r for r in records}

    return shared("digits_exports", tmp_path_factory, worker_id, produce)


ONNX_QUANTISED = ["fp16", "int8", "int8-qop"]


@pytest.fixture(scope="session")
def digits_onnx_exports(digits_exports, digits_model, digits_root, bench_cache, tmp_path_factory, worker_id) -> dict:
    """ONNX fp16, static int8 QDQ and QOperator of the trained checkpoint beside its fp32 file (the float graph is
    reused from digits_exports), calibrated on the training split like the TFLite int8 file."""
    from xformer.benchmarks.sources import export_dir
    from xformer.export import export

    def produce():
        calib = str(digits_root / "train")
        records = export(digits_model, formats="onnx", precisions=ONNX_QUANTISED,
                         out_dir=export_dir(digits_model, (64, 64), bench_cache, calib), calib=calib)
        return {r.precision: r for r in records} | {"fp32": digits_exports[("onnx", "fp32")]}

    return shared("digits_onnx_exports", tmp_path_factory, worker_id, produce)


PTE_CALIBRATION_IMAGES = 419  # the digits training split, evenly sampled down to at most 500


@pytest.fixture(scope="session")
def digits_pte(digits_model, digits_root, tmp_path_factory, worker_id):
    """The session's digits checkpoint as fp32 and int8 .pte files (int8 calibrated on the training split): the
    ExecuTorch tests and the Android goldens share one export (lowering takes most of a minute per file)."""
    pytest.importorskip("executorch", reason="the 'executorch' extra is not installed")
    from xformer.export import export

    from .digits import load_digits_folder

    calib = digits_root / "train"
    records = shared("digits_pte", tmp_path_factory, worker_id, lambda: export(
        digits_model, formats="pte", precisions=["fp32", "int8"], out_dir=tmp_path_factory.mktemp("pte"),
        calib=str(calib)))
    data = load_digits_folder(digits_root, digits_model.model_config.preprocess)
    return SimpleNamespace(data=data, model=digits_model, calib=calib, records={r.precision: r for r in records})


# A short detection run: xformer_xxs_yolov3 on a small rendered-shapes set (benchmarks/train_shapes.py is the long
# one). Shared so detection tests (and export tests of detectors) reuse one trained checkpoint.
SHAPES_DATA = {"train": 200, "val": 50, "size": 96}
SHAPES_TRAINING = {"source": "xformer_xxs_yolov3", "epochs": 6, "batch": 4, "imgsz": 96, "optimizer": "adamw",
                   "lr": 3e-3, "weight_decay": 0.01, "warmup_epochs": 1, "scale_min": 0.75, "scale_max": 1.25,
                   "seed": 0, "workers": 0}
SHAPES_AP50_FLOOR = 0.15


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory, worker_id) -> Path:
    from xformer.shapes import write_shapes

    return shared("shapes_root", tmp_path_factory, worker_id,
                  lambda: write_shapes(tmp_path_factory.mktemp("data") / "shapes", **SHAPES_DATA))


@pytest.fixture(scope="session")
def shapes_run(shapes_root, tmp_path_factory, worker_id):
    from xformer.train import train

    return shared("shapes_run", tmp_path_factory, worker_id, lambda: train(
        {**SHAPES_TRAINING, "data": str(shapes_root), "out": str(tmp_path_factory.mktemp("train-det"))}))


@pytest.fixture(scope="session")
def shapes_model(shapes_run):
    from xformer import load_checkpoint

    return load_checkpoint(shapes_run.best)


@pytest.fixture(scope="session")
def shapes_exports(shapes_run, tmp_path_factory, worker_id) -> dict:
    """The trained shapes detector exported once per session to each format's default output form (ONNX with NMS
    in the graph, TFLite decoded), parity checked: {format: ArtifactRecord}."""
    from xformer.export import export

    records = shared("shapes_exports", tmp_path_factory, worker_id, lambda: export(
        shapes_run.best, formats="onnx,tflite", out_dir=tmp_path_factory.mktemp("det-export")))
    return {r.format: r for r in records}
