package org.xformer.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;

import org.junit.Test;

public class PostprocessTest {
    private static final List<String> LABELS = Arrays.asList("a", "b", "c", "d");

    @Test
    public void softmaxIsStableForLargeLogits() {
        double[] p = Postprocess.softmax(new float[] {1000f, 1000f, -1000f});
        assertEquals(0.5, p[0], 1e-15);
        assertEquals(0.5, p[1], 1e-15);
        assertEquals(0.0, p[2], 1e-300);
    }

    @Test
    public void topKOrdersByLogitAndBreaksTiesTowardsTheLowerIndex() {
        List<Prediction> top = Postprocess.topK(new float[] {1f, 3f, 3f, -2f}, LABELS, 3);
        assertEquals(3, top.size());
        assertEquals(1, top.get(0).index);
        assertEquals(2, top.get(1).index);
        assertEquals(0, top.get(2).index);
        assertEquals("b", top.get(0).label);
        assertEquals(top.get(0).score, top.get(1).score, 0);
        double total = 0;
        for (double p : Postprocess.softmax(new float[] {1f, 3f, 3f, -2f})) {
            total += p;
        }
        assertEquals(1.0, total, 1e-12);
    }

    @Test
    public void negativeZeroTiesWithZero() {
        List<Prediction> top = Postprocess.topK(new float[] {-0.0f, 0.0f}, Arrays.asList("x", "y"), 2);
        assertEquals(0, top.get(0).index);
    }

    @Test
    public void kLargerThanTheClassesAndMissingLabels() {
        List<Prediction> top = Postprocess.topK(new float[] {0f, 1f, 2f, 3f, 4f}, LABELS, 10);
        assertEquals(5, top.size());
        assertEquals("4", top.get(0).label);
    }

    @Test
    public void logitsFromFloatAndQuantisedOutputs() {
        ByteBuffer f = ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder());
        f.putFloat(1.5f).putFloat(-2f);
        TensorInfo floats = new TensorInfo(new int[] {1, 2}, TensorInfo.DataType.FLOAT32, 0f, 0);
        assertArrayEquals(new float[] {1.5f, -2f}, Postprocess.logits(f, floats), 0);

        ByteBuffer q = ByteBuffer.wrap(new byte[] {-128, 0, 127});
        TensorInfo int8 = new TensorInfo(new int[] {1, 3}, TensorInfo.DataType.INT8, 0.1f, -28);
        float[] logits = Postprocess.logits(q, int8);
        assertEquals(-100 * 0.1f, logits[0], 0);
        assertEquals(28 * 0.1f, logits[1], 0);
        assertEquals(155 * 0.1f, logits[2], 0);
    }

    @Test
    public void readsFromTheStartWhateverTheBufferPosition() {
        ByteBuffer f = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        f.putFloat(7f).putFloat(8f);
        assertTrue(f.position() == 8);
        TensorInfo floats = new TensorInfo(new int[] {2}, TensorInfo.DataType.FLOAT32, 0f, 0);
        assertArrayEquals(new float[] {7f, 8f}, Postprocess.logits(f, floats), 0);
    }
}
