# `make demo` and `make test` each set up .venv from scratch when it is missing (torch's CPU build first),
# and Debian's Eclipse compiler (ecj) for the Java bridge.
# `make docs` builds pt_dense/pt_docs/ (PyTerrier's place for an extension's pages) into docs/_build/html with
# docs/conf.py: warnings are errors (-W), every cross-reference must resolve (-n), a fresh environment each time (-E).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pt-dense-installed

.PHONY: install demo test slow lint docs

$(STAMP): pyproject.toml
	test -f /usr/share/java/eclipse-jdt-core.jar || apt-get install -y -q ecj || (apt-get update -q && apt-get install -y -q ecj)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/pt-dense demo

test: install
	$(PY) -m pytest -q

slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check pt_dense tests bench examples

docs: install
	$(VENV)/bin/sphinx-build -E -W -n --keep-going -q -c docs pt_dense/pt_docs docs/_build/html
