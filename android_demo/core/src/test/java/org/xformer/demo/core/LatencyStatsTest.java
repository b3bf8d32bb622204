package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import org.junit.Test;

public class LatencyStatsTest {
    @Test
    public void summaryInTheTermsOfXformerBench() {
        // numpy: percentile([1, 2, 3, 4], [5, 50, 90, 95]) = 1.15, 2.5, 3.7, 3.85; std(ddof=1) = sqrt(5/3)
        LatencyStats s = new LatencyStats(new double[] {4, 1, 3, 2});
        assertEquals(2.5, s.medianMs, 1e-12);
        assertEquals(1.15, s.p5Ms, 1e-12);
        assertEquals(3.7, s.p90Ms, 1e-12);
        assertEquals(3.85, s.p95Ms, 1e-12);
        assertEquals(2.5, s.meanMs, 1e-12);
        assertEquals(Math.sqrt(5.0 / 3.0), s.stdMs, 1e-12);
        assertEquals(1, s.minMs, 0);
        assertEquals(4, s.maxMs, 0);
        assertEquals(4, s.runs);
        assertEquals(400, s.fps(), 1e-9);
    }

    @Test
    public void trimmedMeanDropsTenPercentFromEachEnd() {
        // 10 runs: floor(0.1 * 10) = 1 dropped at each end, so the 100 ms stall and the 1 ms run go.
        double[] runs = {5, 5, 5, 5, 5, 5, 5, 5, 1, 100};
        assertEquals(5.0, new LatencyStats(runs).trimmedMeanMs, 0);
        // 9 runs: floor(0.9) = 0, nothing dropped.
        double[] nine = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        assertEquals(5.0, new LatencyStats(nine).trimmedMeanMs, 1e-12);
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
            assertEquals("no timed runs to summarise", e.getMessage());
        }
    }
}
