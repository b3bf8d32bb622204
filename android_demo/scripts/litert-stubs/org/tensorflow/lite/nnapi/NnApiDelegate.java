// Compile-only stand-in for the LiteRT Java API (the signatures the app uses), so the offline CI can compile
// the app without the LiteRT AAR, which is only on Google Maven. Never packaged: the Gradle build uses the real one.
package org.tensorflow.lite.nnapi;

import org.tensorflow.lite.Delegate;

public class NnApiDelegate implements Delegate, AutoCloseable {
    public NnApiDelegate() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public long getNativeHandle() {
        throw new UnsupportedOperationException("stub");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("stub");
    }
}
