package org.xformer.demo.core;

/** An 8-bit RGB image as packed 0xAARRGGBB ints, row by row (what Android's Bitmap.getPixels gives). */
public final class ArgbImage {
    public final int width;
    public final int height;
    public final int[] pixels;

    public ArgbImage(int width, int height, int[] pixels) {
        if (width <= 0 || height <= 0 || pixels.length != width * height) {
            throw new IllegalArgumentException("an image of " + width + "x" + height + " needs "
                    + ((long) width * height) + " pixels, got " + pixels.length);
        }
        this.width = width;
        this.height = height;
        this.pixels = pixels;
    }

    /** Builds an image from packed RGB bytes (3 per pixel, row by row). */
    public static ArgbImage fromRgb(byte[] rgb, int width, int height) {
        if (rgb.length != width * height * 3) {
            throw new IllegalArgumentException("expected " + (width * height * 3) + " RGB bytes, got " + rgb.length);
        }
        int[] pixels = new int[width * height];
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = 0xff000000 | (rgb[3 * i] & 0xff) << 16 | (rgb[3 * i + 1] & 0xff) << 8 | (rgb[3 * i + 2] & 0xff);
        }
        return new ArgbImage(width, height, pixels);
    }

    /** The region [left, left + w) x [top, top + h), which must lie inside the image. */
    public ArgbImage crop(int left, int top, int w, int h) {
        if (left < 0 || top < 0 || w <= 0 || h <= 0 || left + w > width || top + h > height) {
            throw new IllegalArgumentException("crop " + w + "x" + h + "+" + left + "+" + top
                    + " is outside the " + width + "x" + height + " image");
        }
        int[] out = new int[w * h];
        for (int y = 0; y < h; y++) {
            System.arraycopy(pixels, (top + y) * width + left, out, y * w, w);
        }
        return new ArgbImage(w, h, out);
    }
}
