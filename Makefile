# The README's commands: `make demo`, `make test`, `make test-all` and `make test-compat`. The first two create .venv
# when it is missing; test-compat builds one venv per matrix cell under .compat/ (docs/compat.md).
# `make s3` / `make s3-stop`: the local S3 of the README's tour.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UPSTREAM       := .venv-upstream
UPSTREAM_STAMP := $(UPSTREAM)/.installed

.PHONY: demo s3 s3-stop test test-durations test-all test-compat bench bench-bundle bench-scale bench-push lint venv clean wheel wheel-check

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

# The README tour's S3: a moto server on 127.0.0.1 in the background, with the tour's bucket; its
# AWS_* exports go to .s3/env for `. .s3/env`. In memory only: s3-stop forgets every release.
s3: $(STAMP)
	$(BIN)/python -m demo.s3

s3-stop:
	$(BIN)/python -m demo.s3 --stop

# `make test`: every test file and behaviour on both cores (pytest-xdist), chaos kill points sampled,
# any test over 90 s fails (docs/testing.md). `make test-all` (before a release): the whole chaos grid,
# a 5-minute fuzz and the whole compatibility matrix. `make test-durations`: where the time goes.
TEST_WORKERS ?= 2
# loadscope: the tests of one module (of one class, for methods) run on one worker, so a module- or
# class-scoped fixture (a dag-processor run, the end-to-end stack) is set up once and in order.
XDIST := -n $(TEST_WORKERS) --dist loadscope

test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-durations: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) --timing-report $(PYTEST_ARGS)

test-all: $(STAMP)
	CHAOS_SAMPLE=0 DAGFACTORY_FUZZ_SECONDS=300 \
		$(BIN)/python -m pytest $(XDIST) --max-test-seconds=0 --timing-report $(PYTEST_ARGS)
	$(MAKE) test-compat COMPAT_PYTEST_ARGS="-n $(TEST_WORKERS) --dist loadscope --max-test-seconds=0"

# Airflow 3.0-3.3 x Python 3.10-3.13: each cell's venv is rebuilt only when its constraints change.
# Needs python3.10 ... python3.13 (on PATH or under ~/.pyenv/versions); COMPAT_CELLS picks cells,
# COMPAT_PYTEST_ARGS adds pytest arguments (.ci/run deselects the slow tests: docs/compat.md).
test-compat:
	$(PYTHON) constraints/compat.py test $(COMPAT_CELLS) $(if $(COMPAT_PYTEST_ARGS),--pytest-args="$(COMPAT_PYTEST_ARGS)")

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Task-start cost of the versioned DAG bundle at 1,000 and 5,000 DAGs, side by side with the
# provider's S3DagBundle run from .venv-upstream (docs/benchmarks.md).
bench-bundle: $(STAMP) $(UPSTREAM_STAMP)
	$(BIN)/python -m bench.bundle_bench --write-doc

# The benchmark's upstream side only: constraints.txt's pins plus apache-airflow-providers-amazon,
# pinned by bench/upstream-constraints.txt (`python3.11 bench/upstream_bundle.py resolve`). Never
# used by the tests; rebuilt from scratch when its constraints change.
$(UPSTREAM_STAMP): bench/upstream-constraints.txt
	rm -rf $(UPSTREAM)
	$(PYTHON) -m venv $(UPSTREAM)
	$(UPSTREAM)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c bench/upstream-constraints.txt apache-airflow apache-airflow-providers-amazon
	touch $(UPSTREAM_STAMP)

# 5,000 DAGs (50 packages x 100), against the targets in docs/benchmarks.md. The S3 side: publish,
# sidecar, worker pod start, bundle refresh and task start, with requests and peak RSS. Then the
# dag-processor: first full parse beside hand-written files, a 10-minute steady state, publish -> visible
# (about 45 minutes on 2 cores). SCALE_ARGS / PROCESSOR_ARGS pass arguments to each.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale_bench $(SCALE_ARGS)
	$(BIN)/python -m bench.processor_scale $(PROCESSOR_ARGS)

# Push delivery against polling at production intervals: publish -> visible for a change, a new DAG and
# a delete (10 each), sidecar and bundle, real dag-processor; about 40 minutes (docs/benchmarks.md).
bench-push: $(STAMP)
	$(BIN)/python -m bench.push_bench $(PUSH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The wheel a platform pushes to its internal index (README "Getting the package"): no venv needed,
# pip fetches the pinned build backend in an isolated build environment.
wheel:
	$(PYTHON) -m pip wheel --no-deps -w dist .

# What a platform's first build gets: a fresh clone of HEAD (committed files only), `make wheel`, the
# wheel in a new venv without Airflow, both console scripts' --help. Needs network for pip.
wheel-check:
	rm -rf .wheel-check
	git clone -q . .wheel-check/src
	$(MAKE) -C .wheel-check/src wheel PYTHON=$(PYTHON)
	$(PYTHON) -m venv .wheel-check/venv
	.wheel-check/venv/bin/pip install -q --disable-pip-version-check .wheel-check/src/dist/dagfactory_s3-*.whl
	.wheel-check/venv/bin/airflow-dag-publisher --help >/dev/null
	.wheel-check/venv/bin/airflow-dag-sync --help >/dev/null
	! .wheel-check/venv/bin/python -c 'import airflow' 2>/dev/null
	rm -rf .wheel-check
	@echo "wheel-check: ok"

clean:
	rm -rf $(VENV) $(UPSTREAM) .compat .pytest_cache .wheel-check
