# The README's first two commands: `make serve` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch for machines without a GPU; GPU users: make test TORCH=torch (or any CUDA build).
TORCH ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve serve-gpu bento test lint bench bench-data bench-train gpu-check fuzz overload soak browser venv venv-train venv-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# serving dependencies only (no torch)
venv: $(BIN)/python
	$(BIN)/pip install -q -e .

# training + test dependencies; torch installed on its own first so the pin decides the build
venv-train: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[train,dev]"

# onnxruntime-gpu instead of onnxruntime: remove the CPU wheel, then (re)install the GPU one
venv-gpu: venv
	$(BIN)/pip uninstall -y -q onnxruntime
	$(BIN)/pip install -q --force-reinstall --no-deps "onnxruntime-gpu>=1.18"
	$(BIN)/pip install -q -e ".[gpu]"

PORT ?= 3000
serve: venv
	$(BIN)/bentoml serve service:BouncingBalls --host 0.0.0.0 --port $(PORT)

# the same service on onnxruntime-gpu (CUDA when a GPU is visible)
serve-gpu: venv-gpu
	$(BIN)/bentoml serve service:BouncingBalls --host 0.0.0.0 --port $(PORT)

bento: venv
	$(BIN)/bentoml build

test: venv-train
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# full-size reliability runs (CI runs smaller ones), both print their figures: up to 150 schemathesis
# cases per operation and mode (valid and invalid) plus the hand-made ones; 30 s of 4x overload
fuzz: venv-train
	FUZZ_CASES=150 $(BIN)/python -m pytest tests/test_reliability.py -k fuzz -s -q

overload: venv-train
	OVERLOAD_SECONDS=30 $(BIN)/python -m pytest tests/test_reliability.py -k overload -s -q

# 10 minutes of 4x overload (GIF and MP4): prints the server's memory over time and fails if it keeps growing
soak: venv-train
	SOAK_SECONDS=600 $(BIN)/python -m pytest tests/test_reliability.py -k soak -s -q

# Debian's Chromium and ChromeDriver for the gallery test (root or sudo; `make test` skips that test without them)
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver; }

lint: venv-train
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

# every benchmark, one after another (~10 min on 2 cores): benchmarks/results.json and results.md
bench: venv-train
	$(BIN)/python benchmarks/run_all.py

bench-data: venv-train
	$(BIN)/python benchmarks/data_throughput.py

bench-train: venv-train
	$(BIN)/python benchmarks/ensemble_step.py --stage frames --variants batched,conv-head,loop,contiguous,compiled,bf16 --steps 10
	$(BIN)/python benchmarks/ensemble_step.py --stage video --steps 10

# on a CUDA machine (make venv-train TORCH=torch, make venv-gpu): both stages' steps at the paper and cpu
# presets, the generator in PyTorch and the ONNX models on onnxruntime-gpu, in float32 and with bf16
# autocast -> benchmarks/gpu-check.json, gpu-check-amp.json (make bench's results.md shows them), and the
# recipe timed there -> benchmarks/recipe-gpu.json; refuses without CUDA
gpu-check: venv-train
	$(BIN)/python benchmarks/gpu_check.py --json benchmarks/gpu-check.json
	$(BIN)/python benchmarks/gpu_check.py --amp --json benchmarks/gpu-check-amp.json
	$(BIN)/python benchmarks/recipe.py --json benchmarks/recipe-gpu.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
