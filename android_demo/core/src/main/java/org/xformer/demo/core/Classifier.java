package org.xformer.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * Image classification with a model and its own metadata: preprocessing from the embedded contract,
 * inference through an {@link InferenceEngine}, softmax and top-k over the embedded labels. Each stage
 * is timed on its own so the app can show where the time goes.
 */
public final class Classifier {
    private final ModelMetadata metadata;
    private final InferenceEngine engine;
    private final ImagePreprocessor preprocessor;
    private final ByteBuffer input;
    private final ByteBuffer output;

    public Classifier(ModelMetadata metadata, InferenceEngine engine) {
        TensorInfo out = engine.output();
        if (out.numElements() != metadata.labels.size()) {
            throw new IllegalArgumentException("the model outputs " + out.numElements() + " values but its metadata "
                    + "has " + metadata.labels.size() + " labels: re-export it");
        }
        checkAgrees("input", metadata.input, engine.input());
        checkAgrees("output", metadata.output, out);
        this.metadata = metadata;
        this.engine = engine;
        this.preprocessor = new ImagePreprocessor(metadata.preprocess, engine.input());
        // Direct buffers in native order let the interpreter read and write them without copies.
        this.input = ByteBuffer.allocateDirect(engine.input().numBytes()).order(ByteOrder.nativeOrder());
        this.output = ByteBuffer.allocateDirect(out.numBytes()).order(ByteOrder.nativeOrder());
    }

    public ModelMetadata metadata() {
        return metadata;
    }

    public InferenceEngine engine() {
        return engine;
    }

    public Classification classify(ArgbImage image, int k) {
        long start = System.nanoTime();
        ArgbImage modelInput = preprocessor.preprocess(image, input);
        long preprocessed = System.nanoTime();
        runOnce();
        long inferred = System.nanoTime();
        List<Prediction> top = Postprocess.topK(Postprocess.logits(output, engine.output()), metadata.labels, k);
        long done = System.nanoTime();
        return new Classification(top, modelInput, millis(preprocessed - start), millis(inferred - preprocessed),
                millis(done - inferred));
    }

    /**
     * Times one inference on the current input buffer (zeros before the first image). Right after loading,
     * this is the first inference, which includes delegate and allocation warm-up ({@code first_ms} in
     * {@code xformer bench}).
     */
    public double timeOneInference() {
        long start = System.nanoTime();
        runOnce();
        return millis(System.nanoTime() - start);
    }

    /**
     * Times inference alone on the current input buffer: {@code warmup} runs, then {@code runs} timed runs,
     * summarised like {@code xformer bench} does.
     */
    public BenchmarkResult benchmark(int warmup, int runs) {
        if (warmup < 0 || runs < 1) {
            throw new IllegalArgumentException("need warmup >= 0 and runs >= 1, got " + warmup + " and " + runs);
        }
        double warmupTotal = 0;
        for (int i = 0; i < warmup; i++) {
            warmupTotal += timeOneInference();
        }
        double[] samples = new double[runs];
        for (int i = 0; i < runs; i++) {
            samples[i] = timeOneInference();
        }
        return new BenchmarkResult(warmup, warmup > 0 ? warmupTotal / warmup : 0.0, new LatencyStats(samples));
    }

    private void runOnce() {
        input.rewind();
        output.rewind();
        engine.run(input, output);
    }

    /** A file whose metadata disagrees with its own tensors was edited after export; its results are suspect. */
    private static void checkAgrees(String role, TensorInfo recorded, TensorInfo actual) {
        boolean quantised = actual.type != TensorInfo.DataType.FLOAT32;
        if (recorded != null && (recorded.type != actual.type
                || quantised && (recorded.scale != actual.scale || recorded.zeroPoint != actual.zeroPoint))) {
            throw new IllegalArgumentException("the model's " + role + " is " + actual + " but its metadata records "
                    + recorded + ": re-export it");
        }
    }

    private static double millis(long nanos) {
        return nanos / 1e6;
    }
}
