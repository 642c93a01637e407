# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-bundle lint venv clean wheel

venv: $(STAMP)

# constraints.txt pins every installed distribution, so a fresh machine gets the versions CI tested.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[airflow,dev]'
	# An editable install gets no bytecode; compile it like a wheel install would, so the per-file
	# parse cost measured by tests and benchmarks is the production one.
	$(BIN)/python -m compileall -q dagfactory_s3
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Task-start cost of the versioned DAG bundle at 1,000 and 5,000 DAGs (docs/benchmarks.md).
bench-bundle: $(STAMP)
	$(BIN)/python -m bench.bundle_bench --write-doc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The wheel a platform pushes to its internal index (README "Getting the package"): no venv needed,
# pip fetches the pinned build backend in an isolated build environment.
wheel:
	$(PYTHON) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) .pytest_cache
