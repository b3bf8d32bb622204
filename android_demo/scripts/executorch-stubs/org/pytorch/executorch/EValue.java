// Compile-only stand-in for the ExecuTorch Android API; see Module.java.
package org.pytorch.executorch;

public class EValue {
    public static EValue from(Tensor tensor) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor toTensor() {
        throw new UnsupportedOperationException("stub");
    }
}
