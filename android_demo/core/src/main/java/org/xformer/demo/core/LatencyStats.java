package org.xformer.demo.core;

import java.util.Arrays;

/**
 * Summary of repeated timings in milliseconds. Median and percentiles interpolate linearly between
 * order statistics, as numpy's {@code median}/{@code percentile} do, so app and Python report alike.
 */
public final class LatencyStats {
    public final int runs;
    public final double meanMs;
    public final double medianMs;
    public final double p90Ms;
    public final double minMs;
    public final double maxMs;
    /** Population standard deviation (numpy's default, ddof=0). */
    public final double stdMs;

    public LatencyStats(double[] samplesMs) {
        if (samplesMs.length == 0) {
            throw new IllegalArgumentException("no timings to summarise");
        }
        double[] sorted = samplesMs.clone();
        Arrays.sort(sorted);
        double sum = 0;
        for (double v : sorted) {
            sum += v;
        }
        double mean = sum / sorted.length;
        double squares = 0;
        for (double v : sorted) {
            squares += (v - mean) * (v - mean);
        }
        this.runs = sorted.length;
        this.meanMs = mean;
        this.medianMs = percentile(sorted, 50);
        this.p90Ms = percentile(sorted, 90);
        this.minMs = sorted[0];
        this.maxMs = sorted[sorted.length - 1];
        this.stdMs = Math.sqrt(squares / sorted.length);
    }

    /** Linear interpolation between the two nearest ranks of sorted values (numpy's default method). */
    public static double percentile(double[] sorted, double q) {
        double position = q / 100.0 * (sorted.length - 1);
        int lower = (int) Math.floor(position);
        int upper = Math.min(lower + 1, sorted.length - 1);
        double t = position - lower;
        double a = sorted[lower];
        double b = sorted[upper];
        // numpy's _lerp: measured from the nearer end, which keeps the result monotonic.
        return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
    }

    @Override
    public String toString() {
        return String.format("median %.2f ms, p90 %.2f ms, mean %.2f ms, min %.2f ms, max %.2f ms (%d runs)",
                medianMs, p90Ms, meanMs, minMs, maxMs, runs);
    }
}
