package org.xformer.demo.core;

/** A model file the app cannot use as it is; the message says what is wrong and how to fix it. */
public final class ModelMetadataException extends Exception {
    private static final long serialVersionUID = 1L;

    public ModelMetadataException(String message) {
        super(message);
    }

    public ModelMetadataException(String message, Throwable cause) {
        super(message, cause);
    }
}
