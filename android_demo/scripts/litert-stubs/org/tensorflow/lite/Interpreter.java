// Compile-only stand-in for the LiteRT Java API (the signatures the app uses), so the offline CI can compile
// the app without the LiteRT AAR, which is only on Google Maven. Never packaged: the Gradle build uses the real one.
package org.tensorflow.lite;

import java.nio.ByteBuffer;

public final class Interpreter {
    public static class Options {
        public Options setNumThreads(int numThreads) {
            throw new UnsupportedOperationException("stub");
        }

        public Options setUseXNNPACK(boolean useXNNPACK) {
            throw new UnsupportedOperationException("stub");
        }

        public Options addDelegate(Delegate delegate) {
            throw new UnsupportedOperationException("stub");
        }
    }

    public Interpreter(ByteBuffer byteBuffer, Options options) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getInputTensor(int inputIndex) {
        throw new UnsupportedOperationException("stub");
    }

    public Tensor getOutputTensor(int outputIndex) {
        throw new UnsupportedOperationException("stub");
    }

    public void run(Object input, Object output) {
        throw new UnsupportedOperationException("stub");
    }

    public void close() {
        throw new UnsupportedOperationException("stub");
    }
}
