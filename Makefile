# Two commands on a fresh machine (Python 3.10+):
#   make serve   the web chat on the bundled sample articles, http://127.0.0.1:7860
#   make test    the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint bench eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.web: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[web]"
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(VENV)/.web

serve: $(VENV)/.web
	$(BIN)/qa serve

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

lint: $(VENV)/.test
	$(BIN)/ruff check qa tests eval bench examples
	$(BIN)/mypy qa

bench: $(VENV)/.test
	$(BIN)/python -m bench

eval: $(VENV)/.test
	$(BIN)/qa index eval/xquad/corpus --index index/xquad
	$(BIN)/qa eval eval/xquad/questions.jsonl --index index/xquad --out artifacts/eval-xquad
	$(BIN)/qa eval eval/sample.jsonl --out artifacts/eval-sample

clean:
	rm -rf $(VENV) artifacts index
