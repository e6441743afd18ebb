# make test   : install system + Python dependencies, then run every test (what CI runs)
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

.PHONY: deps test bench lint demo arm64-check

ARM64_CACHE ?= /work/arm64-cache

deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null
	$(PY) -m pip install -q -e '.[test]'

test: deps
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check edge tests bench convert
	$(PY) -m mypy edge

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
	ARM64_CACHE=$(ARM64_CACHE) deploy/arm64/check.sh 2>&1 | tee $(ARM64_CACHE)/check.log; exit $${PIPESTATUS[0]}
