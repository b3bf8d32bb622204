package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The Java core against the Python reference, on golden files written by tests/android_goldens.py from
 * real photos: any difference fails, naming the case.
 */
public class GoldenParityTest {
    private static final double FLOAT_TOLERANCE = 1e-5;
    private static Goldens goldens;

    @BeforeClass
    public static void loadGoldens() throws Exception {
        goldens = Goldens.load();
    }

    @Test
    public void resizeMatchesPillowBitForBit() throws Exception {
        List<String> failures = new ArrayList<String>();
        for (Map<String, Object> c : goldens.cases("resize")) {
            ArgbImage source = goldens.image(c.get("source"));
            int width = Goldens.integer(c.get("width"));
            int height = Goldens.integer(c.get("height"));
            PreprocessSpec.Interpolation mode =
                    PreprocessSpec.Interpolation.valueOf(((String) c.get("interpolation")).toUpperCase());
            ArgbImage actual = PilResize.resize(source, width, height, mode);
            ArgbImage expected = ArgbImage.fromRgb(goldens.file((String) c.get("expected")), width, height);
            int differing = 0;
            int worst = 0;
            for (int i = 0; i < expected.pixels.length; i++) {
                int diff = maxChannelDifference(actual.pixels[i], expected.pixels[i]);
                differing += diff > 0 ? 1 : 0;
                worst = Math.max(worst, diff);
            }
            if (differing > 0) {
                failures.add(c.get("name") + ": " + differing + " pixels differ, by up to " + worst);
            }
        }
        assertNoFailures(failures, goldens.cases("resize").size());
    }

    @Test
    public void inputTensorMatchesPythonPreprocessing() throws Exception {
        List<String> failures = new ArrayList<String>();
        for (Map<String, Object> c : goldens.cases("preprocess")) {
            String name = (String) c.get("name");
            ArgbImage decoded = goldens.image(c.get("source"));
            int orientation = Goldens.integer(c.get("orientation"));
            if (c.containsKey("jpeg")) {
                int parsed = ExifOrientation.fromJpeg(goldens.file((String) c.get("jpeg")));
                if (parsed != orientation) {
                    failures.add(name + ": EXIF orientation " + parsed + ", Pillow read " + orientation);
                    continue;
                }
            }
            ArgbImage upright = ExifOrientation.apply(decoded, orientation);
            @SuppressWarnings("unchecked")
            PreprocessSpec spec = PreprocessSpec.fromJson((Map<String, Object>) c.get("spec"));
            int[] shape = spec.nchw ? new int[] {1, 3, spec.inputHeight, spec.inputWidth}
                    : new int[] {1, spec.inputHeight, spec.inputWidth, 3};
            TensorInfo input = Goldens.tensor(c.get("input"), shape);
            ByteBuffer actual = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.LITTLE_ENDIAN);
            new ImagePreprocessor(spec, input).preprocess(upright, actual);
            ByteBuffer expected = goldens.littleEndian((String) c.get("expected"));
            String problem = compareTensors(input, actual, expected);
            if (problem != null) {
                failures.add(name + ": " + problem);
            }
        }
        assertNoFailures(failures, goldens.cases("preprocess").size());
    }

    @Test
    public void topFiveMatchesPythonOnRawOutputs() throws Exception {
        List<String> failures = new ArrayList<String>();
        for (Map<String, Object> c : goldens.cases("postprocess")) {
            @SuppressWarnings("unchecked")
            List<String> labels = (List<String>) (List<?>) c.get("labels");
            TensorInfo info = Goldens.tensor(c.get("info"), new int[] {1, labels.size()});
            float[] logits = Postprocess.logits(goldens.littleEndian((String) c.get("output")), info);
            compareTopFive((String) c.get("name"), Postprocess.topK(logits, labels, 5), c.get("top5"), failures);
        }
        assertNoFailures(failures, goldens.cases("postprocess").size());
    }

    /**
     * Real .tflite files from {@code xformer export} (fp32; static int8 with float and with int8 I/O): the
     * metadata read from the file describes the tensors the LiteRT interpreter reported, preprocessing yields
     * the tensor the interpreter was fed, and postprocessing its raw output gives the Python runtime's top-5.
     */
    @Test
    @SuppressWarnings("unchecked")
    public void realModelsMatchTheLiteRtRuntime() throws Exception {
        List<String> failures = new ArrayList<String>();
        int images = 0;
        for (Map<String, Object> model : goldens.cases("models")) {
            String name = (String) model.get("name");
            ModelMetadata metadata = ModelMetadata.read(new File(goldens.dir, (String) model.get("file")));
            String inputProblem = describedAs(metadata.input, (Map<String, Object>) model.get("input"));
            String outputProblem = describedAs(metadata.output, (Map<String, Object>) model.get("output"));
            if (inputProblem != null || outputProblem != null) {
                failures.add(name + ": metadata " + (inputProblem != null ? inputProblem : outputProblem));
                continue;
            }
            ImagePreprocessor preprocessor = new ImagePreprocessor(metadata.preprocess, metadata.input);
            for (Map<String, Object> c : (List<Map<String, Object>>) model.get("images")) {
                images++;
                String caseName = (String) c.get("name");
                ArgbImage upright = ExifOrientation.apply(goldens.image(c.get("source")),
                        Goldens.integer(c.get("orientation")));
                ByteBuffer fed = ByteBuffer.allocateDirect(metadata.input.numBytes()).order(ByteOrder.LITTLE_ENDIAN);
                preprocessor.preprocess(upright, fed);
                String problem = compareTensors(metadata.input, fed, goldens.littleEndian((String) c.get("input")));
                if (problem != null) {
                    failures.add(caseName + ": " + problem);
                }
                float[] logits = Postprocess.logits(goldens.littleEndian((String) c.get("output")), metadata.output);
                compareTopFive(caseName, Postprocess.topK(logits, metadata.labels, 5), c.get("top5"), failures);
            }
        }
        assertTrue("no images for the real models", images > 0);
        assertNoFailures(failures, goldens.cases("models").size());
    }

    @Test
    @SuppressWarnings("unchecked")
    public void metadataReadFromAPythonWrittenTfliteFile() throws Exception {
        Map<String, Object> expected = goldens.section("metadata");
        ModelMetadata metadata = ModelMetadata.read(new File(goldens.dir, (String) expected.get("file")));
        assertEquals(expected.get("arch"), metadata.arch);
        assertEquals(expected.get("precision"), metadata.precision);
        assertEquals(expected.get("labels"), metadata.labels);
        PreprocessSpec spec = PreprocessSpec.fromJson((Map<String, Object>) expected.get("preprocess"));
        assertEquals(spec.toString(), metadata.preprocess.toString());
        assertEquals(Goldens.integer(((Map<String, Object>) expected.get("preprocess")).get("resize_size")),
                metadata.preprocess.resizeSize.intValue());
    }

    @Test
    public void latencyStatisticsMatchXformerBench() throws Exception {
        Map<String, Object> expected = goldens.section("latency");
        List<?> samples = (List<?>) expected.get("samples_ms");
        double[] values = new double[samples.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = Goldens.number(samples.get(i));
        }
        LatencyStats stats = new LatencyStats(values);
        @SuppressWarnings("unchecked")
        Map<String, Object> bench = (Map<String, Object>) expected.get("summary");
        assertEquals(Goldens.integer(bench.get("runs")), stats.runs);
        double[][] pairs = {
            {Goldens.number(bench.get("median")), stats.medianMs},
            {Goldens.number(bench.get("mean")), stats.meanMs},
            {Goldens.number(bench.get("std")), stats.stdMs},
            {Goldens.number(bench.get("min")), stats.minMs},
            {Goldens.number(bench.get("max")), stats.maxMs},
            {Goldens.number(bench.get("trimmed_mean")), stats.trimmedMeanMs},
            {Goldens.number(bench.get("p5")), stats.p5Ms},
            {Goldens.number(bench.get("p90")), stats.p90Ms},
            {Goldens.number(bench.get("p95")), stats.p95Ms},
        };
        for (double[] pair : pairs) {
            assertEquals(pair[0], pair[1], 1e-12);
        }
    }

    /** The metadata's tensor against what the interpreter reported ({dtype, scale, zero_point}); null if equal. */
    private static String describedAs(TensorInfo recorded, Map<String, Object> interpreter) {
        String dtype = (String) interpreter.get("dtype");
        boolean quantised = interpreter.get("scale") != null;
        if (recorded == null || !recorded.type.name().equalsIgnoreCase(dtype)
                || quantised && (recorded.scale != (float) Goldens.number(interpreter.get("scale"))
                        || recorded.zeroPoint != Goldens.integer(interpreter.get("zero_point")))) {
            return "records " + recorded + ", the interpreter reports " + interpreter;
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    private static void compareTopFive(String name, List<Prediction> top, Object expectedTop, List<String> failures) {
        List<Map<String, Object>> expected = (List<Map<String, Object>>) expectedTop;
        for (int rank = 0; rank < expected.size(); rank++) {
            Map<String, Object> e = expected.get(rank);
            Prediction p = top.get(rank);
            if (p.index != Goldens.integer(e.get("index")) || !p.label.equals(e.get("label"))
                    || Math.abs(p.score - Goldens.number(e.get("score"))) > 1e-9
                    || p.logit != (float) Goldens.number(e.get("logit"))) {
                failures.add(name + " rank " + (rank + 1) + ": Java " + p + " (logit " + p.logit + "), Python " + e);
            }
        }
    }

    private static String compareTensors(TensorInfo info, ByteBuffer actual, ByteBuffer expected) {
        if (expected.capacity() != actual.capacity()) {
            return "tensor of " + actual.capacity() + " bytes, expected " + expected.capacity();
        }
        int n = info.numElements();
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < n; i++) {
            double diff = info.type == TensorInfo.DataType.FLOAT32
                    ? Math.abs(actual.getFloat(4 * i) - expected.getFloat(4 * i))
                    : Math.abs(actual.get(i) - expected.get(i));
            if (diff > worst) {
                worst = diff;
                worstAt = i;
            }
        }
        double tolerance = info.type == TensorInfo.DataType.FLOAT32 ? FLOAT_TOLERANCE : 0;
        return worst > tolerance ? "max difference " + worst + " at element " + worstAt : null;
    }

    private static int maxChannelDifference(int a, int b) {
        int worst = 0;
        for (int shift = 0; shift <= 16; shift += 8) {
            worst = Math.max(worst, Math.abs(((a >> shift) & 0xff) - ((b >> shift) & 0xff)));
        }
        return worst;
    }

    private static void assertNoFailures(List<String> failures, int cases) {
        assertTrue("the golden manifest has no cases", cases > 0);
        if (!failures.isEmpty()) {
            // Resizing follows Pillow 13; another Pillow version may order its resampling passes differently.
            StringBuilder message = new StringBuilder(failures.size() + " mismatches in " + cases
                    + " golden cases (written with Pillow " + goldens.manifest.get("pillow") + "):");
            for (String f : failures.subList(0, Math.min(20, failures.size()))) {
                message.append("\n  ").append(f);
            }
            fail(message.toString());
        }
    }
}
