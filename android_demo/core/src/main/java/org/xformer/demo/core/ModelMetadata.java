package org.xformer.demo.core;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What the app needs from the model's own metadata (written by {@code xformer export}): labels and the
 * preprocessing contract. The document is the JSON entry of the zip appended to the model file: a .tflite
 * flatbuffer or a .pte ExecuTorch program (both runtimes ignore the trailing bytes).
 */
public final class ModelMetadata {
    public static final String FORMAT = "xformer-metadata/1";
    static final String ENTRY = "xformer_metadata.json";
    private static final Charset UTF8 = Charset.forName("UTF-8");

    public final String arch;
    public final List<String> labels;
    public final PreprocessSpec preprocess;
    /** Export precision as recorded by the exporter ("fp32", "int8", ...), or "unknown". */
    public final String precision;
    /**
     * The input and output tensors the exporter recorded (dtype, scale, zero point), or null in metadata
     * that predates them. The interpreter must report the same; {@link Classifier} checks it.
     */
    public final TensorInfo input;
    public final TensorInfo output;

    private ModelMetadata(String arch, List<String> labels, PreprocessSpec preprocess, String precision,
                          TensorInfo input, TensorInfo output) {
        this.arch = arch;
        this.labels = Collections.unmodifiableList(labels);
        this.preprocess = preprocess;
        this.precision = precision;
        this.input = input;
        this.output = output;
    }

    /** Which runtime a model file is for, from its flatbuffer file identifier (bytes 4-7). */
    public enum Kind {
        TFLITE("tflite"), EXECUTORCH("pte");

        /** The `xformer export --formats` name that writes this kind of file. */
        public final String format;

        Kind(String format) {
            this.format = format;
        }

        /** TFLITE for "TFL3", EXECUTORCH for "ET" and two digits (the program format version). */
        public static Kind of(ByteBuffer model, String modelName) throws ModelMetadataException {
            if (model.limit() >= 8) {
                if (model.get(4) == 'T' && model.get(5) == 'F' && model.get(6) == 'L' && model.get(7) == '3') {
                    return TFLITE;
                }
                if (model.get(4) == 'E' && model.get(5) == 'T' && Character.isDigit(model.get(6))
                        && Character.isDigit(model.get(7))) {
                    return EXECUTORCH;
                }
            }
            throw new ModelMetadataException(modelName + " is not a TFLite model (no TFL3 identifier) or an "
                    + "ExecuTorch program (no ET identifier)");
        }
    }

    /** Reads the metadata of the model in {@code model} (the whole file, e.g. memory-mapped). */
    public static ModelMetadata read(ByteBuffer model, String modelName) throws ModelMetadataException {
        Kind kind = Kind.of(model, modelName);
        TrailingZip zip = TrailingZip.find(model);
        byte[] json = zip == null ? null : zip.read(ENTRY);
        if (json == null) {
            throw new ModelMetadataException(modelName + " carries no xformer metadata (labels, preprocessing): "
                    + "export it with `xformer export MODEL --formats " + kind.format + "`, then run `xformer android` "
                    + "on the file");
        }
        return fromJson(new String(json, UTF8), modelName);
    }

    /** Reads the metadata of a model file on disk. */
    public static ModelMetadata read(File file) throws ModelMetadataException, IOException {
        RandomAccessFile raf = new RandomAccessFile(file, "r");
        try {
            return read(raf.getChannel().map(FileChannel.MapMode.READ_ONLY, 0, raf.length()), file.getName());
        } finally {
            raf.close();
        }
    }

    /** Parses and checks the metadata document itself. */
    @SuppressWarnings("unchecked")
    public static ModelMetadata fromJson(String text, String modelName) throws ModelMetadataException {
        Object parsed;
        try {
            parsed = Json.parse(text);
        } catch (IllegalArgumentException e) {
            throw new ModelMetadataException(modelName + " has unreadable metadata: " + e.getMessage(), e);
        }
        if (!(parsed instanceof Map)) {
            throw new ModelMetadataException(modelName + " has metadata that is not a JSON object");
        }
        Map<String, Object> json = (Map<String, Object>) parsed;
        Object format = json.get("metadata_format");
        if (!FORMAT.equals(format)) {
            throw new ModelMetadataException(modelName + " has metadata format '" + format + "'; this app reads "
                    + FORMAT + ": re-export the model with this version of xformer");
        }
        Object task = json.get("task");
        if (task != null && !"classify".equals(task)) {
            throw new ModelMetadataException(modelName + " is a " + task + " model; this app shows a classifier's "
                    + "top classes: export a classifier (`xformer models` lists them)");
        }
        List<String> labels = labels(json.get("labels"), modelName);
        Object numClasses = json.get("num_classes");
        if (numClasses instanceof Double && ((Double) numClasses).intValue() != labels.size()) {
            throw new ModelMetadataException(modelName + " has " + labels.size() + " labels for "
                    + ((Double) numClasses).intValue() + " classes: re-export it with matching labels");
        }
        Object preprocess = json.get("preprocess");
        if (!(preprocess instanceof Map)) {
            throw new ModelMetadataException(modelName + " has no preprocessing contract in its metadata: "
                    + "re-export it with `xformer export`");
        }
        PreprocessSpec spec;
        try {
            spec = PreprocessSpec.fromJson((Map<String, Object>) preprocess);
        } catch (IllegalArgumentException e) {
            throw new ModelMetadataException(modelName + " has an invalid preprocessing contract: " + e.getMessage(), e);
        }
        Object arch = json.get("arch");
        String precision = "unknown";
        TensorInfo input = null;
        TensorInfo output = null;
        Object export = json.get("export");
        if (export instanceof Map) {
            Map<String, Object> e = (Map<String, Object>) export;
            if (e.get("precision") instanceof String) {
                precision = (String) e.get("precision");
            }
            int[] inputShape = spec.nchw ? new int[] {1, 3, spec.inputHeight, spec.inputWidth}
                    : new int[] {1, spec.inputHeight, spec.inputWidth, 3};
            input = tensor(e.get("input"), inputShape, "input", modelName);
            output = tensor(e.get("output"), new int[] {1, labels.size()}, "output", modelName);
        }
        return new ModelMetadata(arch instanceof String ? (String) arch : "unknown", labels, spec, precision,
                input, output);
    }

    /** One {dtype, scale, zero_point} entry of the export section; null when absent or without a dtype. */
    @SuppressWarnings("unchecked")
    private static TensorInfo tensor(Object value, int[] shape, String role, String modelName)
            throws ModelMetadataException {
        if (!(value instanceof Map) || !(((Map<String, Object>) value).get("dtype") instanceof String)) {
            return null;
        }
        Map<String, Object> t = (Map<String, Object>) value;
        String dtype = (String) t.get("dtype");
        TensorInfo.DataType type;
        try {
            type = TensorInfo.DataType.valueOf(dtype.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new ModelMetadataException(modelName + " has an " + role + " of dtype " + dtype
                    + "; the app handles float32, uint8 and int8: re-export it", e);
        }
        if (type == TensorInfo.DataType.FLOAT32) {
            return new TensorInfo(shape, type, 0f, 0);
        }
        if (!(t.get("scale") instanceof Double) || !(t.get("zero_point") instanceof Double)) {
            throw new ModelMetadataException(modelName + ": the metadata gives the " + dtype + " " + role
                    + " no scale and zero point: re-export it with this version of xformer");
        }
        return new TensorInfo(shape, type, ((Double) t.get("scale")).floatValue(),
                ((Double) t.get("zero_point")).intValue());
    }

    private static List<String> labels(Object value, String modelName) throws ModelMetadataException {
        if (!(value instanceof List) || ((List<?>) value).isEmpty()) {
            throw new ModelMetadataException(modelName + " has no class labels in its metadata: export it from a "
                    + "checkpoint that carries labels");
        }
        List<String> labels = new ArrayList<String>();
        for (Object label : (List<?>) value) {
            if (!(label instanceof String)) {
                throw new ModelMetadataException(modelName + " has a label that is not a string: " + label);
            }
            labels.add((String) label);
        }
        return labels;
    }
}
