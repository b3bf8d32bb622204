// Compile-only stand-in for the ExecuTorch Android API; see Module.java.
package org.pytorch.executorch;

import java.nio.FloatBuffer;

public class Tensor {
    public static Tensor fromBlob(FloatBuffer data, long[] shape) {
        throw new UnsupportedOperationException("stub");
    }

    public long[] shape() {
        throw new UnsupportedOperationException("stub");
    }

    public DType dtype() {
        throw new UnsupportedOperationException("stub");
    }

    public float[] getDataAsFloatArray() {
        throw new UnsupportedOperationException("stub");
    }
}
