# loopml — the two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck bench-setup bench clean

# The virtual environment, installed from the committed lock file with bytecode compiled at
# install time (these machines set PYTHONDONTWRITEBYTECODE=1, so imports would never cache it).
$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --extra dev --python $(PYTHON) --compile-bytecode
	@touch $@

# The package itself is installed editable, so uv's --compile-bytecode does not reach src/;
# compile it here (cheap when nothing changed) or every command re-parses loopml's sources.
setup: $(STAMP)
	@$(VENV)/bin/python -m compileall -q -j 0 src

demo: setup
	$(VENV)/bin/python examples/demo.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy src

test: lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadgroup

bench-setup: setup
	$(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/python -m pip install --quiet -r bench/peers-requirements.txt

bench: setup
	$(VENV)/bin/python -m bench
	$(VENV)/bin/python -m bench.validation
	$(VENV)/bin/python -m bench.bootstrap

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
