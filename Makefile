# translate_svc — the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TEST_MODEL := model_cache/test-model
REAL_MODEL := model_cache/seamless-m4t-v2-large
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: install test demo protos check-protos lint bench clean

# torch first, pinned, so no dependency can pull the multi-GB CUDA build on a CPU machine.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Regenerate the gRPC stubs from protos/ (committed; tests/unit/test_protos.py checks for drift).
protos: install
	$(PY) -m grpc_tools.protoc -I protos -I $(SITE) \
	  --python_out=. --pyi_out=. --grpc_python_out=. \
	  protos/translate_svc/api/v1/translate.proto

$(TEST_MODEL)/config.json: | install
	$(VENV)/bin/translate-svc make-test-model $(TEST_MODEL)

test: install $(TEST_MODEL)/config.json
	$(VENV)/bin/ruff check translate_svc tests benchmarks
	$(VENV)/bin/mypy translate_svc
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	@bash benchmarks/../.ci/demo.sh

lint: install
	$(VENV)/bin/ruff check translate_svc tests benchmarks
	$(VENV)/bin/ruff format --check translate_svc tests benchmarks
	$(VENV)/bin/mypy translate_svc

clean:
	rm -rf $(VENV) $(TEST_MODEL) out .demo
