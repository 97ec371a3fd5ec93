# edgenet: `make run` sets everything up and classifies the sample photos; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= $(abspath ../shared)
# The model mirror stands in for the network where it exists (CI, offline machines).
export EDGENET_MODEL_MIRROR ?= $(if $(wildcard $(SHARED)/models),$(SHARED)/models,)
SAMPLES := $(if $(wildcard $(SHARED)/images),$(SHARED)/images,)

# apt-get runs only as root; anyone else is told the one command to run (never a sudo prompt in the middle of
# make). Set `missing` to the package names first.
APT_INSTALL = if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  $$missing >/dev/null; \
	else echo "make $@ needs$$missing: run  sudo apt-get install -y$$missing  and then make again" >&2; \
	  exit 1; fi

.PHONY: venv build-venv compat-venv run test test-deps test-arm64 test-arm64-deps lint bench clean

$(BIN)/edgenet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/edgenet

# TensorFlow lives in its own environment, only for scripts/build_models.py (never a runtime dependency).
BUILD_VENV ?= .venv-build
$(BUILD_VENV)/.installed: requirements-build.txt
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BUILD_VENV)/bin/python -m pip install --quiet -r requirements-build.txt
	@touch $@

# TensorFlow has no wheel for some machines (32-bit ARM, a Python it does not support yet): there the environment
# is not built and the build test skips, saying why. pip answers from the index metadata, without downloading.
build-venv: venv
	@if [ -f $(BUILD_VENV)/.installed ]; then $(MAKE) --no-print-directory $(BUILD_VENV)/.installed; \
	elif out=$$($(BIN)/python -m pip install --dry-run --no-deps --only-binary=:all: --quiet \
	  -r requirements-build.txt 2>&1); then $(MAKE) --no-print-directory $(BUILD_VENV)/.installed; \
	elif echo "$$out" | grep -q "No matching distribution"; then \
	  echo "no TensorFlow wheel for $$(uname -m) / $$($(BIN)/python -V): $(BUILD_VENV) is not built" \
	  "and the model-build test skips"; \
	else echo "$$out" | tail -3 >&2; echo "make $@: pip could not check for a TensorFlow wheel" >&2; exit 1; fi

# The second backend: tflite-runtime 2.14 (Python <= 3.11, numpy < 2), as Coral images ship it. Its own
# environment, so that the tests run edgenet on it for real next to ai-edge-litert.
COMPAT_VENV ?= .venv-tflite
COMPAT_PYTHON ?= python3.11
$(COMPAT_VENV)/.installed: pyproject.toml
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e '.[tflite-runtime]' 'opencv-python-headless<4.11'
	@touch $@

# Where $(COMPAT_PYTHON) is missing (Ubuntu 24.04, Pi OS trixie) the environment is not built and its tests skip.
compat-venv:
	@if $(COMPAT_PYTHON) -c '' >/dev/null 2>&1; then $(MAKE) --no-print-directory $(COMPAT_VENV)/.installed; \
	else echo "no $(COMPAT_PYTHON) here: $(COMPAT_VENV) is not built and the tflite-runtime tests skip"; fi

# The default classifier and detector and the sample photos are cached, so that the README's quick start
# then works offline; where ../shared/images exists it stands in for the photos' upstream.
run: venv
	$(BIN)/edgenet models pull v2 ssd-v1
	$(if $(SAMPLES),EDGENET_MODEL_MIRROR=$(SAMPLES) )$(BIN)/edgenet samples
	$(BIN)/edgenet classify "$$($(BIN)/edgenet samples)" --top-k 3

# System packages the tests use for real: a Mosquitto broker (started by the tests on a loopback port),
# gcc (builds a minimal TFLite external delegate to exercise the Edge TPU loading path), and chromium with
# chromium-driver (headless, loads the --serve preview page through selenium).
test-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	$(APT_INSTALL)

# -n auto: the suite spread over the cores by pytest-xdist (each worker its own model cache and broker)
test: venv build-venv compat-venv test-deps
	$(BIN)/python -m pytest -q -n auto

# The board tests in an emulated 64-bit Raspberry Pi OS (Debian bookworm arm64, qemu-user, a cached
# root: scripts/arm64/test-in-root, docs/boards.md). Add a test file to ARM64_TESTS to run it there too.
ARM64_TESTS ?= tests/test_classify.py tests/test_cli_classify.py tests/test_eval.py $(wildcard tests/test_detect*.py)

test-arm64-deps:
	@missing=""; \
	command -v qemu-aarch64-static >/dev/null 2>&1 || missing="$$missing qemu-user-static"; \
	command -v mmdebstrap >/dev/null 2>&1 || missing="$$missing mmdebstrap"; \
	command -v arch-test >/dev/null 2>&1 || missing="$$missing arch-test"; \
	$(APT_INSTALL)

test-arm64: venv test-arm64-deps
	SHARED=$(SHARED) scripts/arm64/test-in-root $(BIN)/python $(ARM64_TESTS)

lint: venv
	$(BIN)/ruff check edgenet tests scripts
	$(BIN)/ruff format --check edgenet tests scripts

bench: venv
	$(BIN)/edgenet bench --threads 1,2

clean:
	rm -rf $(VENV) $(BUILD_VENV) $(COMPAT_VENV) build *.egg-info .pytest_cache .ruff_cache
