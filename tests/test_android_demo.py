"""The Android demo (android_demo/): the Java core's JUnit suite with golden files written by the Python reference,
the offline smoke APK, and `xformer android`.

The Java side needs a JDK and Debian's aapt/zipalign/apksigner/junit4 plus the shared android.jar and dx .debs;
`android_demo/scripts/offline_build.sh setup` installs and extracts them (as root, which CI is). The golden files
include real .tflite files; exporting them once per session is most of this module's time (about 110 s on two
cores: the fp32 conversion about 40 s, the PT2E int8 one about 65 s, int8 I/O reuses it). The .pte programs come
from the `digits_pte` session fixture (conftest.py), which test_export_pte.py shares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from xformer.cli import main
from xformer.export.metadata import build_metadata, write_tflite_metadata
from xformer.models import create_model

from .android_goldens import export_golden_models, write_goldens

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
SCRIPT = DEMO / "scripts" / "offline_build.sh"
GOLDEN_TEST = "org.xformer.demo.core.GoldenParityTest"
# Enough of a flatbuffer header for readers that check the "TFL3" identifier; the metadata checks need no more.
FAKE_FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(56)
FAKE_PROGRAM = b"\x3c\x00\x00\x00ET12" + bytes(56)  # an ExecuTorch program's header


def _unwrapped(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def android_env(tmp_path_factory) -> dict:
    env = {**os.environ, "XFORMER_ANDROID_BUILD": str(tmp_path_factory.mktemp("android_build"))}
    result = _run(env, "setup")
    assert result.returncode == 0, f"Android tool setup failed:\n{result.stdout}\n{result.stderr}"
    return env


@pytest.fixture(scope="session")
def golden_models(tmp_path_factory) -> dict[str, Path]:
    start = time.perf_counter()
    models = export_golden_models(tmp_path_factory.mktemp("android_golden_models"))
    print(f"\nexported the golden .tflite files in {time.perf_counter() - start:.1f} s")
    return models


@pytest.fixture(scope="module")
def pte_models(digits_pte) -> dict[str, Path]:
    """The trained digits model's .pte programs (fp32 and int8), shared with test_export_pte.py."""
    return {f"pte_{precision}": record.path for precision, record in digits_pte.records.items()}


@pytest.fixture(scope="module")
def goldens(tmp_path_factory, golden_models, pte_models) -> Path:
    root = tmp_path_factory.mktemp("android_goldens")
    write_goldens(root, golden_models, pte_models)
    return root


@pytest.fixture()
def project(tmp_path) -> Path:
    """A copy of the Android project, so tests never touch the real app's assets."""
    copy = tmp_path / "android_demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("build", "*.tflite"))
    return copy


def _model_file(path: Path, **changes) -> Path:
    """A .tflite or .pte stand-in (file header + our metadata); `changes` overwrite metadata keys (None deletes)."""
    fmt = path.suffix[1:]
    metadata = build_metadata(create_model("xformer_xxs"), format=fmt, precision="fp32", layout="NHWC",
                              input={"dtype": "float32"})
    for key, value in changes.items():
        if value is None:
            metadata.pop(key)
        else:
            metadata[key] = value
    path.write_bytes(write_tflite_metadata(FAKE_FLATBUFFER if fmt == "tflite" else FAKE_PROGRAM, metadata))
    return path


def test_junit_suite_and_golden_parity_pass(android_env, goldens):
    models = json.loads((goldens / "manifest.json").read_text())["models"]
    assert {m["name"] for m in models} == {"fp32", "int8", "int8_io", "pte_fp32", "pte_int8"}
    assert all(m["file"].endswith(".pte") and m["images"] for m in models if m["name"].startswith("pte"))
    result = _run(android_env, "test", str(goldens))
    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.search(r"OK \((\d+) tests\)", result.stdout)
    assert ran and int(ran.group(1)) >= 45, result.stdout


def test_a_golden_mismatch_fails_the_junit_run(android_env, goldens, tmp_path):
    """Perturb expected input tensors (a float one by 1e-3, an int8 one of a real model by 1) and expected top-5
    entries (raw outputs and a real int8-I/O model): the Java run must fail on each."""
    broken = tmp_path / "goldens"
    broken.mkdir()
    for f in goldens.iterdir():
        (broken / f.name).symlink_to(f)

    def rewrite(name: str, array: np.ndarray) -> None:
        (broken / name).unlink()
        array.tofile(broken / name)

    manifest = json.loads((goldens / "manifest.json").read_text())
    case = manifest["preprocess"][0]
    tensor = np.fromfile(goldens / case["expected"], dtype="<f4")
    tensor[1234] += 1e-3
    rewrite(case["expected"], tensor)
    manifest["postprocess"][0]["top5"][0]["index"] += 1
    int8_io = next(m for m in manifest["models"] if m["name"] == "int8_io")
    assert int8_io["input"]["dtype"] == "int8" and int8_io["output"]["dtype"] == "int8"
    fed = int8_io["images"][0]
    model_input = np.fromfile(goldens / fed["input"], dtype=np.int8)
    model_input[777] ^= 1
    rewrite(fed["input"], model_input)
    ranked = int8_io["images"][1]
    ranked["top5"][0]["index"] += 1
    pte = next(m for m in manifest["models"] if m["name"] == "pte_int8")
    pte_fed = pte["images"][2]
    pte_input = np.fromfile(goldens / pte_fed["input"], dtype="<f4")
    pte_input[777] += 1e-3
    rewrite(pte_fed["input"], pte_input)
    pte_ranked = pte["images"][3]
    pte_ranked["top5"][1]["index"] += 1
    (broken / "manifest.json").unlink()
    (broken / "manifest.json").write_text(json.dumps(manifest))

    result = _run(android_env, "test", str(broken), GOLDEN_TEST)
    assert result.returncode != 0
    assert f"{case['name']}: max difference" in result.stdout and "at element 1234" in result.stdout
    assert f"{manifest['postprocess'][0]['name']} rank 1" in result.stdout
    assert f"{fed['name']}: max difference 1.0 at element 777" in result.stdout
    assert f"{ranked['name']} rank 1" in result.stdout
    assert f"{pte_fed['name']}: max difference" in result.stdout
    assert f"{pte_ranked['name']} rank 2" in result.stdout


def test_android_command_installs_a_model_and_prints_the_build_command(project, golden_models, capsys):
    model = golden_models["fp32"]
    assert main(["android", str(model), "--project", str(project)]) == 0
    out = _unwrapped(capsys.readouterr().out)
    installed = project / "app/src/main/assets/xformer_xxs_fp32.tflite"
    assert installed.read_bytes() == model.read_bytes()
    assert [p.name for p in installed.parent.iterdir()] == [installed.name]  # no temporary file left behind
    assert "./gradlew installDebug" in out and "1000 labels" in out and "64x64 NHWC" in out


def test_android_command_installs_a_pte_program(project, pte_models, capsys):
    model = pte_models["pte_int8"]
    assert main(["android", str(model), "--project", str(project)]) == 0
    out = _unwrapped(capsys.readouterr().out)
    installed = project / "app/src/main/assets" / model.name
    assert installed.read_bytes() == model.read_bytes()
    assert "10 labels" in out and "64x64 NHWC" in out and "int8" in out and model.name in out


def test_android_command_rejects_unusable_pte_files(project, tmp_path, capsys):
    from executorch.exir import to_edge_transform_and_lower

    foreign = tmp_path / "foreign.pte"
    foreign.write_bytes(to_edge_transform_and_lower(torch.export.export(torch.nn.Linear(4, 2), (torch.rand(1, 4),)))
                        .to_executorch().buffer)
    assert main(["android", str(foreign), "--project", str(project)]) == 2
    err = _unwrapped(capsys.readouterr().err)
    assert "foreign.pte carries no xformer metadata" in err and "--formats pte" in err
    not_pte = tmp_path / "fake.pte"
    not_pte.write_bytes(b"\x00" * 64)
    assert main(["android", str(not_pte), "--project", str(project)]) == 2
    assert "not an ExecuTorch program" in _unwrapped(capsys.readouterr().err)
    coreml = _model_file(tmp_path / "coreml.pte", export={"format": "pte", "backend": "coreml"})
    assert main(["android", str(coreml), "--project", str(project)]) == 2
    assert "the coreml backend" in _unwrapped(capsys.readouterr().err)
    tflite_metadata = _model_file(tmp_path / "swapped.pte", export={"format": "tflite"})
    assert main(["android", str(tflite_metadata), "--project", str(project)]) == 2
    assert "metadata of a 'tflite' export" in _unwrapped(capsys.readouterr().err)
    assert not (project / "app/src/main/assets").exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"labels": []}, "no class labels"),
    ({"preprocess": None}, "no preprocessing contract"),
    ({"metadata_format": "xformer-metadata/0"}, "metadata format 'xformer-metadata/0'"),
    ({"export": {"format": "tflite", "input": {"dtype": "int16"}}}, "input dtype int16"),
])
def test_android_command_rejects_incomplete_metadata(project, tmp_path, capsys, changes, message):
    model = _model_file(tmp_path / "m.tflite", **changes)
    assert main(["android", str(model), "--project", str(project)]) == 2
    err = _unwrapped(capsys.readouterr().err)
    assert "m.tflite cannot be used by the Android app" in err and message in err and "Traceback" not in err
    assert not (project / "app/src/main/assets").exists()


def test_android_command_refuses_a_detector(project, tmp_path, capsys):
    """The app shows a classifier's top classes and resizes and crops: a letterboxed detector would show nonsense."""
    model = tmp_path / "det.tflite"
    metadata = build_metadata(create_model("xformer_xxs_yolov3"), format="tflite", precision="fp32", layout="NHWC",
                              input={"dtype": "float32"})
    model.write_bytes(write_tflite_metadata(FAKE_FLATBUFFER, metadata))
    assert main(["android", str(model), "--project", str(project)]) == 2
    err = _unwrapped(capsys.readouterr().err)
    assert "det.tflite cannot be used by the Android app" in err and "Traceback" not in err
    assert "task 'detect' (the app shows a classifier's top classes)" in err
    assert "resize_mode 'letterbox' (the app resizes and crops)" in err
    assert not (project / "app/src/main/assets").exists()


def test_android_command_rejects_a_tflite_without_our_metadata(project, tmp_path, capsys):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(FAKE_FLATBUFFER)
    assert main(["android", str(bare), "--project", str(project)]) == 2
    err = _unwrapped(capsys.readouterr().err)
    assert "bare.tflite carries no xformer metadata" in err and "xformer export" in err
    assert not (project / "app/src/main/assets").exists()

    not_tflite = tmp_path / "fake.tflite"
    not_tflite.write_bytes(b"\x00" * 64)
    assert main(["android", str(not_tflite), "--project", str(project)]) == 2
    assert "not a TFLite flatbuffer" in _unwrapped(capsys.readouterr().err)


def test_android_command_needs_the_project(tmp_path, capsys):
    model = _model_file(tmp_path / "m.tflite")
    assert main(["android", str(model), "--project", str(tmp_path / "nowhere")]) == 2
    assert "no Android demo project" in _unwrapped(capsys.readouterr().err)


def test_smoke_apk_is_signed_and_stores_the_model_uncompressed(android_env, project, golden_models, pte_models):
    model = golden_models["fp32"]
    assert main(["android", str(model), "--project", str(project)]) == 0
    program = pte_models["pte_fp32"]
    assert main(["android", str(program), "--project", str(project)]) == 0
    result = _run(android_env, "apk", str(project / "app/src/main/assets"))
    assert result.returncode == 0, result.stdout + result.stderr
    apk = Path(android_env["XFORMER_ANDROID_BUILD"]) / "apk" / "xformer-demo-smoke.apk"

    verify = subprocess.run(["apksigner", "verify", "--verbose", str(apk)], capture_output=True, text=True)
    assert verify.returncode == 0 and "Verified using v2 scheme" in verify.stdout, verify.stdout + verify.stderr
    assert subprocess.run(["zipalign", "-c", "-p", "4", str(apk)]).returncode == 0
    with zipfile.ZipFile(apk) as archive:
        entry = archive.getinfo("assets/xformer_xxs_fp32.tflite")
        assert entry.compress_type == zipfile.ZIP_STORED
        assert archive.read(entry) == model.read_bytes()
        pte_entry = archive.getinfo(f"assets/{program.name}")
        assert pte_entry.compress_type == zipfile.ZIP_STORED and archive.read(pte_entry) == program.read_bytes()
        dex = archive.read("classes.dex")
    with apk.open("rb") as f:  # stored data must start 4-byte aligned to be memory-mapped
        for stored in (entry, pte_entry):
            f.seek(stored.header_offset + 26)
            name_length, extra_length = (int(n) for n in np.frombuffer(f.read(4), dtype="<u2"))
            assert (stored.header_offset + 30 + name_length + extra_length) % 4 == 0, stored.filename
    for cls in (b"Lorg/xformer/demo/MainActivity;", b"Lorg/xformer/demo/LiteRtEngine;",
                b"Lorg/xformer/demo/ExecuTorchEngine;", b"Lorg/xformer/demo/core/PilResize;"):
        assert cls in dex
    badging = subprocess.run(["aapt2", "dump", "badging", str(apk)], capture_output=True, text=True).stdout
    assert "package: name='org.xformer.demo'" in badging
    assert "launchable-activity: name='org.xformer.demo.MainActivity'" in badging
