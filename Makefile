# make test   : install system + Python dependencies (exact versions from constraints.txt), then run every test (what CI runs)
# make test-latest : the same suite in a fresh venv (.venv-latest) on the newest versions pyproject.toml allows
# make lock   : regenerate constraints.txt from pyproject.toml (pip's resolver; then run make test before committing)
# make bench  : run the benchmarks by hand (numbers are ratios within one run)
# make lint   : ruff + mypy
# make arm64-check : prove Dockerfile.arm64's steps in an emulated arm64 Debian (root, slow; log in $(ARM64_CACHE)/check.log)
SHELL := /bin/bash
PY ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := ffmpeg mosquitto mosquitto-clients prometheus openssl \
	gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools gstreamer1.0-plugins-base \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	postgresql chromium systemd

.PHONY: deps system-deps test test-data test-latest lock bench lint demo arm64-check

ARM64_CACHE ?= /work/arm64-cache

LATEST_VENV ?= .venv-latest

system-deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null

# Exact versions: a new release of a dependency cannot turn the suite red on a fresh machine.
deps: system-deps
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'

test: deps test-data
	$(PY) -m pytest -q

# Photos some tests read that are not in ../shared (real two-line plates; bench/plate_sets.py)
test-data:
	$(PY) bench/plate_sets.py --fetch

# The newest versions pyproject.toml allows, in a venv of their own (the constrained install is left alone).
test-latest: system-deps test-data
	$(PY) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	@diff <(grep -v '^#' constraints.txt | tr A-Z_ a-z- | sort) <(grep -v '^-e' $(LATEST_VENV)/versions.txt | tr A-Z_ a-z- | sort) \
		| sed -n 's/^> /newer or extra than constraints.txt: /p' || true
	PATH=$(CURDIR)/$(LATEST_VENV)/bin:$$PATH $(LATEST_VENV)/bin/python -m pytest -q

lock:
	$(PY) .ci/lock.py

bench:
	$(PY) bench/pipeline.py
	$(PY) bench/events.py
	$(PY) bench/plates.py ../shared/data/openalpr/eu ../shared/data/openalpr/br --regions br,eu
	$(PY) bench/convert_int8.py
	$(PY) bench/int8_replay.py

demo:
	$(PY) -m pip install -q -e '.[all]'
	edge demo

arm64-check:
	mkdir -p $(ARM64_CACHE)
	ARM64_CACHE=$(ARM64_CACHE) PY=$(PY) deploy/arm64/check.sh 2>&1 | tee $(ARM64_CACHE)/check.log; exit $${PIPESTATUS[0]}
