package org.xformer.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Reads entries of the zip archive appended to a .tflite or .pte file, straight from a (memory-mapped)
 * buffer: the app maps the model once for the interpreter and reads the metadata from the same bytes.
 *
 * <p>Offsets inside the archive may be absolute (as the Python exporter writes them) or relative to the
 * start of the archive (as a plain {@code cat model zip} gives); both are accepted.
 */
final class TrailingZip {
    private static final int EOCD_SIGNATURE = 0x06054b50;
    private static final int CENTRAL_SIGNATURE = 0x02014b50;
    private static final int LOCAL_SIGNATURE = 0x04034b50;
    private static final int EOCD_SIZE = 22;
    private static final int MAX_COMMENT = 0xffff;

    private final ByteBuffer buf;
    private final int centralStart;
    private final int entryCount;
    private final int base;

    private TrailingZip(ByteBuffer buf, int centralStart, int entryCount, int base) {
        this.buf = buf;
        this.centralStart = centralStart;
        this.entryCount = entryCount;
        this.base = base;
    }

    /** The archive at the end of {@code file}, or null when the file does not end with one. */
    static TrailingZip find(ByteBuffer file) {
        ByteBuffer buf = file.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int limit = buf.limit();
        int lowest = Math.max(0, limit - EOCD_SIZE - MAX_COMMENT);
        for (int at = limit - EOCD_SIZE; at >= lowest; at--) {
            if (buf.getInt(at) != EOCD_SIGNATURE || at + EOCD_SIZE + u16(buf, at + 20) != limit) {
                continue;
            }
            long centralSize = u32(buf, at + 12);
            long centralOffset = u32(buf, at + 16);
            long base = at - centralSize - centralOffset;
            if (base < 0 || centralOffset + centralSize > at) {
                continue;
            }
            return new TrailingZip(buf, (int) (base + centralOffset), u16(buf, at + 10), (int) base);
        }
        return null;
    }

    /** The uncompressed bytes of entry {@code name}, or null when the archive has no such entry. */
    byte[] read(String name) throws ModelMetadataException {
        int at = centralStart;
        for (int i = 0; i < entryCount; i++) {
            if (at + 46 > buf.limit() || buf.getInt(at) != CENTRAL_SIGNATURE) {
                throw new ModelMetadataException("the metadata archive appended to the model is damaged");
            }
            int method = u16(buf, at + 10);
            long crc = u32(buf, at + 16);
            int compressedSize = (int) u32(buf, at + 20);
            int size = (int) u32(buf, at + 24);
            int nameLength = u16(buf, at + 28);
            int skip = nameLength + u16(buf, at + 30) + u16(buf, at + 32);
            long localOffset = base + u32(buf, at + 42);
            if (name.equals(ascii(at + 46, nameLength))) {
                return inflate(name, (int) localOffset, method, compressedSize, size, crc);
            }
            at += 46 + skip;
        }
        return null;
    }

    private byte[] inflate(String name, int local, int method, int compressedSize, int size, long crc)
            throws ModelMetadataException {
        if (local + 30 > buf.limit() || buf.getInt(local) != LOCAL_SIGNATURE) {
            throw new ModelMetadataException("the metadata archive appended to the model is damaged (" + name + ")");
        }
        int dataStart = local + 30 + u16(buf, local + 26) + u16(buf, local + 28);
        if (dataStart + compressedSize > buf.limit()) {
            throw new ModelMetadataException("the metadata archive appended to the model is truncated (" + name + ")");
        }
        byte[] packed = new byte[compressedSize];
        ByteBuffer view = buf.duplicate();
        view.position(dataStart);
        view.get(packed);
        byte[] out;
        if (method == 0) {
            out = packed;
        } else if (method == 8) {
            out = new byte[size];
            Inflater inflater = new Inflater(true);
            try {
                inflater.setInput(packed);
                int n = inflater.inflate(out);
                if (n != size) {
                    throw new ModelMetadataException("metadata entry " + name + " is truncated");
                }
            } catch (DataFormatException e) {
                throw new ModelMetadataException("metadata entry " + name + " is not valid deflate data", e);
            } finally {
                inflater.end();
            }
        } else {
            throw new ModelMetadataException("metadata entry " + name + " uses unsupported zip method " + method);
        }
        CRC32 check = new CRC32();
        check.update(out, 0, out.length);
        if (check.getValue() != crc) {
            throw new ModelMetadataException("metadata entry " + name + " fails its checksum: the file is damaged");
        }
        return out;
    }

    private String ascii(int at, int length) {
        char[] chars = new char[length];
        for (int i = 0; i < length; i++) {
            chars[i] = (char) (buf.get(at + i) & 0xff);
        }
        return new String(chars);
    }

    private static int u16(ByteBuffer b, int at) {
        return b.getShort(at) & 0xffff;
    }

    private static long u32(ByteBuffer b, int at) {
        return b.getInt(at) & 0xffffffffL;
    }
}
