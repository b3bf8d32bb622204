package org.xformer.demo.core;

import org.xformer.demo.core.PreprocessSpec.Interpolation;

/**
 * Image resizing that reproduces Pillow's {@code Image.resize} on 8-bit RGB images bit for bit, so the
 * app feeds the model exactly what the Python reference does.
 *
 * <p>Bilinear and bicubic follow Pillow's separable resampler (libImaging/Resample.c, Pillow 13): the filter
 * support grows with the downscale factor, coefficients are normalised per output pixel and converted to 22-bit
 * fixed point, and the first pass is rounded and clipped to 8 bits before the second. The pass order matters:
 * the horizontal pass runs first (only over the rows the vertical pass reads) unless the height shrinks by more
 * than twice as many pixels as the width, when the vertical pass runs first. Nearest follows Pillow's affine
 * scaling (libImaging/Geometry.c), whose source positions accumulate in double precision.
 */
public final class PilResize {
    private static final int PRECISION_BITS = 32 - 8 - 2;

    private PilResize() {
    }

    public static ArgbImage resize(ArgbImage in, int width, int height, Interpolation mode) {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("cannot resize to " + width + "x" + height);
        }
        if (width == in.width && height == in.height) {
            return in;
        }
        if (mode == Interpolation.NEAREST) {
            return nearest(in, width, height);
        }
        return resample(in, width, height, mode);
    }

    /** Per output pixel: first source index, number of taps, and fixed-point weights. */
    private static final class Coefficients {
        final int[] first;
        final int[] count;
        final int[] weights;
        final int taps;

        Coefficients(int[] first, int[] count, int[] weights, int taps) {
            this.first = first;
            this.count = count;
            this.weights = weights;
            this.taps = taps;
        }
    }

    private static double support(Interpolation mode) {
        return mode == Interpolation.BICUBIC ? 2.0 : 1.0;
    }

    private static double filter(Interpolation mode, double x) {
        if (x < 0.0) {
            x = -x;
        }
        if (mode == Interpolation.BILINEAR) {
            return x < 1.0 ? 1.0 - x : 0.0;
        }
        // Keys cubic with a = -0.5, written in Pillow's operation order so rounding matches.
        double a = -0.5;
        if (x < 1.0) {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0) {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    private static Coefficients coefficients(int inSize, int outSize, Interpolation mode) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = support(mode) * filterScale;
        int taps = (int) Math.ceil(support) * 2 + 1;
        int[] first = new int[outSize];
        int[] count = new int[outSize];
        int[] weights = new int[outSize * taps];
        double[] k = new double[taps];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            double ww = 0.0;
            for (int x = 0; x < xmax; x++) {
                double w = filter(mode, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                weights[xx * taps + x] = w < 0 ? (int) (-0.5 + w * (1 << PRECISION_BITS))
                        : (int) (0.5 + w * (1 << PRECISION_BITS));
            }
            first[xx] = xmin;
            count[xx] = xmax;
        }
        return new Coefficients(first, count, weights, taps);
    }

    private static ArgbImage resample(ArgbImage in, int width, int height, Interpolation mode) {
        boolean needHorizontal = width != in.width;
        boolean needVertical = height != in.height;
        int shrinkY = in.height - height;
        boolean horizontalFirst = !(shrinkY > 0 && shrinkY > (in.width - width) * 2);
        Coefficients vertical = coefficients(in.height, height, mode);
        if (horizontalFirst) {
            int[] pixels = in.pixels;
            int rowOffset = 0;
            if (needHorizontal) {
                rowOffset = vertical.first[0];
                int rowLast = vertical.first[height - 1] + vertical.count[height - 1];
                pixels = horizontal(in.pixels, in.width, rowOffset, rowLast - rowOffset,
                        coefficients(in.width, width, mode));
            }
            return new ArgbImage(width, height, needVertical ? vertical(pixels, width, rowOffset, height, vertical)
                    : pixels);
        }
        int[] pixels = vertical(in.pixels, in.width, 0, height, vertical);
        return new ArgbImage(width, height, needHorizontal
                ? horizontal(pixels, in.width, 0, height, coefficients(in.width, width, mode)) : pixels);
    }

    /** Resamples rows [rowFirst, rowFirst + rows) of a {@code srcWidth}-wide image along x. */
    private static int[] horizontal(int[] src, int srcWidth, int rowFirst, int rows, Coefficients c) {
        int outWidth = c.first.length;
        int[] out = new int[outWidth * rows];
        int half = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < rows; y++) {
            int rowStart = (rowFirst + y) * srcWidth;
            int outRow = y * outWidth;
            for (int xx = 0; xx < outWidth; xx++) {
                int r = half;
                int g = half;
                int b = half;
                int start = rowStart + c.first[xx];
                int weightStart = xx * c.taps;
                for (int x = 0; x < c.count[xx]; x++) {
                    int p = src[start + x];
                    int k = c.weights[weightStart + x];
                    r += ((p >> 16) & 0xff) * k;
                    g += ((p >> 8) & 0xff) * k;
                    b += (p & 0xff) * k;
                }
                out[outRow + xx] = pack(r, g, b);
            }
        }
        return out;
    }

    /** Resamples a {@code width}-wide image along y; its row 0 is source row {@code rowOffset}. */
    private static int[] vertical(int[] src, int width, int rowOffset, int height, Coefficients c) {
        int[] out = new int[width * height];
        int half = 1 << (PRECISION_BITS - 1);
        for (int yy = 0; yy < height; yy++) {
            int first = c.first[yy] - rowOffset;
            int weightStart = yy * c.taps;
            for (int xx = 0; xx < width; xx++) {
                int r = half;
                int g = half;
                int b = half;
                for (int y = 0; y < c.count[yy]; y++) {
                    int p = src[(first + y) * width + xx];
                    int k = c.weights[weightStart + y];
                    r += ((p >> 16) & 0xff) * k;
                    g += ((p >> 8) & 0xff) * k;
                    b += (p & 0xff) * k;
                }
                out[yy * width + xx] = pack(r, g, b);
            }
        }
        return out;
    }

    private static int pack(int r, int g, int b) {
        return 0xff000000 | clip8(r) << 16 | clip8(g) << 8 | clip8(b);
    }

    private static int clip8(int fixed) {
        int v = fixed >> PRECISION_BITS;
        return v < 0 ? 0 : (v > 255 ? 255 : v);
    }

    private static ArgbImage nearest(ArgbImage in, int width, int height) {
        double stepX = (double) in.width / width;
        double stepY = (double) in.height / height;
        int[] column = new int[width];
        double xo = stepX * 0.5;
        for (int x = 0; x < width; x++) {
            column[x] = coordinate(xo, in.width);
            xo += stepX;
        }
        int[] out = new int[width * height];
        double yo = stepY * 0.5;
        for (int y = 0; y < height; y++) {
            int row = coordinate(yo, in.height);
            for (int x = 0; x < width; x++) {
                // Pillow fills positions that fall outside the source with black.
                out[y * width + x] = row < 0 || column[x] < 0 ? 0xff000000 : in.pixels[row * in.width + column[x]];
            }
            yo += stepY;
        }
        return new ArgbImage(width, height, out);
    }

    private static int coordinate(double v, int size) {
        int i = v < 0.0 ? -1 : (int) v;
        return i < size ? i : -1;
    }
}
