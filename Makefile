# Two commands do all the set-up on a fresh machine:
#   make run    set up, then execute every notebook in order, headless (regenerates log/ and static/)
#   make test   set up, then run the unit tests and the notebooks under nbval
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: run test test-slow test-cifar test-cpus lint lab bench bench-pipeline bench-playground data venv clean solutions

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Fashion-MNIST: Debian's package where we may install it, else the official download (checksummed).
data: venv
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ ! -d data/fashion ] \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
	  || echo "could not install dataset-fashion-mnist; downloading instead"; \
	fi
	$(PY) -m utils data

run: data
	@set -e; for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; start=$$(date +%s); \
	  $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1800 \
	    --ExecutePreprocessor.record_timing=False "$$nb"; \
	  echo "== $$nb took $$(( $$(date +%s) - start )) s"; \
	done
	@if [ -z "$(NOTEBOOKS)" ]; then $(PY) -m utils train; fi

# pytest --nbval, as two processes side by side: the notebooks in order in one, the unit tests in the other.
test: data
	$(PY) tests/run_all.py

# The long runs make test leaves out: the result bands (about 5 minutes; CI runs them), and the
# CIFAR-10 notebooks (about 15 minutes).
test-slow: data
	$(PY) -m pytest -m slow

test-cifar: data
	$(PY) -m pytest -m cifar

# The notebooks under nbval as other CPUs compute them: OpenBLAS kernels and numpy's SIMD paths forced
# one at a time (each checked with threadpoolctl; a kernel this CPU lacks is skipped with the reason).
CPUS ?= Prescott Sandybridge Haswell SkylakeX native npy-baseline
test-cpus: data
	$(PY) tests/cpu_matrix.py $(CPUS)

# ruff: pyflakes, pycodestyle, import order, and no import hidden in a function (pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .

# The exercises notebook executed with every blank filled in from notebooks/solutions/ (in memory;
# the committed notebook, blanks empty, is not changed); fails unless every check says "correct".
solutions: venv
	$(PY) -m utils grade --solutions --timeout-cell 900 notebooks/06_exercises.ipynb

bench: data
	$(PY) -m pip install --quiet -r bench/requirements.txt -c constraints.txt
	$(PY) -m bench.bench_mlp
	$(PY) -m bench.bench_lenet
	$(PY) -m bench.bench_notebooks
	$(PY) -m bench.bench_conv

# The 48-point search (1 worker, then all cores) and make run, timed, with peak memory.
bench-pipeline: data
	$(PY) -m bench.bench_pipeline

# Trusted notebooks render their stored widget views; untrusted ones show them as plain text.
# As root (a container, a cloud VM) JupyterLab refuses to start without --allow-root. Headless:
#   make lab LAB_ARGS="--no-browser --ip 127.0.0.1 --port 8888"   (it prints the URL with its token)
LAB_ARGS ?=
LAB_DIR ?= notebooks/
lab: data
	$(VENV)/bin/jupyter trust notebooks/*.ipynb
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) $(LAB_DIR)

# The playground's frame rate on 2-D data and a Fashion-MNIST epoch of a 784-128-10 net.
bench-playground: data
	$(PY) -m bench.bench_playground

clean:
	rm -rf $(VENV) .pytest_cache
