# Two entry points: `make demo` (set up, then export the default model and benchmark it) and `make test`.
# Both create .venv on first use. torch and numpy are pinned in the same pip call as everything else:
# a separate, loose resolution would pull a CUDA build of torch (see pyproject.toml).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]" torch==2.13.0 numpy==2.3.5
	# onnx2tf and tf-keras pin an old stack; without --no-deps they would replace TF, numpy and protobuf.
	$(BIN)/pip install --quiet --no-deps tf-keras==2.21.0 onnx2tf==1.29.24
	touch $(STAMP)

# The main job: train xformer_xxs on real data (scikit-learn's digits), export that checkpoint to every format,
# predict and validate with the exported files, benchmark them with an accuracy column, then XFormer-S vs
# MobileViT-S speed.
DEMO := runs/demo
demo: setup
	$(BIN)/xformer models
	rm -rf $(DEMO)
	$(BIN)/xformer dataset digits $(DEMO)/digits
	$(BIN)/xformer train xformer_xxs --data $(DEMO)/digits --imgsz 64 --epochs 15 --hflip 0 --crop-scale 0.5 \
		--out $(DEMO)/train
	$(BIN)/xformer export $(DEMO)/train/best.safetensors --formats onnx,tflite,coreml --out $(DEMO)/export
	$(BIN)/xformer export $(DEMO)/train/best.safetensors --formats tflite --precisions int8 \
		--calib $(DEMO)/digits/train --out $(DEMO)/export
	$(BIN)/xformer predict $(DEMO)/export/xformer_xxs_fp32.tflite \
		$$(find $(DEMO)/digits/val -name '*.png' | sort | awk 'NR % 108 == 1') -k 3
	$(BIN)/xformer val $(DEMO)/export/xformer_xxs_int8.tflite --data $(DEMO)/digits --ckpt $(DEMO)/train/best.safetensors
	$(BIN)/xformer bench $(DEMO)/train/best.safetensors $(DEMO)/export/xformer_xxs_fp32.onnx \
		$(DEMO)/export/xformer_xxs_fp32.tflite $(DEMO)/export/xformer_xxs_int8.tflite --formats torch \
		--data $(DEMO)/digits --out $(DEMO)/bench
	$(BIN)/xformer bench xformer_s mobilevit_s --formats torch,onnx,tflite --threads 1 --warmup 2 --runs 10 \
		--out $(DEMO)/bench-speed

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf runs build .pytest_cache .ruff_cache
