package org.xformer.demo.core;

import java.util.Arrays;

/**
 * Summary of timed runs in milliseconds, in the same terms as {@code xformer bench}
 * (xformer/benchmarks/stats.py): the median is the headline, the trimmed mean drops {@code floor(0.1 n)} runs
 * from each end, and mean, std (sample, ddof=1), min, max and the percentiles (numpy's linear interpolation)
 * cover all runs.
 */
public final class LatencyStats {
    static final double TRIM_FRACTION = 0.1;

    public final int runs;
    public final double meanMs;
    public final double medianMs;
    public final double stdMs;
    public final double minMs;
    public final double maxMs;
    public final double trimmedMeanMs;
    public final double p5Ms;
    public final double p90Ms;
    public final double p95Ms;

    public LatencyStats(double[] samplesMs) {
        if (samplesMs.length == 0) {
            throw new IllegalArgumentException("no timed runs to summarise");
        }
        double[] sorted = samplesMs.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double mean = mean(sorted, 0, n);
        double squares = 0;
        for (double v : sorted) {
            squares += (v - mean) * (v - mean);
        }
        int cut = (int) Math.floor(TRIM_FRACTION * n);
        this.runs = n;
        this.meanMs = mean;
        this.medianMs = percentile(sorted, 50);
        this.stdMs = n > 1 ? Math.sqrt(squares / (n - 1)) : 0.0;
        this.minMs = sorted[0];
        this.maxMs = sorted[n - 1];
        this.trimmedMeanMs = mean(sorted, cut, n - cut);
        this.p5Ms = percentile(sorted, 5);
        this.p90Ms = percentile(sorted, 90);
        this.p95Ms = percentile(sorted, 95);
    }

    /** Frames per second at batch 1, from the median as {@code xformer bench} reports it. */
    public double fps() {
        return 1000.0 / medianMs;
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

    private static double mean(double[] values, int from, int to) {
        double sum = 0;
        for (int i = from; i < to; i++) {
            sum += values[i];
        }
        return sum / (to - from);
    }
}
