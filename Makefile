# translate_svc — the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TEST_MODEL := model_cache/test-model
REAL_MODEL := model_cache/seamless-m4t-v2-large
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Python may cache compiled modules (__pycache__/, git-ignored) even where the environment says not
# to: make test starts some thirty Python processes that import this package and pytest rewrites
# every test module; compiling them once instead of in each process saves ~5 s of CPU per process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install libopus redis-server sip-peers client-wheel client-envs client-matrix test test-suite test-lint integrations ts-client ts-protos demo browser-demo chromium node protos check-protos lint bench clean

# torch first, pinned, so no dependency can pull the multi-GB CUDA build on a CPU machine. The client
# distribution (clients/python) and the server are both installed editable, in one pip call so that
# the server's requirement translate-svc-client is met by this checkout's (it is not on PyPI).
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e './clients/python[cli,opus]' -e '.[dev]'
	touch $@

install: libopus redis-server $(VENV)/.installed $(VENV)/.riva-client $(VENV)/.resemblyzer $(VENV)/.smart-turn

# The Riva-compatible door's protos (serve --riva, docs/decisions.md): nvidia-riva-client pins
# protobuf==6.33.5, which pip cannot resolve beside our protobuf 7, so there is no translate-svc[riva]
# extra; its generated stubs load under protobuf 7 and its other requirements (grpcio, grpcio-tools,
# websockets) are met by '.[dev]', so it is installed without its dependencies.
RIVA_CLIENT := nvidia-riva-client==2.27.0
$(VENV)/.riva-client: $(VENV)/.installed
	$(PIP) install --quiet --no-deps $(RIVA_CLIENT)
	touch $@

# Speaker labels (issue 72) use only the GE2E weights the Resemblyzer wheel ships (speakers/ reads
# them without torch); its dependencies are not needed and one cannot be installed everywhere
# (webrtcvad 2.0.10: an sdist that needs a C compiler, and pkg_resources at import), so without them.
RESEMBLYZER := Resemblyzer==0.1.4
$(VENV)/.resemblyzer: $(VENV)/.installed
	$(PIP) install --quiet --no-deps $(RESEMBLYZER)
	touch $@

# The end of a turn (issue 102) is read by Smart Turn v3, whose ONNX file ships inside the Pipecat
# wheel (translate_svc/vad/turn_end.py reads the file only): without its dependencies, whose
# protobuf<7 pin would break our generated code.
SMART_TURN := pipecat-ai==1.14.0
$(VENV)/.smart-turn: $(VENV)/.installed
	$(PIP) install --quiet --no-deps $(SMART_TURN)
	touch $@

# Live Opus streams are decoded by the system's libopus (through opuslib-next: PyAV cannot run its
# loss concealment or FEC). Installed with apt as root (or passwordless sudo) when missing.
libopus:
	@$(PYTHON) -c 'import ctypes.util, sys; sys.exit(not ctypes.util.find_library("opus"))' || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	    echo "*** libopus is missing and cannot be installed (not root, no sudo): run sudo apt-get install libopus0"; exit 1; fi; \
	  command -v apt-get >/dev/null || { echo "*** no apt-get: install libopus (the Opus codec library)"; exit 1; }; \
	  echo "installing libopus0 (apt) for live Opus streams"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends libopus0 >/dev/null; }

# The cluster store's tests (tests/cluster/, issue 59) run a real redis-server: Debian's (Redis 7.0),
# installed with apt as root (or passwordless sudo) when missing; otherwise those tests fail and say
# what to install. Only its binary is used (each test starts its own on a free loopback port).
redis-server:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	    echo "*** cannot install redis-server (not root, no sudo): the cluster store's tests will fail;"; \
	    echo "*** run: sudo apt-get install redis-server"; exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "*** no apt-get: install redis-server (Redis 7) for the cluster store's tests"; exit 0; }; \
	  echo "installing redis-server (apt) for the cluster store's tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends redis-server >/dev/null; }

# The SIP door's tests (tests/transport/sip/, issue 60) drive it with real SIP software from Debian 12:
# SIPp 3.6.1 (package sip-tester: scenarios for the protocol and the load) and baresip 1.0 (an
# end-to-end caller), installed with apt as root (or passwordless sudo) when missing; otherwise those
# tests fail and say what to install.
sip-peers:
	@command -v sipp >/dev/null && command -v baresip >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	    echo "*** cannot install sip-tester and baresip (not root, no sudo): the SIP door's tests will fail;"; \
	    echo "*** run: sudo apt-get install sip-tester baresip"; exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "*** no apt-get: install SIPp 3.6 and baresip 1.0 for the SIP door's tests"; exit 0; }; \
	  echo "installing sip-tester and baresip (apt) for the SIP door's tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends sip-tester baresip >/dev/null; }

# Regenerate the gRPC stubs from protos/ into the client distribution (committed; tests/api/
# test_protos.py checks for drift). Made by the oldest gencode the client supports: grpcio-tools
# 1.63.0 (protobuf 5.26.1), from the matrix's protobuf-5 environment, so that protobuf 5.26+, 6.x
# and 7.x all load them (docs/client.md).
PROTOC_PY = $(CLIENT_MATRIX)/pb5/bin/python
protos: client-envs ts-protos
	$(PROTOC_PY) -m grpc_tools.protoc -I protos -I $$($(PROTOC_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
	  --python_out=clients/python/src --pyi_out=clients/python/src --grpc_python_out=clients/python/src \
	  protos/translate_svc/api/v1/translate.proto

# Issue 48: the client distribution alone, in fresh virtualenvs (one per protobuf major, git-ignored
# under .client-matrix/, wheels cached there): pip install of clients/python[cli,opus] with the pins
# below, then its suite (clients/python/tests: the stubs, the SDK's calls, the client command
# translating jfk.flac, and the SDK's behaviour: update, FLUSH, endings, a drain resumed elsewhere,
# TLS + token, a chunked clip, Opus, the sync client, the lasting stream, error details, a glossary;
# translate-svc-client bench's simultaneous modes with /metrics)
# against real servers of this checkout started from $(VENV). pb5 holds the floors of clients/python/pyproject.toml and grpcio-tools 1.63.0 (the
# stubs' generator). An environment is made again only when its pins or clients/python/pyproject.toml
# change (client_run reinstalls the client without its dependencies: a new one needs a new environment).
CLIENT_MATRIX := .client-matrix
CLIENT_ENVS := pb5 pb6 pb7
PROTOBUF_pb5 := 5.26.1
GRPCIO_pb5 := 1.63.0
PINS_pb5 := grpcio-status==1.63.0 grpcio-tools==1.63.0 numpy==1.26.4 soundfile==0.12.1
PROTOBUF_pb6 := 6.33.6
GRPCIO_pb6 := 1.76.0
PINS_pb6 := grpcio-status==1.76.0
PROTOBUF_pb7 := 7.36.2
GRPCIO_pb7 := 1.85.3
PINS_pb7 := grpcio-status==1.85.3
CLIENT_TEST_DEPS := pytest>=8,<10 pytest-asyncio>=1.0,<2 pytest-timeout>=2.3,<3 trustme>=1.1,<2
CLIENT_PIP = $(CLIENT_MATRIX)/$(1)/bin/pip install --quiet --cache-dir $(CLIENT_MATRIX)/pip-cache
# The client is built once into a wheel that every environment (and each integration's) installs:
# they are made at once under make -j, and setuptools builds in clients/python/build, one folder
# (it also packs all of build/lib into the wheel, files of an older tree too: emptied first).
CLIENT_BUILD := clients/python/build
CLIENT_WHEELS := $(CLIENT_MATRIX)/wheel
CLIENT_WHEEL = $$(ls $(abspath $(CLIENT_WHEELS))/*.whl)

client-wheel: install
	rm -rf $(CLIENT_BUILD) $(CLIENT_WHEELS)
	$(PIP) wheel --quiet --no-deps --wheel-dir $(CLIENT_WHEELS) ./clients/python
	rm -rf $(CLIENT_BUILD)

define client_env
	@pins="protobuf==$(PROTOBUF_$(1)) grpcio==$(GRPCIO_$(1)) $(PINS_$(1)) $(CLIENT_TEST_DEPS)"; \
	key="$$pins client:$$(sha256sum clients/python/pyproject.toml | cut -c1-16)"; \
	if [ "$$(cat $(CLIENT_MATRIX)/$(1)/.pins 2>/dev/null)" != "$$key" ]; then \
	  echo "client matrix: making $(CLIENT_MATRIX)/$(1) ($$key)"; rm -rf $(CLIENT_MATRIX)/$(1); \
	  $(PYTHON) -m venv $(CLIENT_MATRIX)/$(1) && $(call CLIENT_PIP,$(1)) --upgrade pip && \
	  $(call CLIENT_PIP,$(1)) "$(CLIENT_WHEEL)[cli,opus]" $$pins && echo "$$key" > $(CLIENT_MATRIX)/$(1)/.pins; fi

endef

client-envs: $(addprefix client-env-,$(CLIENT_ENVS))

define client_run
	$(call CLIENT_PIP,$(1)) --no-deps --force-reinstall "$(CLIENT_WHEEL)"
	cd clients/python && env -u PYTHONPATH TRANSLATE_SVC_MATRIX_PROTOBUF=$(PROTOBUF_$(1)) \
	  TRANSLATE_SVC_MATRIX_GRPCIO=$(GRPCIO_$(1)) TRANSLATE_SVC_SERVER_PYTHON=$(abspath $(PY)) TRANSLATE_SVC_REPO=$(CURDIR) \
	  $(abspath $(CLIENT_MATRIX))/$(1)/bin/pytest -q -p no:cacheprovider -c tests/pytest.ini tests

endef

# one target per environment, so that make -j makes and tests them at once (the suite needs pb5's
# made: tests/api/test_protos.py regenerates the stubs with its grpcio-tools)
CLIENT_ENV_TARGETS := $(addprefix client-env-,$(CLIENT_ENVS))
$(CLIENT_ENV_TARGETS): client-env-%: client-wheel
	$(call client_env,$*)

CLIENT_RUNS := $(addprefix client-matrix-,$(CLIENT_ENVS))
$(CLIENT_RUNS): client-matrix-%: install $(TEST_MODEL)/config.json client-env-%
	$(call client_run,$*)

client-matrix: $(CLIENT_RUNS)
.PHONY: $(CLIENT_ENV_TARGETS) $(CLIENT_RUNS)
# The TypeScript client (clients/typescript/, docs/client.md "TypeScript client"): its pinned packages
# from the npm registry (package-lock.json; installed again when the lock changes), built with tsc,
# tested with Node's test runner against real servers of this checkout (test/server.ts starts them
# from this virtualenv). The machine's Node 20 is enough.
TS_CLIENT := clients/typescript
$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package-lock.json
	@command -v npm >/dev/null || { echo "*** npm is missing: apt-get install npm (the TypeScript client needs it)"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' || { \
	  echo "*** the TypeScript client needs Node 20 or later (node --version: $$(node --version))"; exit 1; }
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ts-protos: install $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && PYTHON=$(abspath $(PY)) npm run --silent generate

ts-client: install $(TEST_MODEL)/config.json $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && rm -rf dist && npm run --silent build
	cd $(TS_CLIENT) && TRANSLATE_SVC_VENV=$(abspath $(VENV)) npm test --silent

# rebuilt when its builder changes (a checkpoint from an older builder is not what the tests expect)
$(TEST_MODEL)/config.json: translate_svc/model/testing/checkpoint.py | install
	$(VENV)/bin/translate-svc make-test-model $(TEST_MODEL)

# The browser test's Chromium: Debian's headless shell (Playwright drives it through
# executable_path; its own browser download cannot work offline). Installed with apt as root (or
# passwordless sudo); otherwise tests/transport/openai/test_browser.py fails and says what to install.
chromium:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || [ -n "$${CHROMIUM:-}" ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	    echo "*** cannot install chromium-headless-shell (not root, no sudo): the browser test will fail;"; \
	    echo "*** run: sudo apt-get install chromium-headless-shell (or set CHROMIUM=/path/to/chrome)"; exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "*** no apt-get: install Chromium and set CHROMIUM=/path/to/chrome"; exit 0; }; \
	  echo "installing chromium-headless-shell (apt) for the browser test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium-headless-shell >/dev/null; }

# openai-node's own realtime client on Node 22 with its global WebSocket (tests/transport/openai/
# test_clients.py): the machine's Node may be older, so Node 22 comes from the npm registry as
# a package with its binary inside (node-linux-<arch>), beside the `openai` package, into .node/
# (git-ignored). Pinned; installed again when a pin changes.
NODE22 := 22.23.3
OPENAI_NODE := 7.57.0
NODE_ARCH := $(subst x86_64,x64,$(subst aarch64,arm64,$(shell uname -m)))
NODE_STAMP := .node/.installed-$(NODE22)-$(OPENAI_NODE)
$(NODE_STAMP):
	@command -v npm >/dev/null || { echo "*** npm is missing: apt-get install npm (the Node test needs it)"; exit 1; }
	rm -rf .node && mkdir -p .node && echo '{"private": true}' > .node/package.json
	cd .node && npm install --no-audit --no-fund --loglevel=error \
	  node-linux-$(NODE_ARCH)@$(NODE22) openai@$(OPENAI_NODE)
	touch $@

node: $(NODE_STAMP)

# The fakes that stand in for a seam of the package (the Runner and EngineClient Protocols, the VAD)
# are type-checked against it
TYPED_FAKES := tests/support/fake_runner.py tests/support/fake_engine.py tests/support/fake_vad.py

test: install redis-server sip-peers $(TEST_MODEL)/config.json chromium node
	@# tests/ is a tree of packages (tests/README.md): pytest imports a test file by its full name
	@# (tests.transport.grpc.test_rooms), so two files may share a basename in different folders; a
	@# folder without __init__.py would have its files imported by basename again, where two clash.
	@bare=$$(find tests -name '*.py' -not -path '*/__pycache__/*' -printf '%h\n' | sort -u | \
	  while read -r d; do [ -f "$$d/__init__.py" ] || echo "$$d"; done); [ -z "$$bare" ] || { \
	  echo "*** test folders without __init__.py (pytest would import their files by basename): $$bare"; exit 1; }
	@# Everything but the timing tests at once (make -j; each part's output printed whole when it
	@# ends, each run to its end where another failed): the suite, the lint, the client matrix's
	@# three environments, both integrations and the TypeScript client. Each part waits on servers
	@# and installs, so together they keep busy the cores that one at a time left idle, and on a
	@# machine shared with other work they hold a share of it in proportion to their processes
	@# (docs/ci-timings.md). The tests that compare timings (`serial`) run afterwards, alone.
	$(MAKE) --no-print-directory -j$(TEST_JOBS) --keep-going -Otarget test-suite test-lint client-matrix integrations ts-client
	$(PY) -m pytest -q -p no:cacheprovider -m serial

# The suite but its `serial` tests, in TEST_WORKERS processes (pytest-xdist): real-time tests wait,
# so more workers than cores keep the cores busy; whole files per worker (their servers are module
# fixtures), longest `slow` files first in the order conftest.py sorts them (xdist would put the
# files with most tests first).
TEST_WORKERS ?= 6
TEST_JOBS ?= 8
test-suite: install $(TEST_MODEL)/config.json client-env-pb5
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial"

test-lint: install
	$(VENV)/bin/ruff check translate_svc clients/python tests benchmarks
	$(VENV)/bin/mypy translate_svc clients/python/src/translate_svc $(TYPED_FAKES)
	$(VENV)/bin/lint-imports

# The LiveKit plugin and the Pipecat service (integrations/, their own distributions): each has a
# virtualenv of its own (integrations/*/.venv, git-ignored, wheels cached in integrations/*/.pip-cache)
# made by one resolvable pip install of its framework, the client distribution (clients/python)
# and itself, with no server in it; its tests run there against real servers of this checkout
# started from $(VENV); then its lint and its wheel (docs/livekit.md, docs/pipecat.md).
INTEGRATION_ARGS = SERVER_PYTHON=$(abspath $(PY)) LINT_IMPORTS=$(abspath $(VENV))/bin/lint-imports
INTEGRATION_RUNS := integration-livekit integration-pipecat
$(INTEGRATION_RUNS): integration-%: install $(TEST_MODEL)/config.json client-wheel
	$(MAKE) -C integrations/$* $(INTEGRATION_ARGS) CLIENT_WHEEL="$(CLIENT_WHEEL)" test lint wheel

integrations: $(INTEGRATION_RUNS)
.PHONY: $(INTEGRATION_RUNS)

# Start the server (real weights if present, else the noise-making test checkpoint), translate the
# shipped English sample into Spanish and French, print the segments, write WAVs, stop the server.
demo: install
	@set -euo pipefail; \
	if [ -f $(REAL_MODEL)/config.json ]; then MODEL=$(REAL_MODEL); else \
	  $(MAKE) --no-print-directory $(TEST_MODEL)/config.json; MODEL=$(TEST_MODEL); \
	  echo "*** No real weights in $(REAL_MODEL) (see README: translate-svc download-model)."; \
	  echo "*** Using the random-weight TEST checkpoint: every text and sound it produces is NOISE."; fi; \
	mkdir -p .demo out/demo; rm -f .demo/ready.json; \
	$(VENV)/bin/translate-svc serve --model $$MODEL --host 127.0.0.1 --port 0 --ready-file .demo/ready.json \
	  > .demo/server.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 1200); do [ -f .demo/ready.json ] && break; \
	  kill -0 $$pid 2>/dev/null || { cat .demo/server.log; exit 1; }; sleep 0.5; done; \
	[ -f .demo/ready.json ] || { cat .demo/server.log; echo "the server was not ready in 10 minutes"; exit 1; }; \
	port=$$($(PY) -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' .demo/ready.json); \
	echo "server up on 127.0.0.1:$$port (log: .demo/server.log)"; \
	$(VENV)/bin/translate-svc translate clients/python/src/translate_svc/samples/demo_eng.wav --from eng --to spa,fra \
	  --server 127.0.0.1:$$port --out out/demo --overwrite; \
	kill -TERM $$pid; wait $$pid; trap - EXIT; echo "server stopped (SIGTERM, drained)"

# Try it in a browser: the server with the demo page on http://127.0.0.1:8080/demo (Ctrl-C stops);
# A watcher prints the address once the server is ready ($$ in it is the shell that execs the server).
BROWSER_PORT ?= 8080
browser-demo: install
	@if [ -f $(REAL_MODEL)/config.json ]; then MODEL=$(REAL_MODEL); else \
	  $(MAKE) --no-print-directory $(TEST_MODEL)/config.json; MODEL=$(TEST_MODEL); fi; \
	mkdir -p .demo; rm -f .demo/browser-ready.json; \
	( while kill -0 $$$$ 2>/dev/null; do [ -f .demo/browser-ready.json ] && \
	    { echo "ready: open http://127.0.0.1:$(BROWSER_PORT)/demo (Ctrl-C stops the server)"; break; }; \
	  sleep 0.5; done ) & \
	exec $(VENV)/bin/translate-svc serve --model $$MODEL --host 127.0.0.1 --port 0 \
	  --http-port $(BROWSER_PORT) --demo-page --ready-file .demo/browser-ready.json

lint: install
	$(VENV)/bin/ruff check translate_svc clients/python tests benchmarks
	$(VENV)/bin/ruff format --check translate_svc clients/python tests benchmarks
	$(VENV)/bin/mypy translate_svc clients/python/src/translate_svc $(TYPED_FAKES)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(TEST_MODEL) out .demo .node $(CLIENT_MATRIX) $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist
	$(MAKE) -C integrations/livekit clean
	$(MAKE) -C integrations/pipecat clean
