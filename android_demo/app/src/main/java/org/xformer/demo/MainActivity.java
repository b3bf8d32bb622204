package org.xformer.demo;

import java.io.File;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import android.app.Activity;
import android.content.ActivityNotFoundException;
import android.content.ClipData;
import android.content.Intent;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Bundle;
import android.os.Handler;
import android.os.HandlerThread;
import android.provider.MediaStore;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.TextView;

import org.xformer.demo.core.BenchmarkResult;
import org.xformer.demo.core.Classification;
import org.xformer.demo.core.Classifier;
import org.xformer.demo.core.InferenceEngine;
import org.xformer.demo.core.LatencyStats;
import org.xformer.demo.core.ModelMetadata;
import org.xformer.demo.core.ModelMetadataException;
import org.xformer.demo.core.Prediction;

/**
 * The demo screen: pick a model from assets (.tflite runs in LiteRT, .pte in ExecuTorch), a delegate and a
 * thread count; classify a gallery image or a camera photo; benchmark inference. All model work runs on one
 * worker thread (LiteRT delegates need a single thread); the UI thread only posts tasks and shows results.
 */
public final class MainActivity extends Activity {
    private static final int PICK_IMAGE = 1;
    private static final int TAKE_PHOTO = 2;
    private static final int TOP_K = 5;
    /** The defaults of `xformer bench`, so app and host numbers are measured alike. */
    private static final int BENCHMARK_WARMUP = 5;
    private static final int BENCHMARK_RUNS = 30;
    private static final Integer[] THREADS = {1, 2, 4, 8};

    private Spinner modelSpinner;
    private Spinner delegateSpinner;
    private Spinner threadSpinner;
    private Button[] buttons;
    private TextView status;
    private ImageView preview;
    private TextView results;
    private TextView modelInfo;

    private HandlerThread worker;
    private Handler work;
    /** Owned by the worker thread. */
    private Classifier classifier;
    private String classifierKey;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        modelSpinner = (Spinner) findViewById(R.id.model);
        delegateSpinner = (Spinner) findViewById(R.id.delegate);
        threadSpinner = (Spinner) findViewById(R.id.threads);
        status = (TextView) findViewById(R.id.status);
        preview = (ImageView) findViewById(R.id.preview);
        results = (TextView) findViewById(R.id.results);
        modelInfo = (TextView) findViewById(R.id.model_info);
        Button gallery = (Button) findViewById(R.id.gallery);
        Button camera = (Button) findViewById(R.id.camera);
        Button benchmark = (Button) findViewById(R.id.benchmark);
        buttons = new Button[] {gallery, camera, benchmark};

        worker = new HandlerThread("inference");
        worker.start();
        work = new Handler(worker.getLooper());

        List<String> models = listModels();
        modelSpinner.setAdapter(adapter(models.toArray(new String[0])));
        delegateSpinner.setAdapter(adapter(Accelerator.values()));
        threadSpinner.setAdapter(adapter(THREADS));
        threadSpinner.setSelection(Runtime.getRuntime().availableProcessors() >= 4 ? 2 : 1);
        AdapterView.OnItemSelectedListener reload = new AdapterView.OnItemSelectedListener() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
                loadModel();
            }

            @Override
            public void onNothingSelected(AdapterView<?> parent) {
            }
        };
        modelSpinner.setOnItemSelectedListener(reload);
        delegateSpinner.setOnItemSelectedListener(reload);
        threadSpinner.setOnItemSelectedListener(reload);

        gallery.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                pickImage();
            }
        });
        camera.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                takePhoto();
            }
        });
        benchmark.setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                runBenchmark();
            }
        });
        if (models.isEmpty()) {
            status.setText(R.string.no_models);
        }
        setBusy(false);
    }

    @Override
    protected void onDestroy() {
        work.post(new Runnable() {
            @Override
            public void run() {
                closeClassifier();
            }
        });
        worker.quitSafely();
        super.onDestroy();
    }

    private <T> ArrayAdapter<T> adapter(T[] items) {
        ArrayAdapter<T> adapter = new ArrayAdapter<T>(this, android.R.layout.simple_spinner_item, items);
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item);
        return adapter;
    }

    private List<String> listModels() {
        try {
            return ModelAssets.list(getAssets());
        } catch (IOException e) {
            return new ArrayList<String>();
        }
    }

    // ---- actions (UI thread) ----

    private void pickImage() {
        Intent intent = new Intent(Intent.ACTION_GET_CONTENT);
        intent.setType("image/*");
        intent.addCategory(Intent.CATEGORY_OPENABLE);
        try {
            startActivityForResult(intent, PICK_IMAGE);
        } catch (ActivityNotFoundException e) {
            status.setText(R.string.no_gallery);
        }
    }

    private void takePhoto() {
        File photo = CaptureProvider.photoFile(this);
        if (photo.exists() && !photo.delete()) {
            status.setText("Cannot replace " + photo);
            return;
        }
        Intent intent = new Intent(MediaStore.ACTION_IMAGE_CAPTURE);
        intent.putExtra(MediaStore.EXTRA_OUTPUT, CaptureProvider.PHOTO);
        intent.addFlags(Intent.FLAG_GRANT_WRITE_URI_PERMISSION | Intent.FLAG_GRANT_READ_URI_PERMISSION);
        // ClipData carries the URI grant to the camera app on every API level.
        intent.setClipData(ClipData.newRawUri("photo", CaptureProvider.PHOTO));
        try {
            startActivityForResult(intent, TAKE_PHOTO);
        } catch (ActivityNotFoundException e) {
            status.setText(R.string.no_camera);
        }
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (resultCode != RESULT_OK) {
            return;
        }
        if (requestCode == PICK_IMAGE && data != null && data.getData() != null) {
            classify(data.getData());
        } else if (requestCode == TAKE_PHOTO) {
            classify(CaptureProvider.PHOTO);
        }
    }

    private void loadModel() {
        final String model = (String) modelSpinner.getSelectedItem();
        final Accelerator accelerator = (Accelerator) delegateSpinner.getSelectedItem();
        final int threads = (Integer) threadSpinner.getSelectedItem();
        if (model == null) {
            return;
        }
        runOnWorker(new Task() {
            @Override
            public void run() throws Exception {
                ensureClassifier(model, accelerator, threads);
                show(null, null, getString(R.string.pick_image));
            }
        });
    }

    private void classify(final Uri uri) {
        final String model = (String) modelSpinner.getSelectedItem();
        final Accelerator accelerator = (Accelerator) delegateSpinner.getSelectedItem();
        final int threads = (Integer) threadSpinner.getSelectedItem();
        runOnWorker(new Task() {
            @Override
            public void run() throws Exception {
                ensureClassifier(model, accelerator, threads);
                ImageLoader.Loaded loaded = ImageLoader.load(getContentResolver(), uri);
                Classification c = classifier.classify(loaded.image, TOP_K);
                show(bitmap(c), formatClassification(c, loaded), null);
            }
        });
    }

    private void runBenchmark() {
        final String model = (String) modelSpinner.getSelectedItem();
        final Accelerator accelerator = (Accelerator) delegateSpinner.getSelectedItem();
        final int threads = (Integer) threadSpinner.getSelectedItem();
        runOnWorker(new Task() {
            @Override
            public void run() throws Exception {
                ensureClassifier(model, accelerator, threads);
                BenchmarkResult result = classifier.benchmark(BENCHMARK_WARMUP, BENCHMARK_RUNS);
                show(null, formatBenchmark(result), null);
            }
        });
    }

    // ---- worker thread ----

    /** A step that runs on the worker; its failure message goes to the screen. */
    private interface Task {
        void run() throws Exception;
    }

    private void runOnWorker(final Task task) {
        setBusy(true);
        status.setText(R.string.working);
        work.post(new Runnable() {
            @Override
            public void run() {
                try {
                    task.run();
                } catch (ModelMetadataException e) {
                    show(null, null, e.getMessage());
                } catch (Exception e) {
                    show(null, null, "Error: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
                } catch (OutOfMemoryError e) {
                    show(null, null, "Out of memory: try a smaller image.");
                } catch (LinkageError e) {  // a native library or class that cannot load on this device
                    show(null, null, "LiteRT could not load on this device (" + e + "); try the CPU (XNNPACK).");
                } catch (Throwable e) {  // any other Error: report it rather than kill the worker and the app
                    show(null, null, "Error: " + e);
                }
                runOnUiThread(new Runnable() {
                    @Override
                    public void run() {
                        setBusy(false);
                    }
                });
            }
        });
    }

    private void ensureClassifier(String model, Accelerator accelerator, int threads)
            throws IOException, ModelMetadataException {
        String key = model + "|" + accelerator + "|" + threads;
        if (key.equals(classifierKey)) {
            return;
        }
        closeClassifier();
        MappedByteBuffer buffer = ModelAssets.map(getAssets(), model);
        ModelMetadata metadata = ModelMetadata.read(buffer, model);
        boolean executorch = ModelMetadata.Kind.of(buffer, model) == ModelMetadata.Kind.EXECUTORCH;
        File program = executorch ? ModelAssets.file(this, model) : null;
        long start = System.nanoTime();
        InferenceEngine engine;
        String note;
        if (executorch) {
            ExecuTorchEngine pte = new ExecuTorchEngine(program, metadata.input, accelerator, threads);
            engine = pte;
            note = pte.fallbackNote;
        } else {
            LiteRtEngine lite = LiteRtEngine.create(buffer, accelerator, threads);
            engine = lite;
            note = lite.fallbackNote;
        }
        double initMs = (System.nanoTime() - start) / 1e6;
        try {
            classifier = new Classifier(metadata, engine);
        } catch (RuntimeException | Error e) {
            engine.close();
            throw e;
        }
        classifierKey = key;
        double firstMs = classifier.timeOneInference();
        final String info = model + ": " + metadata.arch + ", " + metadata.precision + ", " + metadata.labels.size()
                + " classes\ninput " + engine.input() + ", output " + engine.output() + "\npreprocessing (from the "
                + "model's metadata): " + metadata.preprocess + "\n" + engine.description()
                + String.format(Locale.US, "\ninit %.1f ms, first inference %.1f ms", initMs, firstMs);
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                modelInfo.setText(note == null ? info : note + "\n" + info);
            }
        });
    }

    private void closeClassifier() {
        if (classifier != null) {
            classifier.engine().close();
            classifier = null;
            classifierKey = null;
        }
    }

    private static Bitmap bitmap(Classification c) {
        return Bitmap.createBitmap(c.modelInput.pixels, c.modelInput.width, c.modelInput.height,
                Bitmap.Config.ARGB_8888);
    }

    private String formatClassification(Classification c, ImageLoader.Loaded loaded) {
        StringBuilder out = new StringBuilder();
        int rank = 1;
        for (Prediction p : c.predictions) {
            out.append(String.format(Locale.US, "%d. %-28s %.4f\n", rank++, truncate(p.label, 28), p.score));
        }
        out.append(String.format(Locale.US, "\npreprocess  %8.1f ms\ninference   %8.1f ms\npostprocess %8.1f ms\n",
                c.preprocessMs, c.inferenceMs, c.postprocessMs));
        out.append(String.format(Locale.US, "(decode %.1f ms, %dx%d", loaded.decodeMs, loaded.image.width,
                loaded.image.height));
        out.append(loaded.sampleSize > 1 ? ", decoded at 1/" + loaded.sampleSize + " size to fit in memory)" : ")");
        out.append("\nOne run, timed as it happened. Use Benchmark for steady-state latency.");
        return out.toString();
    }

    private String formatBenchmark(BenchmarkResult result) {
        LatencyStats s = result.latency;
        return String.format(Locale.US, "Benchmark: %s, inference only\n%d warm-up runs (mean %.2f ms), %d timed runs\n"
                        + "median %.2f ms (%.1f FPS)   p90 %.2f ms\ntrimmed mean %.2f ms   mean %.2f ms   std %.2f ms\n"
                        + "min %.2f ms   p5 %.2f ms   p95 %.2f ms   max %.2f ms",
                classifier.engine().description(), result.warmupRuns, result.warmupMeanMs, s.runs, s.medianMs, s.fps(),
                s.p90Ms, s.trimmedMeanMs, s.meanMs, s.stdMs, s.minMs, s.p5Ms, s.p95Ms, s.maxMs);
    }

    private static String truncate(String text, int length) {
        return text.length() <= length ? text : text.substring(0, length - 1) + "…";
    }

    // ---- UI updates ----

    /** Posts results to the UI: null leaves that part unchanged. */
    private void show(final Bitmap image, final String resultText, final String statusText) {
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                if (image != null) {
                    preview.setImageBitmap(image);
                }
                if (resultText != null) {
                    results.setText(resultText);
                }
                status.setText(statusText != null ? statusText : "");
            }
        });
    }

    private void setBusy(boolean busy) {
        for (Button b : buttons) {
            b.setEnabled(!busy && modelSpinner.getCount() > 0);
        }
    }
}
