package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import org.junit.Test;

public class TensorInfoTest {
    private static final TensorInfo INT8 = new TensorInfo(new int[] {1, 4}, TensorInfo.DataType.INT8, 0.5f, 3);
    private static final TensorInfo UINT8 = new TensorInfo(new int[] {1, 4}, TensorInfo.DataType.UINT8, 0.25f, 128);

    @Test
    public void sizes() {
        TensorInfo f = new TensorInfo(new int[] {1, 256, 256, 3}, TensorInfo.DataType.FLOAT32, 0f, 0);
        assertEquals(196608, f.numElements());
        assertEquals(786432, f.numBytes());
        assertEquals(4, INT8.numBytes());
    }

    @Test
    public void quantiseRoundsHalfToEvenAndClips() {
        assertEquals(3, INT8.quantize(0f));
        assertEquals(4, INT8.quantize(0.25f));   // 0.5 + 3 = 3.5 -> 4 (even)
        assertEquals(4, INT8.quantize(0.75f));   // 1.5 + 3 = 4.5 -> 4 (even)
        assertEquals(127, INT8.quantize(1000f));
        assertEquals(-128, INT8.quantize(-1000f));
        assertEquals(255, UINT8.quantize(1000f) & 0xff);
        assertEquals(0, UINT8.quantize(-1000f));
    }

    @Test
    public void dequantiseReadsUnsignedBytesForUint8() {
        assertEquals((-1 - 3) * 0.5f, INT8.dequantize((byte) -1), 0);
        assertEquals((255 - 128) * 0.25f, UINT8.dequantize((byte) -1), 0);
        assertEquals(0f, UINT8.dequantize(UINT8.quantize(0f)), 0);
    }

    @Test
    public void integerTensorsNeedAScale() {
        try {
            new TensorInfo(new int[] {1}, TensorInfo.DataType.INT8, 0f, 0);
            fail("accepted an int8 tensor without a scale");
        } catch (IllegalArgumentException e) {
            assertEquals("INT8 tensor needs a quantisation scale > 0, got 0.0", e.getMessage());
        }
    }
}
