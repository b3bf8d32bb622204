package org.xformer.demo;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

import android.content.ContentResolver;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;

import org.xformer.demo.core.ArgbImage;
import org.xformer.demo.core.ExifOrientation;

/** Decodes a picked or captured photo into upright ARGB pixels, as the Python reference's load_image does. */
final class ImageLoader {
    /**
     * Larger photos are decoded at 1/2, 1/4, ... size to bound memory; the screen says so, since the model
     * then sees slightly different pixels than Python would from the same file.
     */
    static final int MAX_PIXELS = 16000000;

    static final class Loaded {
        final ArgbImage image;
        final int sampleSize;
        final double decodeMs;

        Loaded(ArgbImage image, int sampleSize, double decodeMs) {
            this.image = image;
            this.sampleSize = sampleSize;
            this.decodeMs = decodeMs;
        }
    }

    private ImageLoader() {
    }

    static Loaded load(ContentResolver resolver, Uri uri) throws IOException {
        long start = System.nanoTime();
        byte[] bytes = readAll(resolver, uri);
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        BitmapFactory.decodeByteArray(bytes, 0, bytes.length, bounds);
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw new IOException("cannot decode " + uri + " as an image");
        }
        int sampleSize = 1;
        while ((long) (bounds.outWidth / sampleSize) * (bounds.outHeight / sampleSize) > MAX_PIXELS) {
            sampleSize *= 2;
        }
        BitmapFactory.Options options = new BitmapFactory.Options();
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        options.inSampleSize = sampleSize;
        Bitmap bitmap = BitmapFactory.decodeByteArray(bytes, 0, bytes.length, options);
        if (bitmap == null) {
            throw new IOException("cannot decode " + uri + " as an image");
        }
        int width = bitmap.getWidth();
        int height = bitmap.getHeight();
        int[] pixels = new int[width * height];
        bitmap.getPixels(pixels, 0, width, 0, 0, width, height);
        bitmap.recycle();
        ArgbImage upright = ExifOrientation.apply(new ArgbImage(width, height, pixels), ExifOrientation.fromJpeg(bytes));
        return new Loaded(upright, sampleSize, (System.nanoTime() - start) / 1e6);
    }

    private static byte[] readAll(ContentResolver resolver, Uri uri) throws IOException {
        InputStream in = resolver.openInputStream(uri);
        if (in == null) {
            throw new IOException("cannot open " + uri);
        }
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] chunk = new byte[1 << 16];
            int n;
            while ((n = in.read(chunk)) > 0) {
                out.write(chunk, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }
}
