package org.xformer.demo.core;

/** One entry of a top-k list. */
public final class Prediction {
    public final int index;
    public final String label;
    /** Softmax probability. */
    public final double score;
    public final float logit;

    public Prediction(int index, String label, double score, float logit) {
        this.index = index;
        this.label = label;
        this.score = score;
        this.logit = logit;
    }

    @Override
    public String toString() {
        return index + " " + label + " " + String.format("%.4f", score);
    }
}
