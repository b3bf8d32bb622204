"""How to build the Android app: `xformer android` prints steps that work with and without the Gradle wrapper jar
(a binary the repository does not carry), and gradlew says the same when the jar is missing."""

import shutil
import subprocess
from pathlib import Path

import pytest

from xformer.android import WRAPPER_JAR, build_steps

DEMO = Path(__file__).resolve().parents[1] / "android_demo"


def test_gradle_properties_use_androidx():
    properties = dict(line.split("=", 1) for line in (DEMO / "gradle.properties").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    assert properties["android.useAndroidX"] == "true"


def test_build_steps_without_the_wrapper_jar(tmp_path):
    steps = build_steps(tmp_path)
    assert f"Android Studio: File > Open {tmp_path}" in steps
    assert "touch settings.gradle && gradle wrapper --gradle-version 8.7" in steps
    assert f"cp /tmp/gradle-wrapper/{WRAPPER_JAR} {tmp_path / WRAPPER_JAR}" in steps
    assert f"cd {tmp_path} && ./gradlew installDebug" in steps


def test_build_steps_with_the_wrapper_jar(tmp_path):
    (tmp_path / WRAPPER_JAR).parent.mkdir(parents=True)
    (tmp_path / WRAPPER_JAR).write_bytes(b"PK")
    steps = build_steps(tmp_path)
    assert f"cd {tmp_path} && ./gradlew installDebug" in steps and "gradle wrapper" not in steps


@pytest.mark.skipif(shutil.which("sh") is None, reason="gradlew is a POSIX shell script")
def test_gradlew_without_its_jar_names_the_steps(tmp_path):
    shutil.copy(DEMO / "gradlew", tmp_path / "gradlew")
    result = subprocess.run(["sh", str(tmp_path / "gradlew"), "installDebug"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Android Studio" in result.stderr and "gradle wrapper --gradle-version 8.7" in result.stderr
    assert f"{tmp_path}/{WRAPPER_JAR}" in result.stderr
