package org.xformer.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;

import org.junit.Test;
import org.xformer.demo.core.PreprocessSpec.Interpolation;

public class PilResizeTest {
    private static ArgbImage grey(int width, int height, int... values) {
        int[] pixels = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            pixels[i] = 0xff000000 | values[i] << 16 | values[i] << 8 | values[i];
        }
        return new ArgbImage(width, height, pixels);
    }

    private static int[] greys(ArgbImage image) {
        int[] out = new int[image.pixels.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = image.pixels[i] & 0xff;
        }
        return out;
    }

    @Test
    public void sameSizeIsTheSameImage() {
        ArgbImage image = grey(2, 1, 10, 20);
        for (Interpolation mode : Interpolation.values()) {
            assertSame(image, PilResize.resize(image, 2, 1, mode));
        }
    }

    @Test
    public void bilinearHalvingAveragesPairsWithRounding() {
        // Downscaling by 2 widens the triangle to 2 pixels: the first output (center 1.0) weighs inputs 0..2
        // by 0.75, 0.75, 0.25, normalised: (0 * 3 + 100 * 3 + 200) / 7 = 71.4 -> 71. Values from Pillow.
        ArgbImage out = PilResize.resize(grey(4, 1, 0, 100, 200, 255), 2, 1, Interpolation.BILINEAR);
        assertArrayEquals(new int[] {71, 209}, greys(out));
    }

    @Test
    public void bicubicEdgeMatchesPillow() {
        // A hard edge upscaled with the cubic filter rings past 0 and 255; Pillow clips to 8 bits.
        ArgbImage out = PilResize.resize(grey(4, 1, 0, 0, 255, 255), 8, 1, Interpolation.BICUBIC);
        assertArrayEquals(new int[] {0, 0, 0, 52, 203, 255, 255, 255}, greys(out));
    }

    @Test
    public void heightShrinkingMuchMoreThanWidthRunsTheVerticalPassFirst() {
        // 2x4 -> 4x1: the height loses 3 rows, more than twice the width change, so Pillow 13 resamples rows
        // first. Horizontal-first would give 77 for the first pixel; Pillow gives 75.
        ArgbImage out = PilResize.resize(grey(2, 4, 189, 181, 64, 72, 8, 185, 88, 111), 4, 1, Interpolation.BICUBIC);
        assertArrayEquals(new int[] {75, 92, 124, 141}, greys(out));
    }

    @Test
    public void nearestPicksThePixelUnderEachOutputCenter() {
        ArgbImage out = PilResize.resize(grey(5, 1, 1, 2, 3, 4, 5), 2, 1, Interpolation.NEAREST);
        assertArrayEquals(new int[] {2, 4}, greys(out));
        ArgbImage up = PilResize.resize(grey(2, 1, 7, 9), 5, 1, Interpolation.NEAREST);
        assertArrayEquals(new int[] {7, 7, 9, 9, 9}, greys(up));
    }

    @Test
    public void channelsAreResampledIndependentlyAndAlphaIsOpaque() {
        ArgbImage image = new ArgbImage(2, 1, new int[] {0x00ff0000, 0x000000ff});
        ArgbImage out = PilResize.resize(image, 1, 1, Interpolation.BILINEAR);
        assertEquals(0xff800080, out.pixels[0]);
    }

    @Test
    public void onlyTheNeededAxisIsResampled() {
        ArgbImage image = grey(3, 2, 0, 100, 200, 50, 150, 250);
        ArgbImage wide = PilResize.resize(image, 3, 1, Interpolation.BILINEAR);
        assertArrayEquals(new int[] {25, 125, 225}, greys(wide));
    }
}
