package org.xformer.demo.core;

import java.util.Collections;
import java.util.List;

/** Top-k result of one image, with the time spent in each stage. */
public final class Classification {
    public final List<Prediction> predictions;
    /** The resized and cropped image the model saw. */
    public final ArgbImage modelInput;
    public final double preprocessMs;
    public final double inferenceMs;
    public final double postprocessMs;

    public Classification(List<Prediction> predictions, ArgbImage modelInput, double preprocessMs,
                          double inferenceMs, double postprocessMs) {
        this.predictions = Collections.unmodifiableList(predictions);
        this.modelInput = modelInput;
        this.preprocessMs = preprocessMs;
        this.inferenceMs = inferenceMs;
        this.postprocessMs = postprocessMs;
    }
}
