package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import org.junit.Test;

public class ImagePreprocessorTest {
    private static final double[] MEAN = {0.5, 0.25, 0.125};
    private static final double[] STD = {0.5, 2.0, 4.0};

    private static PreprocessSpec spec(int h, int w, Integer resize, String crop, String order, String layout) {
        return new PreprocessSpec(h, w, resize, crop, "bilinear", 1 / 255.0, MEAN, STD, order, layout);
    }

    private static TensorInfo floatInput(int... shape) {
        return new TensorInfo(shape, TensorInfo.DataType.FLOAT32, 0f, 0);
    }

    private static ArgbImage solid(int width, int height, int argb) {
        int[] pixels = new int[width * height];
        Arrays.fill(pixels, argb);
        return new ArgbImage(width, height, pixels);
    }

    private static ByteBuffer buffer(TensorInfo info) {
        return ByteBuffer.allocateDirect(info.numBytes()).order(ByteOrder.nativeOrder());
    }

    @Test
    public void normalisesEachChannelInNhwc() {
        TensorInfo input = floatInput(1, 2, 2, 3);
        ByteBuffer out = buffer(input);
        new ImagePreprocessor(spec(2, 2, null, "center", "RGB", "NHWC"), input)
                .writeTensor(solid(2, 2, 0xff_ff_80_00), out);
        assertEquals((1f - 0.5f) / 0.5f, out.getFloat(0), 1e-7);
        assertEquals((128 / 255f - 0.25f) / 2f, out.getFloat(4), 1e-7);
        assertEquals((0f - 0.125f) / 4f, out.getFloat(8), 1e-7);
        assertEquals(out.getFloat(0), out.getFloat(12), 0);
    }

    @Test
    public void bgrReversesChannelsBeforeNormalisingAndNchwSplitsPlanes() {
        TensorInfo input = floatInput(1, 3, 1, 2);
        ByteBuffer out = buffer(input);
        new ImagePreprocessor(spec(1, 2, null, "center", "BGR", "NCHW"), input)
                .writeTensor(new ArgbImage(2, 1, new int[] {0xff_ff_00_00, 0xff_00_00_ff}), out);
        // Plane 0 is blue, normalised with mean[0]/std[0]: the first pixel has no blue, the second full blue.
        assertEquals((0f - 0.5f) / 0.5f, out.getFloat(0), 1e-7);
        assertEquals((1f - 0.5f) / 0.5f, out.getFloat(4), 1e-7);
        // Plane 2 is red with mean[2]/std[2].
        assertEquals((1f - 0.125f) / 4f, out.getFloat(16), 1e-7);
        assertEquals((0f - 0.125f) / 4f, out.getFloat(20), 1e-7);
    }

    @Test
    public void shortSideResizeThenCenterCrop() {
        // 40x20 landscape, short side -> 10: 20x10, crop 6x6 at left round(7.0)=7, top round(2.0)=2.
        int[] pixels = new int[40 * 20];
        for (int y = 0; y < 20; y++) {
            for (int x = 0; x < 40; x++) {
                pixels[y * 40 + x] = 0xff000000 | (x * 6) << 16 | (y * 12) << 8;
            }
        }
        PreprocessSpec s = new PreprocessSpec(6, 6, 10, "center", "nearest", 1.0, new double[] {0, 0, 0},
                new double[] {1, 1, 1}, "RGB", "NHWC");
        ArgbImage cropped = new ImagePreprocessor(s, floatInput(1, 6, 6, 3)).resizeAndCrop(new ArgbImage(40, 20, pixels));
        assertEquals(6, cropped.width);
        assertEquals(6, cropped.height);
        ArgbImage resized = PilResize.resize(new ArgbImage(40, 20, pixels), 20, 10, PreprocessSpec.Interpolation.NEAREST);
        assertEquals(resized.pixels[2 * 20 + 7], cropped.pixels[0]);
    }

    @Test
    public void cropOffsetsRoundHalfToEvenLikePython() {
        // 7 -> 4 leaves 3 columns: Python round(1.5) = 2; 9 -> 4 leaves 5: round(2.5) = 2, not 3.
        int[] seven = new int[7];
        int[] nine = new int[9];
        for (int i = 0; i < 9; i++) {
            if (i < 7) {
                seven[i] = 0xff000000 | i;
            }
            nine[i] = 0xff000000 | i;
        }
        PreprocessSpec s = new PreprocessSpec(1, 4, 1, "center", "nearest", 1.0, new double[] {0, 0, 0},
                new double[] {1, 1, 1}, "RGB", "NHWC");
        ImagePreprocessor p = new ImagePreprocessor(s, floatInput(1, 1, 4, 3));
        assertEquals(2, p.resizeAndCrop(new ArgbImage(7, 1, seven)).pixels[0] & 0xff);
        assertEquals(2, p.resizeAndCrop(new ArgbImage(9, 1, nine)).pixels[0] & 0xff);
    }

    @Test
    public void quantisedInputsUseTheTensorsScaleAndZeroPoint() {
        TensorInfo input = new TensorInfo(new int[] {1, 1, 1, 3}, TensorInfo.DataType.INT8, 1 / 255f, -128);
        ByteBuffer out = buffer(input);
        PreprocessSpec s = new PreprocessSpec(1, 1, null, "center", "bilinear", 1 / 255.0, new double[] {0, 0, 0},
                new double[] {1, 1, 1}, "RGB", "NHWC");
        new ImagePreprocessor(s, input).writeTensor(new ArgbImage(1, 1, new int[] {0xff_ff_80_00}), out);
        assertEquals(127, out.get(0));
        assertEquals(0, out.get(1));
        assertEquals(-128, out.get(2));
    }

    @Test
    public void rejectsAModelWhoseInputDisagreesWithItsMetadata() {
        try {
            new ImagePreprocessor(spec(224, 224, 256, "center", "RGB", "NHWC"), floatInput(1, 3, 224, 224));
            fail("accepted an NCHW input for an NHWC contract");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("[1, 3, 224, 224]") && e.getMessage().contains("re-export"));
        }
    }

    @Test
    public void rejectsAWronglySizedBuffer() {
        TensorInfo input = floatInput(1, 2, 2, 3);
        try {
            new ImagePreprocessor(spec(2, 2, null, "center", "RGB", "NHWC"), input)
                    .writeTensor(solid(2, 2, 0), ByteBuffer.allocate(10));
            fail("accepted a 10-byte buffer");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("needs 48"));
        }
    }
}
