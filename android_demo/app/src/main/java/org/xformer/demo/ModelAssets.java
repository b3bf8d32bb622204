package org.xformer.demo;

import java.io.File;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import android.content.res.AssetFileDescriptor;
import android.content.Context;
import android.content.pm.PackageManager;
import android.content.res.AssetManager;

/**
 * The models packed in the app's assets (put there by `xformer android MODEL`): .tflite files for LiteRT and
 * .pte programs for ExecuTorch.
 */
final class ModelAssets {
    private ModelAssets() {
    }

    static List<String> list(AssetManager assets) throws IOException {
        List<String> models = new ArrayList<String>();
        String[] names = assets.list("");
        Arrays.sort(names);
        for (String name : names) {
            if (name.endsWith(".tflite") || name.endsWith(".pte")) {
                models.add(name);
            }
        }
        return models;
    }

    /**
     * The asset as a file in app storage, copied once per installed APK (assets change only with an update):
     * ExecuTorch loads programs from a path. The copy is written to a temporary name and renamed, so a crash
     * never leaves half a program.
     */
    static File file(Context context, String name) throws IOException {
        File dir = new File(context.getFilesDir(), "models");
        File target = new File(dir, name);
        AssetFileDescriptor fd = context.getAssets().openFd(name);
        long size = fd.getDeclaredLength();
        fd.close();
        long installed;
        try {
            installed = context.getPackageManager().getPackageInfo(context.getPackageName(), 0).lastUpdateTime;
        } catch (PackageManager.NameNotFoundException e) {
            throw new IOException("cannot read this app's install time", e);
        }
        if (target.length() == size && target.lastModified() >= installed) {
            return target;
        }
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        File partial = new File(dir, name + ".part");
        InputStream in = context.getAssets().open(name);
        try {
            FileOutputStream out = new FileOutputStream(partial);
            try {
                byte[] buffer = new byte[1 << 16];
                for (int n = in.read(buffer); n > 0; n = in.read(buffer)) {
                    out.write(buffer, 0, n);
                }
            } finally {
                out.close();
            }
        } finally {
            in.close();
        }
        if (!partial.renameTo(target)) {
            throw new IOException("cannot move " + partial + " to " + target);
        }
        return target;
    }

    /** Maps the model straight from the APK: one copy in memory, shared by the interpreter and the metadata. */
    static MappedByteBuffer map(AssetManager assets, String name) throws IOException {
        AssetFileDescriptor fd;
        try {
            fd = assets.openFd(name);
        } catch (FileNotFoundException e) {
            throw new IOException(name + " is compressed inside the APK and cannot be memory-mapped: keep "
                    + "`noCompress 'tflite', 'pte'` in app/build.gradle", e);
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
