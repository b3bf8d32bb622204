package org.xformer.demo.core;

import java.io.Closeable;
import java.nio.ByteBuffer;

/**
 * Runs the model on one input buffer. The app implements it with the LiteRT interpreter (.tflite) and the
 * ExecuTorch runtime (.pte); tests use small Java fakes, so everything around inference is checked on the JVM.
 */
public interface InferenceEngine extends Closeable {
    TensorInfo input();

    TensorInfo output();

    /** Reads {@code input} from position 0 and fills {@code output} from position 0. */
    void run(ByteBuffer input, ByteBuffer output);

    /** What runs the model, for the screen: runtime, delegate, threads. */
    String description();

    @Override
    void close();
}
