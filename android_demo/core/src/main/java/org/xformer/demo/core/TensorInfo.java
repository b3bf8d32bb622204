package org.xformer.demo.core;

import java.util.Arrays;

/** Shape, element type and quantisation of one model input or output, as the interpreter reports them. */
public final class TensorInfo {
    /** The element types the app can feed and read. */
    public enum DataType {
        FLOAT32(4, 0, 0), UINT8(1, 0, 255), INT8(1, -128, 127);

        final int bytes;
        final int min;
        final int max;

        DataType(int bytes, int min, int max) {
            this.bytes = bytes;
            this.min = min;
            this.max = max;
        }
    }

    private final int[] shape;
    public final DataType type;
    /** real = (stored - zeroPoint) * scale for integer tensors; unused for FLOAT32. */
    public final float scale;
    public final int zeroPoint;

    public TensorInfo(int[] shape, DataType type, float scale, int zeroPoint) {
        if (type != DataType.FLOAT32 && !(scale > 0)) {
            throw new IllegalArgumentException(type + " tensor needs a quantisation scale > 0, got " + scale);
        }
        this.shape = shape.clone();
        this.type = type;
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    public int[] shape() {
        return shape.clone();
    }

    public int numElements() {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    public int numBytes() {
        return numElements() * type.bytes;
    }

    /**
     * Quantises a real value the way the Python runtime does with numpy on float32:
     * {@code clip(rint(x / scale + zero_point))}, ties to even.
     */
    public byte quantize(float x) {
        float q = x / scale + zeroPoint;
        double r = Math.rint(q);
        int clipped = r < type.min ? type.min : (r > type.max ? type.max : (int) r);
        return (byte) clipped;
    }

    /** The real value of one stored element ({@code raw} as read from the buffer, sign included). */
    public float dequantize(int raw) {
        int stored = type == DataType.UINT8 ? raw & 0xff : raw;
        return (stored - zeroPoint) * scale;
    }

    @Override
    public String toString() {
        String q = type == DataType.FLOAT32 ? "" : " (scale " + scale + ", zero point " + zeroPoint + ")";
        return type.name().toLowerCase() + Arrays.toString(shape) + q;
    }
}
