# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-fast lint demo frontier bench bench-gpu bench-data clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m flake8 video_iared tests benchmarks data_prep slurm

demo: $(STAMP)
	$(PY) -m video_iared.cli demo --out demo_output

# IA-RED2 against the baselines and the actor-mask oracle on the clutter set, 3 seeds (frontier_output/)
frontier: $(STAMP)
	$(PY) -m video_iared.cli frontier --out frontier_output

bench: $(STAMP)
	$(PY) benchmarks/model_speed.py
	$(PY) benchmarks/pruning_speed.py
	$(PY) benchmarks/loader_speed.py

# Dense vs IA-RED2 vs baselines in wall-clock time with fresh inputs; on a GPU machine the full
# TimeSformer-B / DeiT-S setting, on a CPU a 3-block model (BENCH_ARGS passes options through).
bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu_speed.py $(BENCH_ARGS)

# Training clips per CPU core, cores per H200 and storage per hour for each data format and loader option,
# on generated and real footage (benchmark_data/, reused)
bench-data: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/data_throughput.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_output frontier_output .pytest_cache
