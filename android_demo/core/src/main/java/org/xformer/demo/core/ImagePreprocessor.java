package org.xformer.demo.core;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The model's preprocessing contract applied to an upright image, writing the input tensor exactly as
 * Python's {@code xformer.preprocess.preprocess} computes it (then quantised for integer inputs).
 */
public final class ImagePreprocessor {
    private final PreprocessSpec spec;
    private final TensorInfo input;

    public ImagePreprocessor(PreprocessSpec spec, TensorInfo input) {
        int[] expected = spec.nchw ? new int[] {1, 3, spec.inputHeight, spec.inputWidth}
                : new int[] {1, spec.inputHeight, spec.inputWidth, 3};
        if (!Arrays.equals(input.shape(), expected)) {
            throw new IllegalArgumentException("the model's input is " + Arrays.toString(input.shape())
                    + " but its metadata describes " + Arrays.toString(expected) + " (" + spec + "): re-export it");
        }
        this.spec = spec;
        this.input = input;
    }

    /** Resizes and crops as the reference does; the result is what the model sees. */
    public ArgbImage resizeAndCrop(ArgbImage image) {
        int height = spec.inputHeight;
        int width = spec.inputWidth;
        if (spec.resizeSize == null) {
            return PilResize.resize(image, width, height, spec.interpolation);
        }
        int resize = spec.resizeSize;
        int shortSide = Math.min(image.width, image.height);
        int newWidth;
        int newHeight;
        // Python: int(round(h * resize_size / short)), round half to even, as Math.rint.
        if (image.width <= image.height) {
            newWidth = resize;
            newHeight = (int) Math.rint((double) ((long) image.height * resize) / shortSide);
        } else {
            newWidth = (int) Math.rint((double) ((long) image.width * resize) / shortSide);
            newHeight = resize;
        }
        newWidth = Math.max(newWidth, width);
        newHeight = Math.max(newHeight, height);
        ArgbImage resized = PilResize.resize(image, newWidth, newHeight, spec.interpolation);
        if (!spec.centerCrop) {
            return PilResize.resize(resized, width, height, spec.interpolation);
        }
        int left = (int) Math.rint((newWidth - width) / 2.0);
        int top = (int) Math.rint((newHeight - height) / 2.0);
        return resized.crop(left, top, width, height);
    }

    /** Writes an image of the input size into {@code out} (position 0 on, in {@code out}'s byte order). */
    public void writeTensor(ArgbImage image, ByteBuffer out) {
        if (image.width != spec.inputWidth || image.height != spec.inputHeight) {
            throw new IllegalArgumentException("expected a " + spec.inputWidth + "x" + spec.inputHeight
                    + " image, got " + image.width + "x" + image.height);
        }
        if (out.capacity() != input.numBytes()) {
            throw new IllegalArgumentException("the input buffer holds " + out.capacity() + " bytes, the model's "
                    + "input needs " + input.numBytes());
        }
        int plane = image.width * image.height;
        float[] values = new float[plane * 3];
        float scale = spec.scale;
        for (int i = 0; i < plane; i++) {
            int p = image.pixels[i];
            int r = (p >> 16) & 0xff;
            int g = (p >> 8) & 0xff;
            int b = p & 0xff;
            int first = spec.bgr ? b : r;
            int third = spec.bgr ? r : b;
            // Same float32 operations in the same order as numpy: (pixel * scale - mean) / std.
            float c0 = ((float) first * scale - spec.mean(0)) / spec.std(0);
            float c1 = ((float) g * scale - spec.mean(1)) / spec.std(1);
            float c2 = ((float) third * scale - spec.mean(2)) / spec.std(2);
            if (spec.nchw) {
                values[i] = c0;
                values[plane + i] = c1;
                values[2 * plane + i] = c2;
            } else {
                values[3 * i] = c0;
                values[3 * i + 1] = c1;
                values[3 * i + 2] = c2;
            }
        }
        ByteBuffer target = out.duplicate().order(out.order());
        target.clear();
        if (input.type == TensorInfo.DataType.FLOAT32) {
            target.asFloatBuffer().put(values);
            return;
        }
        byte[] quantized = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            quantized[i] = input.quantize(values[i]);
        }
        target.put(quantized);
    }

    /** Resize, crop and write the tensor; returns the cropped image the model sees. */
    public ArgbImage preprocess(ArgbImage image, ByteBuffer out) {
        ArgbImage cropped = resizeAndCrop(image);
        writeTensor(cropped, out);
        return cropped;
    }
}
