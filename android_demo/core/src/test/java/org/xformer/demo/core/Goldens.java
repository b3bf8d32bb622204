package org.xformer.demo.core;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.util.List;
import java.util.Map;

import org.junit.Assume;

/**
 * Access to the golden files that tests/test_android_demo.py writes with the Python reference
 * (tests/android_goldens.py). The directory comes from the system property {@code xformer.golden.dir}.
 */
final class Goldens {
    static final String PROPERTY = "xformer.golden.dir";

    final File dir;
    final Map<String, Object> manifest;

    private Goldens(File dir, Map<String, Object> manifest) {
        this.dir = dir;
        this.manifest = manifest;
    }

    /** The goldens, or an assumption failure naming how to produce them when the property is not set. */
    @SuppressWarnings("unchecked")
    static Goldens load() throws IOException {
        String path = System.getProperty(PROPERTY);
        Assume.assumeTrue("golden files are written by the Python side: run `pytest tests/test_android_demo.py`, "
                + "which passes -D" + PROPERTY, path != null);
        File dir = new File(path);
        byte[] text = bytes(new File(dir, "manifest.json"));
        return new Goldens(dir, (Map<String, Object>) Json.parse(new String(text, Charset.forName("UTF-8"))));
    }

    @SuppressWarnings("unchecked")
    List<Map<String, Object>> cases(String section) {
        return (List<Map<String, Object>>) manifest.get(section);
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> section(String name) {
        return (Map<String, Object>) manifest.get(name);
    }

    byte[] file(String name) throws IOException {
        return bytes(new File(dir, name));
    }

    ByteBuffer littleEndian(String name) throws IOException {
        byte[] data = file(name);
        ByteBuffer buffer = ByteBuffer.allocateDirect(data.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.put(data);
        buffer.clear();
        return buffer;
    }

    /** A "source" entry ({file, width, height} of raw RGB bytes) as an image. */
    @SuppressWarnings("unchecked")
    ArgbImage image(Object source) throws IOException {
        Map<String, Object> s = (Map<String, Object>) source;
        return ArgbImage.fromRgb(file((String) s.get("file")), integer(s.get("width")), integer(s.get("height")));
    }

    /** A tensor description {dtype, scale, zero_point} with the given shape. */
    @SuppressWarnings("unchecked")
    static TensorInfo tensor(Object info, int[] shape) {
        Map<String, Object> i = (Map<String, Object>) info;
        TensorInfo.DataType type = TensorInfo.DataType.valueOf(((String) i.get("dtype")).toUpperCase());
        return new TensorInfo(shape, type, (float) number(i.get("scale")), integer(i.get("zero_point")));
    }

    static int integer(Object value) {
        return ((Double) value).intValue();
    }

    static double number(Object value) {
        return (Double) value;
    }

    private static byte[] bytes(File file) throws IOException {
        RandomAccessFile raf = new RandomAccessFile(file, "r");
        try {
            byte[] data = new byte[(int) raf.length()];
            raf.readFully(data);
            return data;
        } finally {
            raf.close();
        }
    }
}
