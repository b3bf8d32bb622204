// Compile-only stand-in for the ExecuTorch Android API (the signatures the app uses, checked against
// org.pytorch.executorch in ExecuTorch's sources), so the offline CI can compile the app without the
// executorch-android AAR, which is not reachable here. Never packaged: the Gradle build uses the real one.
package org.pytorch.executorch;

public class Module {
    public static final int LOAD_MODE_MMAP = 1;

    public static Module load(String modelPath, int loadMode, int numThreads) {
        throw new UnsupportedOperationException("stub");
    }

    public EValue[] forward(EValue... inputs) {
        throw new UnsupportedOperationException("stub");
    }

    public void destroy() {
        throw new UnsupportedOperationException("stub");
    }
}
