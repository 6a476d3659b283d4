# pilotfish: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KB     ?= .pilotfish-demo
QUESTION ?= Who founded the University of the Incarnate Word, and when?
# Models the test suite needs (the smallest real ones); `make demo` pulls every model.
TEST_MODELS := minilm-l6 ms-marco-l12 bge-small smollm2-135m qwen2.5-0.5b spacy-sm

.PHONY: install models test test-unit lint demo bench gpu-wheels clean

install: $(STAMP)

# pyproject.toml pins the direct dependencies; constraints.txt pins the whole resolved set.
# llama-cpp-python compiles from source (about 5 minutes on 2 cores; pip caches the wheel afterwards);
# GGML_NATIVE=OFF keeps the build portable across CPUs.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

models: install
	$(BIN)/pilotfish models pull $(TEST_MODELS)

test: install models
	$(BIN)/python -m pytest -q

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

# ruff's rules and their reasons are in pyproject.toml.
lint: install
	$(BIN)/ruff check src tests tools benchmarks examples

demo: install
	$(BIN)/pilotfish models pull
	$(BIN)/pilotfish ingest examples/docs --kb $(KB)
	$(BIN)/pilotfish search "$(QUESTION)" --kb $(KB) -k 3
	$(BIN)/pilotfish ask "$(QUESTION)" --kb $(KB)

bench: install models
	$(BIN)/python benchmarks/scifact_retrieval.py

# Wheels for benchmarks/faiss_gpu.sh on a GPU machine without network: FAISS's GPU build for that machine's
# Python (GPU_PY=312 for CPython 3.12), downloaded here into .whl/.
GPU_PY ?= 312
gpu-wheels: install
	$(BIN)/python -m pip download --no-deps --only-binary=:all: --python-version $(GPU_PY) \
	  --platform manylinux2014_x86_64 -d .whl faiss-gpu-cu12==1.14.1.post1

clean:
	rm -rf $(VENV) $(KB) .pytest_cache
