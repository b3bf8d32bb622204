package org.xformer.demo.core;

/**
 * EXIF orientation of JPEG photos, and the transform that makes them upright: what Python's reference
 * does with {@code ImageOps.exif_transpose} before preprocessing. Camera apps store portrait photos as
 * landscape pixels plus this tag, so without it the model would see the photo on its side.
 */
public final class ExifOrientation {
    public static final int NORMAL = 1;
    private static final int TAG_ORIENTATION = 0x0112;

    private ExifOrientation() {
    }

    /** The orientation tag (1..8) of a JPEG file's EXIF block, or 1 when there is none or it is unreadable. */
    public static int fromJpeg(byte[] jpeg) {
        if (jpeg.length < 4 || (jpeg[0] & 0xff) != 0xff || (jpeg[1] & 0xff) != 0xd8) {
            return NORMAL;
        }
        int at = 2;
        while (at + 4 <= jpeg.length) {
            if ((jpeg[at] & 0xff) != 0xff) {
                return NORMAL;
            }
            int marker = jpeg[at + 1] & 0xff;
            if (marker == 0xff) {
                at++;
                continue;
            }
            if (marker == 0xda || marker == 0xd9) {
                return NORMAL;
            }
            int length = (jpeg[at + 2] & 0xff) << 8 | (jpeg[at + 3] & 0xff);
            if (length < 2) {
                return NORMAL;
            }
            if (marker == 0xe1 && isExifHeader(jpeg, at + 4, length - 2)) {
                return fromTiff(jpeg, at + 10, Math.min(jpeg.length, at + 2 + length));
            }
            at += 2 + length;
        }
        return NORMAL;
    }

    private static boolean isExifHeader(byte[] b, int at, int length) {
        return length >= 6 && at + 6 <= b.length && b[at] == 'E' && b[at + 1] == 'x' && b[at + 2] == 'i'
                && b[at + 3] == 'f' && b[at + 4] == 0 && b[at + 5] == 0;
    }

    private static int fromTiff(byte[] b, int tiff, int end) {
        if (tiff + 8 > end) {
            return NORMAL;
        }
        boolean little;
        if (b[tiff] == 'I' && b[tiff + 1] == 'I') {
            little = true;
        } else if (b[tiff] == 'M' && b[tiff + 1] == 'M') {
            little = false;
        } else {
            return NORMAL;
        }
        long ifd = u32(b, tiff + 4, little);
        if (ifd < 8 || tiff + ifd + 2 > end) {
            return NORMAL;
        }
        int at = (int) (tiff + ifd);
        int entries = u16(b, at, little);
        for (int i = 0; i < entries; i++) {
            int entry = at + 2 + 12 * i;
            if (entry + 12 > end) {
                return NORMAL;
            }
            if (u16(b, entry, little) == TAG_ORIENTATION) {
                int value = u16(b, entry + 8, little);
                return value >= 1 && value <= 8 ? value : NORMAL;
            }
        }
        return NORMAL;
    }

    private static int u16(byte[] b, int at, boolean little) {
        int lo = b[little ? at : at + 1] & 0xff;
        int hi = b[little ? at + 1 : at] & 0xff;
        return hi << 8 | lo;
    }

    private static long u32(byte[] b, int at, boolean little) {
        long lo = u16(b, little ? at : at + 2, little);
        long hi = u16(b, little ? at + 2 : at, little);
        return hi << 16 | lo;
    }

    /** The upright image for {@code orientation}, the same transform as PIL's exif_transpose. */
    public static ArgbImage apply(ArgbImage in, int orientation) {
        if (orientation <= NORMAL || orientation > 8) {
            return in;
        }
        boolean swap = orientation >= 5;
        int w = swap ? in.height : in.width;
        int h = swap ? in.width : in.height;
        int[] out = new int[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int sx;
                int sy;
                switch (orientation) {
                    case 2: // mirrored
                        sx = in.width - 1 - x;
                        sy = y;
                        break;
                    case 3: // upside down
                        sx = in.width - 1 - x;
                        sy = in.height - 1 - y;
                        break;
                    case 4: // mirrored upside down
                        sx = x;
                        sy = in.height - 1 - y;
                        break;
                    case 5: // transpose
                        sx = y;
                        sy = x;
                        break;
                    case 6: // camera turned clockwise: rotate the pixels clockwise
                        sx = y;
                        sy = in.height - 1 - x;
                        break;
                    case 7: // transverse
                        sx = in.width - 1 - y;
                        sy = in.height - 1 - x;
                        break;
                    default: // 8: rotate counter-clockwise
                        sx = in.width - 1 - y;
                        sy = x;
                        break;
                }
                out[y * w + x] = in.pixels[sy * in.width + sx];
            }
        }
        return new ArgbImage(w, h, out);
    }
}
