# edgenet: `make run` sets everything up and classifies the sample photos; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= $(abspath ../shared)
# The model mirror stands in for the network where it exists (CI, offline machines).
export EDGENET_MODEL_MIRROR ?= $(if $(wildcard $(SHARED)/models),$(SHARED)/models,)
SAMPLES := $(if $(wildcard $(SHARED)/images),$(SHARED)/images,)

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: venv build-venv compat-venv run test test-deps lint bench clean

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

build-venv: $(BUILD_VENV)/.installed

# The second backend: tflite-runtime 2.14 (Python <= 3.11, numpy < 2), as Coral images ship it. Its own
# environment, so that the tests run edgenet on it for real next to ai-edge-litert.
COMPAT_VENV ?= .venv-tflite
COMPAT_PYTHON ?= python3.11
$(COMPAT_VENV)/.installed: pyproject.toml
	$(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e '.[tflite-runtime]' 'opencv-python-headless<4.11'
	@touch $@

compat-venv: $(COMPAT_VENV)/.installed

run: venv
	$(BIN)/edgenet models pull
	$(BIN)/edgenet classify $(or $(SAMPLES),$$($(BIN)/edgenet samples)) --top-k 3

# System packages the tests use for real: a Mosquitto broker (started by the tests on a loopback port),
# gcc (builds a minimal TFLite external delegate to exercise the Edge TPU loading path), and chromium with
# chromium-driver (headless, loads the --serve preview page through selenium).
test-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	if [ -n "$$missing" ]; then echo "installing$$missing (apt-get)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

test: venv build-venv compat-venv test-deps
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check edgenet tests scripts
	$(BIN)/ruff format --check edgenet tests scripts

bench: venv
	$(BIN)/edgenet bench --threads 1,2

clean:
	rm -rf $(VENV) $(BUILD_VENV) $(COMPAT_VENV) build *.egg-info .pytest_cache .ruff_cache
