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

demo: setup
	$(BIN)/xformer models
	$(BIN)/xformer export xformer_s --formats onnx --out runs/export
	$(BIN)/xformer predict runs/export/xformer_s_fp32.onnx --samples -k 3
	$(BIN)/xformer bench xformer_s mobilevit_s --formats torch,onnx --threads 1 --warmup 2 --runs 10 \
		--out runs/demo-bench

lint: setup
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf runs build .pytest_cache .ruff_cache
