package org.xformer.demo;

/** Where LiteRT runs the model; the label is what the delegate spinner shows. */
enum Accelerator {
    CPU("CPU (XNNPACK)"), GPU("GPU delegate"), NNAPI("NNAPI delegate");

    final String label;

    Accelerator(String label) {
        this.label = label;
    }

    @Override
    public String toString() {
        return label;
    }
}
