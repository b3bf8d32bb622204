// Compile-only stand-in for the ExecuTorch Android API (the element types the app checks); see Module.java.
package org.pytorch.executorch;

public enum DType {
    UINT8, INT8, FLOAT
}
