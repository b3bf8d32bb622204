package org.xformer.demo;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.pytorch.executorch.DType;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;
import org.xformer.demo.core.InferenceEngine;
import org.xformer.demo.core.TensorInfo;

/**
 * The ExecuTorch runtime behind core's {@link InferenceEngine}, for .pte programs from
 * {@code xformer export MODEL --formats pte}: the only class that touches ExecuTorch. The program's XNNPACK
 * delegate runs on the CPU, so the GPU and NNAPI choices of the delegate spinner do not apply. Inputs and outputs
 * are float32 for every precision (int8 programs quantise inside the graph).
 */
final class ExecuTorchEngine implements InferenceEngine {
    private final Module module;
    private final TensorInfo input;
    private final TensorInfo output;
    private final long[] inputShape;
    private final String description;
    /** Why the engine does not run on the requested accelerator, or null when it does. */
    final String fallbackNote;

    /**
     * Loads {@code program} (a file: ExecuTorch maps programs from a path, not from an asset) and runs it once on
     * zeros, so the output tensor described to core is the program's own, not the metadata's.
     */
    ExecuTorchEngine(File program, TensorInfo input, Accelerator accelerator, int threads) {
        if (input == null || input.type != TensorInfo.DataType.FLOAT32) {
            throw new IllegalArgumentException("ExecuTorch programs from xformer take float32 input; the metadata of "
                    + program.getName() + " records " + input + ": re-export it with `xformer export --formats pte`");
        }
        this.input = input;
        this.inputShape = longs(input.shape());
        this.module = Module.load(program.getAbsolutePath(), Module.LOAD_MODE_MMAP, threads);
        Tensor first;
        try {
            first = forward(ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder()));
            if (first.dtype() != DType.FLOAT) {
                throw new IllegalArgumentException("the program's output is " + first.dtype()
                        + "; the app reads float32 logits from .pte files");
            }
        } catch (RuntimeException e) {
            module.destroy();
            throw e;
        }
        this.output = new TensorInfo(ints(first.shape()), TensorInfo.DataType.FLOAT32, 0f, 0);
        this.description = "ExecuTorch, XNNPACK (CPU), " + threads + (threads == 1 ? " thread" : " threads");
        this.fallbackNote = accelerator == Accelerator.CPU ? null : "ExecuTorch runs this program with its XNNPACK "
                + "delegate on the CPU; the " + accelerator.label + " applies to .tflite models.";
    }

    private Tensor forward(ByteBuffer in) {
        in.rewind();
        return module.forward(EValue.from(Tensor.fromBlob(in.asFloatBuffer(), inputShape)))[0].toTensor();
    }

    private static long[] longs(int[] shape) {
        long[] out = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = shape[i];
        }
        return out;
    }

    private static int[] ints(long[] shape) {
        int[] out = new int[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = (int) shape[i];
        }
        return out;
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
        out.asFloatBuffer().put(forward(in).getDataAsFloatArray());
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public void close() {
        module.destroy();
    }
}
