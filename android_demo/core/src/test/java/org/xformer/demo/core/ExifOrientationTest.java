package org.xformer.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class ExifOrientationTest {
    // 3x2 image:  1 2 3
    //             4 5 6
    private static final ArgbImage IMAGE = new ArgbImage(3, 2, new int[] {1, 2, 3, 4, 5, 6});

    private static int[] pixels(int orientation) {
        return ExifOrientation.apply(IMAGE, orientation).pixels;
    }

    @Test
    public void eachOrientationMakesTheImageUpright() {
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, pixels(1));
        assertArrayEquals(new int[] {3, 2, 1, 6, 5, 4}, pixels(2));
        assertArrayEquals(new int[] {6, 5, 4, 3, 2, 1}, pixels(3));
        assertArrayEquals(new int[] {4, 5, 6, 1, 2, 3}, pixels(4));
        assertArrayEquals(new int[] {1, 4, 2, 5, 3, 6}, pixels(5));
        assertArrayEquals(new int[] {4, 1, 5, 2, 6, 3}, pixels(6));
        assertArrayEquals(new int[] {6, 3, 5, 2, 4, 1}, pixels(7));
        assertArrayEquals(new int[] {3, 6, 2, 5, 1, 4}, pixels(8));
        assertEquals(2, ExifOrientation.apply(IMAGE, 6).width);
        assertEquals(3, ExifOrientation.apply(IMAGE, 6).height);
    }

    private static byte[] jpegWithOrientation(boolean littleEndian, int orientation) {
        byte[] tiff = littleEndian
                ? new byte[] {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                    (byte) orientation, 0, 0, 0, 0, 0, 0, 0}
                : new byte[] {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                    0, (byte) orientation, 0, 0, 0, 0, 0, 0};
        int length = 2 + 6 + tiff.length;
        byte[] out = new byte[2 + 4 + 16 + 2 + length + 2];
        int at = 0;
        out[at++] = (byte) 0xff;
        out[at++] = (byte) 0xd8;
        // An APP0 segment first, as real files have, to check the marker walk.
        out[at++] = (byte) 0xff;
        out[at++] = (byte) 0xe0;
        out[at++] = 0;
        out[at++] = 16;
        at += 14;
        out[at++] = (byte) 0xff;
        out[at++] = (byte) 0xe1;
        out[at++] = (byte) (length >> 8);
        out[at++] = (byte) length;
        byte[] exif = {'E', 'x', 'i', 'f', 0, 0};
        System.arraycopy(exif, 0, out, at, 6);
        System.arraycopy(tiff, 0, out, at + 6, tiff.length);
        at += 6 + tiff.length;
        out[at++] = (byte) 0xff;
        out[at] = (byte) 0xd9;
        return out;
    }

    @Test
    public void readsTheTagInBothByteOrders() {
        for (int orientation = 1; orientation <= 8; orientation++) {
            assertEquals(orientation, ExifOrientation.fromJpeg(jpegWithOrientation(true, orientation)));
            assertEquals(orientation, ExifOrientation.fromJpeg(jpegWithOrientation(false, orientation)));
        }
    }

    @Test
    public void missingOrInvalidTagsMeanNormal() {
        assertEquals(1, ExifOrientation.fromJpeg(new byte[] {'P', 'N', 'G', 0}));
        assertEquals(1, ExifOrientation.fromJpeg(new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, (byte) 0xd9}));
        assertEquals(1, ExifOrientation.fromJpeg(jpegWithOrientation(true, 9)));
        byte[] truncated = jpegWithOrientation(true, 6);
        assertEquals(1, ExifOrientation.fromJpeg(java.util.Arrays.copyOf(truncated, 30)));
    }
}
