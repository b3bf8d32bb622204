package org.xformer.demo.core;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/** Output tensor -> logits -> softmax -> top-k, as {@code xformer.runtimes.top_k} does in Python. */
public final class Postprocess {
    private Postprocess() {
    }

    /** The output tensor's values as real numbers (dequantised for integer outputs). */
    public static float[] logits(ByteBuffer output, TensorInfo info) {
        int n = info.numElements();
        if (output.capacity() < info.numBytes()) {
            throw new IllegalArgumentException("the output buffer holds " + output.capacity() + " bytes, expected "
                    + info.numBytes());
        }
        float[] out = new float[n];
        ByteBuffer source = output.duplicate().order(output.order());
        source.clear();
        if (info.type == TensorInfo.DataType.FLOAT32) {
            source.asFloatBuffer().get(out);
            return out;
        }
        for (int i = 0; i < n; i++) {
            out[i] = info.dequantize(source.get(i));
        }
        return out;
    }

    /** Softmax in double precision, shifted by the maximum so large logits cannot overflow. */
    public static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] out = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            out[i] = Math.exp(logits[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < out.length; i++) {
            out[i] /= sum;
        }
        return out;
    }

    /** The k best classes; ties break towards the lower class index, as everywhere in the project. */
    public static List<Prediction> topK(final float[] logits, List<String> labels, int k) {
        double[] probs = softmax(logits);
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, new Comparator<Integer>() {
            @Override
            public int compare(Integer a, Integer b) {
                // + 0.0f turns -0.0 into 0.0: numpy treats them as equal, Float.compare would not.
                int byLogit = Float.compare(logits[b] + 0.0f, logits[a] + 0.0f);
                return byLogit != 0 ? byLogit : Integer.compare(a, b);
            }
        });
        List<Prediction> out = new ArrayList<Prediction>();
        for (int i = 0; i < Math.min(k, order.length); i++) {
            int c = order[i];
            String label = c < labels.size() ? labels.get(c) : String.valueOf(c);
            out.add(new Prediction(c, label, probs[c], logits[c]));
        }
        return out;
    }
}
