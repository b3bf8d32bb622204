"""The Android app's accelerator fallback (LiteRtEngine.create), run on this machine's JVM against fakes of the
LiteRT Java API that fail the way a phone's native libraries do: an Error (UnsatisfiedLinkError,
NoClassDefFoundError) as well as an Exception falls back to the CPU, and every delegate and interpreter created
on the way is closed. The real LiteRT needs an Android device, which is not available here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
APP = DEMO / "app/src/main/java/org/xformer/demo"

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="needs a JDK (apt-get install openjdk-17-jdk-headless)")

FAKES = {
    "org/tensorflow/lite/Delegate.java": """
package org.tensorflow.lite;
public interface Delegate { long getNativeHandle(); }
""",
    "org/tensorflow/lite/DataType.java": """
package org.tensorflow.lite;
public enum DataType { FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, INT8 }
""",
    "org/tensorflow/lite/Tensor.java": """
package org.tensorflow.lite;
public interface Tensor {
    DataType dataType();
    int[] shape();
    QuantizationParams quantizationParams();
    class QuantizationParams {
        public QuantizationParams(float scale, int zeroPoint) {}
        public float getScale() { return 0f; }
        public int getZeroPoint() { return 0; }
    }
}
""",
    # What each fake does is set per scenario; open counts what was created and not closed.
    "org/tensorflow/lite/Fakes.java": """
package org.tensorflow.lite;
public final class Fakes {
    public static String compatibility = "supported", gpu = "ok", nnapi = "ok", interpreterWithDelegate = "ok";
    public static DataType inputType = DataType.FLOAT32;
    public static int interpretersOpen, delegatesOpen;
    public static void fail(String how, String what) {
        if (how.equals("link")) throw new UnsatisfiedLinkError("dlopen failed: lib" + what + ".so not found");
        if (how.equals("noclass")) throw new NoClassDefFoundError("org/tensorflow/lite/" + what);
        if (how.equals("reject")) throw new IllegalArgumentException(what + " rejects this model");
    }
}
""",
    "org/tensorflow/lite/Interpreter.java": """
package org.tensorflow.lite;
import java.nio.ByteBuffer;
public final class Interpreter {
    public static class Options {
        boolean delegated;
        public Options setNumThreads(int n) { return this; }
        public Options setUseXNNPACK(boolean on) { return this; }
        public Options addDelegate(Delegate d) { delegated = true; return this; }
    }
    public Interpreter(ByteBuffer model, Options options) {
        if (options.delegated) Fakes.fail(Fakes.interpreterWithDelegate, "delegate kernel");
        Fakes.interpretersOpen++;
    }
    public Tensor getInputTensor(int i) { return tensor(Fakes.inputType); }
    public Tensor getOutputTensor(int i) { return tensor(DataType.FLOAT32); }
    private static Tensor tensor(final DataType type) {
        return new Tensor() {
            public DataType dataType() { return type; }
            public int[] shape() { return new int[] {1, 4}; }
            public QuantizationParams quantizationParams() { return new QuantizationParams(0f, 0); }
        };
    }
    public void run(Object in, Object out) {}
    public void close() { Fakes.interpretersOpen--; }
}
""",
    "org/tensorflow/lite/gpu/CompatibilityList.java": """
package org.tensorflow.lite.gpu;
import org.tensorflow.lite.Fakes;
public class CompatibilityList implements java.io.Closeable {
    public CompatibilityList() { if (Fakes.compatibility.equals("link")) throw new UnsatisfiedLinkError("gpu"); }
    public boolean isDelegateSupportedOnThisDevice() { return Fakes.compatibility.equals("supported"); }
    public void close() {}
}
""",
    "org/tensorflow/lite/gpu/GpuDelegate.java": """
package org.tensorflow.lite.gpu;
import org.tensorflow.lite.Fakes;
public class GpuDelegate implements org.tensorflow.lite.Delegate, java.io.Closeable {
    public GpuDelegate() { Fakes.fail(Fakes.gpu, "GpuDelegate"); Fakes.delegatesOpen++; }
    public long getNativeHandle() { return 1; }
    public void close() { Fakes.delegatesOpen--; }
}
""",
    "org/tensorflow/lite/nnapi/NnApiDelegate.java": """
package org.tensorflow.lite.nnapi;
import org.tensorflow.lite.Fakes;
public class NnApiDelegate implements org.tensorflow.lite.Delegate, AutoCloseable {
    public NnApiDelegate() { Fakes.fail(Fakes.nnapi, "NnApiDelegate"); Fakes.delegatesOpen++; }
    public long getNativeHandle() { return 2; }
    public void close() { Fakes.delegatesOpen--; }
}
""",
    # One scenario per run: fakes configured from the arguments, then what create() returned or threw.
    "org/xformer/demo/FallbackDriver.java": """
package org.xformer.demo;
import java.nio.ByteBuffer;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Fakes;
public final class FallbackDriver {
    public static void main(String[] args) {
        for (String setting : args[1].split(",")) {
            String[] kv = setting.split("=");
            if (kv[0].equals("compatibility")) Fakes.compatibility = kv[1];
            if (kv[0].equals("gpu")) Fakes.gpu = kv[1];
            if (kv[0].equals("nnapi")) Fakes.nnapi = kv[1];
            if (kv[0].equals("interpreter")) Fakes.interpreterWithDelegate = kv[1];
            if (kv[0].equals("input")) Fakes.inputType = DataType.valueOf(kv[1]);
        }
        String outcome;
        try {
            LiteRtEngine engine = LiteRtEngine.create(ByteBuffer.allocateDirect(16), Accelerator.valueOf(args[0]), 2);
            outcome = "engine=" + engine.description() + "|note=" + engine.fallbackNote;
            engine.close();
        } catch (Throwable e) {
            outcome = "threw=" + e;
        }
        System.out.println(outcome + "|interpreters_open=" + Fakes.interpretersOpen
                + "|delegates_open=" + Fakes.delegatesOpen);
    }
}
""",
}


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fallback")
    sources = root / "src"
    for relative, text in FAKES.items():
        (sources / relative).parent.mkdir(parents=True, exist_ok=True)
        (sources / relative).write_text(text.lstrip())
    java = [*sources.rglob("*.java"), APP / "LiteRtEngine.java", APP / "Accelerator.java",
            *(DEMO / "core/src/main/java").rglob("*.java")]
    out = root / "classes"
    result = subprocess.run(["javac", "--release", "8", "-encoding", "UTF-8", "-nowarn", "-d", str(out),
                             *map(str, java)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def run(classes: Path, accelerator: str, settings: str = "none=0") -> dict[str, str]:
    result = subprocess.run(["java", "-cp", str(classes), "org.xformer.demo.FallbackDriver", accelerator, settings],
                            capture_output=True, text=True, check=True)
    return dict(part.split("=", 1) for part in result.stdout.strip().split("|"))


@pytest.mark.parametrize(("accelerator", "settings", "reason"), [
    ("GPU", "gpu=link", "UnsatisfiedLinkError: dlopen failed: libGpuDelegate.so not found"),
    ("GPU", "gpu=noclass", "NoClassDefFoundError"),
    ("GPU", "compatibility=link", "UnsatisfiedLinkError"),
    ("GPU", "interpreter=reject", "IllegalArgumentException: delegate kernel rejects this model"),
    ("GPU", "interpreter=link", "UnsatisfiedLinkError"),
    ("NNAPI", "nnapi=noclass", "NoClassDefFoundError"),
    ("NNAPI", "interpreter=noclass", "NoClassDefFoundError"),
])
def test_a_failing_accelerator_falls_back_to_the_cpu_and_closes_what_it_opened(classes, accelerator, settings,
                                                                                reason):
    outcome = run(classes, accelerator, settings)
    assert outcome["engine"] == "LiteRT, CPU (XNNPACK), 2 threads"
    assert reason in outcome["note"] and "running on the CPU instead" in outcome["note"]
    assert outcome["interpreters_open"] == "0" and outcome["delegates_open"] == "0"


def test_an_unsupported_gpu_says_so(classes):
    outcome = run(classes, "GPU", "compatibility=unsupported")
    assert outcome["engine"].startswith("LiteRT, CPU") and "not available on this device" in outcome["note"]


def test_working_accelerators_are_used(classes):
    for accelerator, label in (("GPU", "GPU delegate"), ("NNAPI", "NNAPI delegate"), ("CPU", "CPU (XNNPACK)")):
        outcome = run(classes, accelerator)
        assert outcome["engine"] == f"LiteRT, {label}, 2 threads" and outcome["note"] == "null"
        assert outcome["interpreters_open"] == "0" and outcome["delegates_open"] == "0"


def test_rejected_tensor_types_close_every_interpreter(classes):
    """An int16 model: the GPU interpreter and the CPU one are each closed before the error reaches the app."""
    outcome = run(classes, "GPU", "input=INT16")
    assert "IllegalArgumentException: the model's input is INT16" in outcome["threw"]
    assert outcome["interpreters_open"] == "0" and outcome["delegates_open"] == "0"
