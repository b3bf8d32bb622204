// Compile-only stand-in for the LiteRT Java API (the signatures the app uses), so the offline CI can compile
// the app without the LiteRT AAR, which is only on Google Maven. Never packaged: the Gradle build uses the real one.
package org.tensorflow.lite;

public enum DataType {
    FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, INT8
}
