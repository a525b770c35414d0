# Two commands do all the set-up on a fresh machine:
#   make run    set up, then execute every notebook, headless (regenerates log/ and static/); two at a
#               time where neither reads what the other writes, or reads it only in cells tagged
#               after-NN, which wait for notebook NN (utils/plumbing/run_notebooks.py)
#   make test   set up, then run the unit tests and the notebooks under nbval
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: run test test-slow test-cifar test-cpus lint lab bench bench-pipeline bench-playground data venv clean solutions \
	zh zh-check zh-english run-zh test-zh fonts-zh

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
	$(if $(NOTEBOOKS),$(PY) -m utils.plumbing.run_notebooks $(NOTEBOOKS))
	@if [ -z "$(NOTEBOOKS)" ]; then $(PY) -m utils train; fi

# The Chinese edition, notebooks/zh/: the English notebooks with the markdown of the catalogs
# locale/zh_CN/notebooks/*.po (new or changed English cells go into them first, to translate).
zh: venv
	$(PY) -m utils.plumbing.translate update
	$(PY) -m utils.plumbing.translate build

# Every markdown cell without an up-to-date translation; fails if there is one.
zh-check: venv
	$(PY) -m utils.plumbing.translate check

# Every line a Chinese reader would still meet in English (markdown, outputs, figure text in the code).
zh-english: venv
	$(PY) -m utils.plumbing.english_left

# A CJK font for the Chinese figures: Debian's Noto Sans CJK where we may install it. Without one
# the figures keep English labels (utils/plumbing/fonts.py says so once).
fonts-zh:
	@if ! fc-list 2>/dev/null | grep -qiE "cjk|yahei|pingfang|simhei|wenquanyi" \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q fonts-noto-cjk >/dev/null; } \
	  || echo "could not install fonts-noto-cjk; the Chinese figures keep English labels"; \
	fi

# make run for the Chinese edition: its figures go to static/zh/ and its logs to log/zh/, so the
# English results are not overwritten.
run-zh: data zh fonts-zh
	NN_LANG=zh NN_LOG_DIR=$(CURDIR)/log/zh NN_STATIC_DIR=$(CURDIR)/static/zh \
	  $(PY) -m utils.plumbing.run_notebooks $(sort $(wildcard notebooks/zh/[0-9]*.ipynb))

# The Chinese edition under nbval (CI runs it beside make test, which keeps its time budget): each
# Chinese notebook's outputs, as make run-zh stored them, must come out again; logs and figures go to
# temporary copies (conftest.py), so no tracked file changes.
test-zh: data fonts-zh
	$(PY) -m pytest -p no:cacheprovider --nbval notebooks/zh

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

# make bench and make bench-playground time the OpenBLAS kernel (matrix-product code) that OpenBLAS
# picks for this CPU: some machines pin the kernel of an older CPU with OPENBLAS_CORETYPE (and
# OPENBLAS_L2_SIZE), which the OpenBLAS in this NumPy does not need (bench/blas.py). Each benchmark
# prints the kernel it ran. To time the pinned one instead: make bench BENCH_ENV=
# make test, make run and make bench-pipeline (which runs make run for real, rewriting log/ and the
# notebooks) keep the environment as it is, so the committed results keep their kernel.
BENCH_ENV ?= env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
bench: data
	$(PY) -m pip install --quiet -r bench/requirements.txt -c constraints.txt
	$(BENCH_ENV) $(PY) -m bench.bench_mlp
	$(BENCH_ENV) $(PY) -m bench.bench_lenet
	$(BENCH_ENV) $(PY) -m bench.bench_notebooks
	$(BENCH_ENV) $(PY) -m bench.bench_conv

# The 48-point search (1 worker, then all cores) and make run, timed, with peak memory.
bench-pipeline: data
	$(PY) -m bench.bench_pipeline

# Trusted notebooks render their stored widget views; untrusted ones show them as plain text.
# As root (a container, a cloud VM) JupyterLab refuses to start without --allow-root. Headless:
#   make lab LAB_ARGS="--no-browser --ip 127.0.0.1 --port 8888"   (it prints the URL with its token)
LAB_ARGS ?=
LAB_DIR ?= notebooks/
lab: data
	$(VENV)/bin/jupyter trust notebooks/*.ipynb $(wildcard notebooks/zh/*.ipynb)
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS) $(LAB_DIR)

# The playground's frame rate on 2-D data and a Fashion-MNIST epoch of a 784-128-10 net.
bench-playground: data
	$(BENCH_ENV) $(PY) -m bench.bench_playground

clean:
	rm -rf $(VENV) .pytest_cache
