# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.12 when it is missing and install into it.

# The first interpreter that really is Python 3.12 (a pyenv shim that is not
# activated answers to the name but fails, so each candidate is run).
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all bench clean

$(PY):
	@test -n "$(PYTHON312)" || { echo "error: no Python 3.12 interpreter found; install python3.12 or pass PYTHON312=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	mkdir -p out
	$(VENV)/bin/bayescrt reproduce danish --out out/danish --json out/danish.json

test: $(VENV)/.installed-test
	$(PY) -m pytest

# test-all also runs the slow tier and the browser test of the HTML report, installing Chromium from the
# distribution's packages when no Chromium is on the PATH
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-all: $(VENV)/.installed-test
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Chromium for the browser test (apt-get install chromium)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	$(PY) -m pytest -m ""

bench: $(VENV)/.installed-test
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) build *.egg-info
