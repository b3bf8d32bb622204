package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.util.Arrays;

import org.junit.Test;

public class ClassifierTest {
    private static final String METADATA = "{\"metadata_format\": \"xformer-metadata/1\", \"arch\": \"toy\", "
            + "\"num_classes\": 3, \"labels\": [\"red\", \"green\", \"blue\"], \"preprocess\": {\"input_size\": [4, 4], "
            + "\"resize_size\": 4, \"crop\": \"center\", \"interpolation\": \"bicubic\", \"scale\": 0.00392156862745098, "
            + "\"mean\": [0, 0, 0], \"std\": [1, 1, 1], \"channel_order\": \"RGB\", \"layout\": \"NHWC\"}, "
            + "\"export\": {\"format\": \"tflite\", \"precision\": \"int8\"}}";

    /** A stand-in model over int8 NHWC input: the class logits are the per-channel sums of the stored bytes. */
    private static class ChannelSumEngine implements InferenceEngine {
        final TensorInfo input = new TensorInfo(new int[] {1, 4, 4, 3}, TensorInfo.DataType.INT8, 1 / 255f, -128);
        final TensorInfo output = new TensorInfo(new int[] {1, 3}, TensorInfo.DataType.FLOAT32, 0f, 0);
        int runs;
        boolean closed;

        @Override
        public TensorInfo input() {
            return input;
        }

        @Override
        public TensorInfo output() {
            return output;
        }

        @Override
        public void run(ByteBuffer in, ByteBuffer out) {
            assertEquals("input read from the start", 0, in.position());
            float[] sums = new float[3];
            for (int i = 0; i < input.numElements(); i++) {
                sums[i % 3] += in.get(i) + 128;
            }
            for (float s : sums) {
                out.putFloat(s);
            }
            runs++;
        }

        @Override
        public String description() {
            return "channel sums";
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static ModelMetadata metadata() throws ModelMetadataException {
        return ModelMetadata.fromJson(METADATA, "toy.tflite");
    }

    private static ArgbImage solid(int argb) {
        int[] pixels = new int[8 * 6];
        Arrays.fill(pixels, argb);
        return new ArgbImage(8, 6, pixels);
    }

    @Test
    public void classifiesWithTheModelsLabelsAndTimesEachStage() throws Exception {
        ChannelSumEngine engine = new ChannelSumEngine();
        Classifier classifier = new Classifier(metadata(), engine);
        Classification blue = classifier.classify(solid(0xff1020f0), 2);
        assertEquals("blue", blue.predictions.get(0).label);
        assertEquals("green", blue.predictions.get(1).label);
        assertEquals(2, blue.predictions.size());
        assertEquals(4, blue.modelInput.width);
        assertTrue(blue.preprocessMs >= 0 && blue.inferenceMs >= 0 && blue.postprocessMs >= 0);
        assertEquals("red", classifier.classify(solid(0xfff01020), 1).predictions.get(0).label);
        assertEquals(2, engine.runs);
    }

    @Test
    public void benchmarkRunsWarmupPlusTimedRuns() throws Exception {
        ChannelSumEngine engine = new ChannelSumEngine();
        Classifier classifier = new Classifier(metadata(), engine);
        assertTrue(classifier.timeOneInference() >= 0);
        BenchmarkResult result = classifier.benchmark(3, 7);
        assertEquals(11, engine.runs);
        assertEquals(3, result.warmupRuns);
        assertTrue(result.warmupMeanMs >= 0);
        LatencyStats stats = result.latency;
        assertEquals(7, stats.runs);
        assertTrue(stats.minMs <= stats.medianMs && stats.medianMs <= stats.p90Ms && stats.p90Ms <= stats.maxMs);
    }

    @Test
    public void rejectsAnOutputThatDoesNotMatchTheLabels() throws Exception {
        ChannelSumEngine engine = new ChannelSumEngine() {
            @Override
            public TensorInfo output() {
                return new TensorInfo(new int[] {1, 1000}, TensorInfo.DataType.FLOAT32, 0f, 0);
            }
        };
        try {
            new Classifier(metadata(), engine);
            fail("accepted 1000 outputs for 3 labels");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("outputs 1000 values") && e.getMessage().contains("3 labels"));
        }
    }

    @Test
    public void rejectsTensorsThatDisagreeWithTheMetadata() throws Exception {
        String recorded = METADATA.replace("\"precision\": \"int8\"}", "\"precision\": \"int8\", "
                + "\"input\": {\"dtype\": \"int8\", \"scale\": 0.5, \"zero_point\": -128}, "
                + "\"output\": {\"dtype\": \"float32\", \"scale\": null, \"zero_point\": null}}");
        try {
            new Classifier(ModelMetadata.fromJson(recorded, "toy.tflite"), new ChannelSumEngine());
            fail("accepted an int8 input whose scale differs from the metadata's");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("the model's input is int8[1, 4, 4, 3] (scale")
                    && e.getMessage().contains("metadata records int8[1, 4, 4, 3] (scale 0.5"));
        }
        String agreeing = recorded.replace("\"scale\": 0.5", "\"scale\": " + (1 / 255f));
        new Classifier(ModelMetadata.fromJson(agreeing, "toy.tflite"), new ChannelSumEngine());
    }
}
