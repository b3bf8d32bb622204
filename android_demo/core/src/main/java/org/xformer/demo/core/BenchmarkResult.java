package org.xformer.demo.core;

/** Timed inference runs after warm-up, as {@code xformer bench} measures a configuration. */
public final class BenchmarkResult {
    public final int warmupRuns;
    public final double warmupMeanMs;
    public final LatencyStats latency;

    public BenchmarkResult(int warmupRuns, double warmupMeanMs, LatencyStats latency) {
        this.warmupRuns = warmupRuns;
        this.warmupMeanMs = warmupMeanMs;
        this.latency = latency;
    }
}
