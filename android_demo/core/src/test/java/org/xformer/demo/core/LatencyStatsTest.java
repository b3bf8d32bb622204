package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import org.junit.Test;

public class LatencyStatsTest {
    @Test
    public void medianAndP90InterpolateLikeNumpy() {
        // numpy: median([4, 1, 3, 2]) = 2.5; percentile([1..4], 90) = 3.7
        LatencyStats s = new LatencyStats(new double[] {4, 1, 3, 2});
        assertEquals(2.5, s.medianMs, 1e-12);
        assertEquals(3.7, s.p90Ms, 1e-12);
        assertEquals(2.5, s.meanMs, 1e-12);
        assertEquals(Math.sqrt(1.25), s.stdMs, 1e-12);
        assertEquals(1, s.minMs, 0);
        assertEquals(4, s.maxMs, 0);
        assertEquals(4, s.runs);
    }

    @Test
    public void oddCountAndSingleSample() {
        assertEquals(5, new LatencyStats(new double[] {9, 5, 1}).medianMs, 0);
        LatencyStats one = new LatencyStats(new double[] {3.25});
        assertEquals(3.25, one.medianMs, 0);
        assertEquals(3.25, one.p90Ms, 0);
        assertEquals(0, one.stdMs, 0);
    }

    @Test
    public void noSamplesIsAnError() {
        try {
            new LatencyStats(new double[0]);
            fail("summarised nothing");
        } catch (IllegalArgumentException e) {
            assertEquals("no timings to summarise", e.getMessage());
        }
    }
}
