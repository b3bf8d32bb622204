package org.xformer.demo;

import java.nio.ByteBuffer;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;
import org.tensorflow.lite.nnapi.NnApiDelegate;
import org.xformer.demo.core.InferenceEngine;
import org.xformer.demo.core.TensorInfo;

/**
 * The LiteRT interpreter behind core's {@link InferenceEngine}: the only class that touches LiteRT, so the
 * rest of the app (and all of core) builds and tests without it. Must be created, run and closed on one
 * thread, as the GPU delegate requires.
 */
final class LiteRtEngine implements InferenceEngine {
    private final Interpreter interpreter;
    private final GpuDelegate gpu;
    private final NnApiDelegate nnapi;
    private final TensorInfo input;
    private final TensorInfo output;
    private final String description;
    /** Why the engine does not run on the requested accelerator, or null when it does. */
    final String fallbackNote;

    private LiteRtEngine(ByteBuffer model, Accelerator accelerator, GpuDelegate gpu, NnApiDelegate nnapi,
                         int threads, String fallbackNote) {
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        options.setUseXNNPACK(true);
        if (gpu != null) {
            options.addDelegate(gpu);
        }
        if (nnapi != null) {
            options.addDelegate(nnapi);
        }
        Interpreter created = new Interpreter(model, options);
        try {
            this.input = describe(created.getInputTensor(0), "input");
            this.output = describe(created.getOutputTensor(0), "output");
        } catch (RuntimeException | Error e) {
            created.close();  // an interpreter whose tensors the app rejects is never handed out, so close it here
            throw e;
        }
        this.interpreter = created;
        this.gpu = gpu;
        this.nnapi = nnapi;
        this.description = "LiteRT, " + accelerator.label + ", " + threads + (threads == 1 ? " thread" : " threads");
        this.fallbackNote = fallbackNote;
    }

    /**
     * An interpreter on the requested accelerator, or on the CPU when that accelerator is missing, its native
     * library cannot load (an Error such as UnsatisfiedLinkError or NoClassDefFoundError, not an Exception) or
     * it rejects the model; {@link #fallbackNote} then says so. Whatever fails, the delegate and the interpreter
     * created for it are closed before falling back. A model the CPU cannot run either still throws.
     */
    static LiteRtEngine create(ByteBuffer model, Accelerator accelerator, int threads) {
        String note = null;
        if (accelerator == Accelerator.GPU) {
            try {
                if (gpuSupported()) {
                    return withGpu(model, threads);
                }
                note = "The GPU delegate is not available on this device: running on the CPU instead.";
            } catch (RuntimeException | LinkageError e) {
                note = "The GPU delegate could not run this model (" + reason(e) + "): running on the CPU instead.";
            }
        } else if (accelerator == Accelerator.NNAPI) {
            try {
                return withNnapi(model, threads);
            } catch (RuntimeException | LinkageError e) {
                note = "NNAPI could not run this model (" + reason(e) + "): running on the CPU instead.";
            }
        }
        model.rewind();
        return new LiteRtEngine(model, Accelerator.CPU, null, null, threads, note);
    }

    private static boolean gpuSupported() {
        CompatibilityList compatibility = new CompatibilityList();
        try {
            return compatibility.isDelegateSupportedOnThisDevice();
        } finally {
            compatibility.close();
        }
    }

    private static LiteRtEngine withGpu(ByteBuffer model, int threads) {
        GpuDelegate gpu = new GpuDelegate();
        try {
            return new LiteRtEngine(model, Accelerator.GPU, gpu, null, threads, null);
        } catch (RuntimeException | LinkageError e) {
            gpu.close();
            throw e;
        }
    }

    private static LiteRtEngine withNnapi(ByteBuffer model, int threads) {
        NnApiDelegate nnapi = new NnApiDelegate();
        try {
            return new LiteRtEngine(model, Accelerator.NNAPI, null, nnapi, threads, null);
        } catch (RuntimeException | LinkageError e) {
            nnapi.close();
            throw e;
        }
    }

    private static String reason(Throwable e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getClass().getSimpleName() + ": "
                + e.getMessage();
    }

    private static TensorInfo describe(Tensor tensor, String what) {
        DataType type = tensor.dataType();
        TensorInfo.DataType coreType;
        if (type == DataType.FLOAT32) {
            coreType = TensorInfo.DataType.FLOAT32;
        } else if (type == DataType.UINT8) {
            coreType = TensorInfo.DataType.UINT8;
        } else if (type == DataType.INT8) {
            coreType = TensorInfo.DataType.INT8;
        } else {
            throw new IllegalArgumentException("the model's " + what + " is " + type
                    + "; the app handles float32, uint8 and int8 tensors");
        }
        Tensor.QuantizationParams q = tensor.quantizationParams();
        return new TensorInfo(tensor.shape(), coreType, q.getScale(), q.getZeroPoint());
    }

    @Override
    public TensorInfo input() {
        return input;
    }

    @Override
    public TensorInfo output() {
        return output;
    }

    @Override
    public void run(ByteBuffer in, ByteBuffer out) {
        interpreter.run(in, out);
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpu != null) {
            gpu.close();
        }
        if (nnapi != null) {
            nnapi.close();
        }
    }
}
