package org.xformer.demo.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * How an image becomes the model's input tensor: the Java mirror of Python's
 * {@code xformer.preprocess.PreprocessSpec}, read from the model's metadata, never typed by hand.
 *
 * <p>Steps: resize so the short side is {@code resizeSize} (or straight to the input size when it is
 * null), center-crop to the input size, multiply by {@code scale}, subtract {@code mean}, divide by
 * {@code std} (per channel, in {@code channelOrder}), lay out as {@code layout}.
 */
public final class PreprocessSpec {
    /** PIL's resampling filters, by the names the metadata uses. */
    public enum Interpolation { NEAREST, BILINEAR, BICUBIC }

    public final int inputHeight;
    public final int inputWidth;
    /** Target of the short side before cropping; null resizes straight to the input size. */
    public final Integer resizeSize;
    public final boolean centerCrop;
    public final Interpolation interpolation;
    /** Float32 like the Python reference, which computes in float32 from here on. */
    public final float scale;
    private final float[] mean;
    private final float[] std;
    public final boolean bgr;
    public final boolean nchw;

    public PreprocessSpec(int inputHeight, int inputWidth, Integer resizeSize, String crop, String interpolation,
                          double scale, double[] mean, double[] std, String channelOrder, String layout) {
        List<String> problems = new ArrayList<String>();
        if (inputHeight <= 0 || inputWidth <= 0) {
            problems.add("input_size must be positive, got " + inputHeight + "x" + inputWidth);
        }
        if (resizeSize != null && resizeSize <= 0) {
            problems.add("resize_size must be positive or null, got " + resizeSize);
        }
        if (!"center".equals(crop) && !"none".equals(crop)) {
            problems.add("crop must be 'center' or 'none', got '" + crop + "'");
        }
        Interpolation mode = null;
        for (Interpolation candidate : Interpolation.values()) {
            if (candidate.name().toLowerCase().equals(interpolation)) {
                mode = candidate;
            }
        }
        if (mode == null) {
            problems.add("interpolation must be nearest, bilinear or bicubic, got '" + interpolation + "'");
        }
        if (!"RGB".equals(channelOrder) && !"BGR".equals(channelOrder)) {
            problems.add("channel_order must be 'RGB' or 'BGR', got '" + channelOrder + "'");
        }
        if (!"NHWC".equals(layout) && !"NCHW".equals(layout)) {
            problems.add("layout must be 'NHWC' or 'NCHW', got '" + layout + "'");
        }
        if (mean == null || std == null || mean.length != 3 || std.length != 3) {
            problems.add("mean and std need three values each");
        } else if (Math.min(std[0], Math.min(std[1], std[2])) <= 0) {
            problems.add("std must be > 0");
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException(join(problems));
        }
        this.inputHeight = inputHeight;
        this.inputWidth = inputWidth;
        this.resizeSize = resizeSize;
        this.centerCrop = "center".equals(crop);
        this.interpolation = mode;
        this.scale = (float) scale;
        this.mean = toFloats(mean);
        this.std = toFloats(std);
        this.bgr = "BGR".equals(channelOrder);
        this.nchw = "NCHW".equals(layout);
    }

    /** Reads the "preprocess" object of the metadata; every field is required so nothing is guessed. */
    public static PreprocessSpec fromJson(Map<String, Object> json) {
        List<?> size = list(json, "input_size");
        if (size.size() != 2) {
            throw new IllegalArgumentException("input_size must be [height, width]");
        }
        if (!json.containsKey("resize_size")) {
            throw new IllegalArgumentException("missing 'resize_size'");
        }
        Object mode = json.get("resize_mode");
        if (mode != null && !"crop".equals(mode)) {
            throw new IllegalArgumentException("resize_mode '" + mode + "', and this app resizes and crops");
        }
        Object resize = json.get("resize_size");
        return new PreprocessSpec(
                integer(size.get(0), "input_size"), integer(size.get(1), "input_size"),
                resize == null ? null : Integer.valueOf(integer(resize, "resize_size")),
                string(json, "crop"), string(json, "interpolation"), number(json.get("scale"), "scale"),
                numbers(list(json, "mean"), "mean"), numbers(list(json, "std"), "std"),
                string(json, "channel_order"), string(json, "layout"));
    }

    public float mean(int channel) {
        return mean[channel];
    }

    public float std(int channel) {
        return std[channel];
    }

    @Override
    public String toString() {
        return inputHeight + "x" + inputWidth + ", " + (resizeSize == null ? "resize to input" : "short side "
                + resizeSize) + (centerCrop ? ", center crop" : "") + ", " + interpolation.name().toLowerCase()
                + ", scale " + scale + ", mean [" + mean[0] + ", " + mean[1] + ", " + mean[2] + "], std ["
                + std[0] + ", " + std[1] + ", " + std[2] + "], " + (bgr ? "BGR" : "RGB") + ", "
                + (nchw ? "NCHW" : "NHWC");
    }

    private static List<?> list(Map<String, Object> json, String key) {
        Object value = json.get(key);
        if (!(value instanceof List)) {
            throw new IllegalArgumentException("'" + key + "' must be a list");
        }
        return (List<?>) value;
    }

    private static String string(Map<String, Object> json, String key) {
        Object value = json.get(key);
        if (!(value instanceof String)) {
            throw new IllegalArgumentException("'" + key + "' must be a string");
        }
        return (String) value;
    }

    private static double number(Object value, String key) {
        if (!(value instanceof Double)) {
            throw new IllegalArgumentException("'" + key + "' must be a number");
        }
        return (Double) value;
    }

    private static int integer(Object value, String key) {
        double d = number(value, key);
        if (d != Math.rint(d) || Math.abs(d) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("'" + key + "' must be an integer");
        }
        return (int) d;
    }

    private static double[] numbers(List<?> values, String key) {
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = number(values.get(i), key);
        }
        return out;
    }

    private static float[] toFloats(double[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (float) values[i];
        }
        return out;
    }

    private static String join(List<String> parts) {
        StringBuilder out = new StringBuilder();
        for (String part : parts) {
            out.append(out.length() == 0 ? "" : "; ").append(part);
        }
        return out.toString();
    }
}
