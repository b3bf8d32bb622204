package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import org.junit.Test;

public class ModelMetadataTest {
    private static final byte[] FLATBUFFER = {0x1c, 0, 0, 0, 'T', 'F', 'L', '3', 0, 0, 0, 0};
    private static final String PREPROCESS = "{\"input_size\": [224, 192], \"resize_size\": 256, \"crop\": \"center\", "
            + "\"interpolation\": \"bilinear\", \"scale\": 0.00392156862745098, \"mean\": [0.485, 0.456, 0.406], "
            + "\"std\": [0.229, 0.224, 0.225], \"channel_order\": \"RGB\", \"layout\": \"NHWC\"}";

    private static String metadata(String labels, String preprocess) {
        return "{\"metadata_format\": \"xformer-metadata/1\", \"arch\": \"xformer_s\", \"num_classes\": 3, "
                + "\"labels\": " + labels + ", \"preprocess\": " + preprocess
                + ", \"export\": {\"format\": \"tflite\", \"precision\": \"int8\"}}";
    }

    /** A flatbuffer stand-in with a zip appended the plain way: offsets relative to the archive's start. */
    private static ByteBuffer model(byte[] flatbuffer, String entry, String json) throws IOException {
        ByteArrayOutputStream zip = new ByteArrayOutputStream();
        ZipOutputStream out = new ZipOutputStream(zip);
        out.putNextEntry(new ZipEntry("labels.txt"));
        out.write("a\nb\nc\n".getBytes("UTF-8"));
        out.putNextEntry(new ZipEntry(entry));
        out.write(json.getBytes("UTF-8"));
        out.close();
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.write(flatbuffer);
        file.write(zip.toByteArray());
        return ByteBuffer.wrap(file.toByteArray());
    }

    private static String failure(ByteBuffer model) {
        try {
            ModelMetadata.read(model, "m.tflite");
        } catch (ModelMetadataException e) {
            return e.getMessage();
        }
        fail("expected the model to be rejected");
        return null;
    }

    @Test
    public void readsLabelsAndPreprocessing() throws Exception {
        ModelMetadata m = ModelMetadata.read(model(FLATBUFFER, ModelMetadata.ENTRY,
                metadata("[\"cat\", \"dog\", \"fish\"]", PREPROCESS)), "m.tflite");
        assertEquals(Arrays.asList("cat", "dog", "fish"), m.labels);
        assertEquals("xformer_s", m.arch);
        assertEquals("int8", m.precision);
        PreprocessSpec s = m.preprocess;
        assertEquals(224, s.inputHeight);
        assertEquals(192, s.inputWidth);
        assertEquals(256, s.resizeSize.intValue());
        assertEquals(PreprocessSpec.Interpolation.BILINEAR, s.interpolation);
        assertEquals(0.406f, s.mean(2), 0);
        assertEquals(0.229f, s.std(0), 0);
        assertEquals((float) (1 / 255.0), s.scale, 0);
        assertTrue(s.centerCrop && !s.nchw && !s.bgr);
        assertEquals(null, m.input);
    }

    @Test
    public void readsTheRecordedInputAndOutputTensors() throws Exception {
        String json = metadata("[\"a\", \"b\", \"c\"]", PREPROCESS).replace("\"precision\": \"int8\"}",
                "\"precision\": \"int8\", \"input\": {\"dtype\": \"float32\", \"scale\": null, \"zero_point\": null}, "
                + "\"output\": {\"dtype\": \"int8\", \"scale\": 0.125, \"zero_point\": -3}}");
        ModelMetadata m = ModelMetadata.fromJson(json, "m.tflite");
        assertEquals("float32[1, 224, 192, 3]", m.input.toString());
        assertEquals("int8[1, 3] (scale 0.125, zero point -3)", m.output.toString());
    }

    @Test
    public void nullResizeMeansResizeStraightToTheInput() throws Exception {
        ModelMetadata m = ModelMetadata.read(model(FLATBUFFER, ModelMetadata.ENTRY, metadata("[\"a\", \"b\", \"c\"]",
                PREPROCESS.replace("\"resize_size\": 256", "\"resize_size\": null"))), "m.tflite");
        assertEquals(null, m.preprocess.resizeSize);
    }

    @Test
    public void rejectsAFileThatIsNotTflite() throws Exception {
        byte[] notTflite = "PK\u0003\u0004 something else".getBytes("UTF-8");
        assertTrue(failure(ByteBuffer.wrap(notTflite)).contains("is not a TFLite model"));
    }

    @Test
    public void readsTheSameMetadataFromAnExecuTorchProgram() throws Exception {
        byte[] program = {0x3c, 0, 0, 0, 'E', 'T', '1', '2', 'e', 'h', '0', '0'};
        ByteBuffer pte = model(program, ModelMetadata.ENTRY, metadata("[\"cat\", \"dog\", \"fish\"]", PREPROCESS));
        assertEquals(ModelMetadata.Kind.EXECUTORCH, ModelMetadata.Kind.of(pte, "m.pte"));
        assertEquals(Arrays.asList("cat", "dog", "fish"), ModelMetadata.read(pte, "m.pte").labels);
        String bare = failure(ByteBuffer.wrap(program));
        assertTrue(bare, bare.contains("carries no xformer metadata") && bare.contains("--formats pte"));
        assertEquals(ModelMetadata.Kind.TFLITE, ModelMetadata.Kind.of(ByteBuffer.wrap(FLATBUFFER), "m.tflite"));
    }

    @Test
    public void rejectsATfliteWithoutOurMetadata() throws Exception {
        String bare = failure(ByteBuffer.wrap(FLATBUFFER));
        assertTrue(bare, bare.contains("carries no xformer metadata") && bare.contains("xformer export"));
        String otherZip = failure(model(FLATBUFFER, "other.json", "{}"));
        assertTrue(otherZip, otherZip.contains("carries no xformer metadata"));
    }

    @Test
    public void rejectsIncompleteMetadataNamingTheProblem() throws Exception {
        String[][] cases = {
            {metadata("[]", PREPROCESS), "has no class labels"},
            {metadata("[\"a\", \"b\"]", PREPROCESS), "has 2 labels for 3 classes"},
            {metadata("[\"a\", 1, \"c\"]", PREPROCESS), "label that is not a string"},
            {metadata("[\"a\", \"b\", \"c\"]", "null"), "no preprocessing contract"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS.replace("bilinear", "lanczos")), "interpolation must be"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS.replace("\"resize_size\": 256, ", "")),
                "missing 'resize_size'"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS.replace("[0.229, 0.224, 0.225]", "[0.2, 0.0, 0.2]")),
                "std must be > 0"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS).replace("xformer-metadata/1", "xformer-metadata/9"),
                "metadata format 'xformer-metadata/9'"},
            {"{not json", "unreadable metadata"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS).replace("\"arch\"", "\"task\": \"detect\", \"arch\""),
                "is a detect model; this app shows a classifier's top classes"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS.replace("\"layout\"", "\"resize_mode\": \"letterbox\", \"layout\"")),
                "resize_mode 'letterbox', and this app resizes and crops"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS).replace("\"int8\"}", "\"int8\", \"input\": {\"dtype\": \"int16\"}}"),
                "input of dtype int16"},
            {metadata("[\"a\", \"b\", \"c\"]", PREPROCESS).replace("\"int8\"}", "\"int8\", \"output\": {\"dtype\": \"int8\"}}"),
                "int8 output no scale and zero point"},
        };
        for (String[] c : cases) {
            String message = failure(model(FLATBUFFER, ModelMetadata.ENTRY, c[0]));
            assertTrue("'" + message + "' should mention '" + c[1] + "'", message.contains(c[1]));
            assertTrue(message, message.startsWith("m.tflite"));
        }
    }

    @Test
    public void detectsACorruptedEntry() throws Exception {
        ByteBuffer good = model(FLATBUFFER, ModelMetadata.ENTRY, metadata("[\"a\", \"b\", \"c\"]", PREPROCESS));
        byte[] bytes = good.array();
        // Flip one byte inside the compressed metadata entry: inflate or the CRC check must catch it.
        int lastLocal = -1;
        for (int i = 0; i + 4 <= bytes.length; i++) {
            if (bytes[i] == 'P' && bytes[i + 1] == 'K' && bytes[i + 2] == 3 && bytes[i + 3] == 4) {
                lastLocal = i;
            }
        }
        int nameLength = bytes[lastLocal + 26];
        bytes[lastLocal + 30 + nameLength + 5] ^= 0x5a;
        String message = failure(ByteBuffer.wrap(bytes));
        assertTrue(message, message.contains(ModelMetadata.ENTRY) || message.contains("damaged"));
    }
}
