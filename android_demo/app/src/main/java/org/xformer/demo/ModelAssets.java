package org.xformer.demo;

import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;

/** The .tflite models packed in the app's assets (put there by `xformer android MODEL.tflite`). */
final class ModelAssets {
    private ModelAssets() {
    }

    static List<String> list(AssetManager assets) throws IOException {
        List<String> models = new ArrayList<String>();
        String[] names = assets.list("");
        Arrays.sort(names);
        for (String name : names) {
            if (name.endsWith(".tflite")) {
                models.add(name);
            }
        }
        return models;
    }

    /** Maps the model straight from the APK: one copy in memory, shared by the interpreter and the metadata. */
    static MappedByteBuffer map(AssetManager assets, String name) throws IOException {
        AssetFileDescriptor fd;
        try {
            fd = assets.openFd(name);
        } catch (FileNotFoundException e) {
            throw new IOException(name + " is compressed inside the APK and cannot be memory-mapped: keep "
                    + "`noCompress 'tflite'` in app/build.gradle", e);
        }
        try {
            FileInputStream in = new FileInputStream(fd.getFileDescriptor());
            try {
                return in.getChannel().map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
            } finally {
                in.close();
            }
        } finally {
            fd.close();
        }
    }
}
