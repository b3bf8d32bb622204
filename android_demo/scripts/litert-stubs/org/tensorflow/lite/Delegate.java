// Compile-only stand-in for the LiteRT Java API (the signatures the app uses), so the offline CI can compile
// the app without the LiteRT AAR, which is only on Google Maven. Never packaged: the Gradle build uses the real one.
package org.tensorflow.lite;

public interface Delegate {
    long getNativeHandle();
}
