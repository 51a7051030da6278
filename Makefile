# The README's two commands: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test kernel-check lint clean

# `make run` says what it does first (the install takes minutes the first time), trains only the
# Iris model when it is missing (seconds, no download) and never the sentiment model: `mlapi serve`
# prints the one command that installs that one.
run:  ## set up .venv, train the Iris model if missing, serve on http://127.0.0.1:5000
	@echo "make run: set up $(VENV) (first time only: a few minutes), train the Iris model if it is missing (seconds, no download), then serve with gunicorn (Ctrl-C stops). The sentiment model is served if installed, never trained here."
	@$(MAKE) --no-print-directory --silent $(STAMP)
	$(BIN)/mlapi serve --train-missing

test: $(STAMP) kernel-check  ## lint, compile the C kernel warning-free, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

kernel-check: $(STAMP)  ## compile the LSTM C kernel with the runtime flags + -Wall -Wextra -Werror
	$(BIN)/python -m mlapi.models.lstm_kernel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[train,tune,dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
