# `make test` builds .venv on a fresh machine (pinned install step) and runs lint + the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: install test lint format bench demo study fashion-mnist

install: $(STAMP) fashion-mnist

# Debian's dataset-fashion-mnist (the closed-set benchmark of `tcdml study`); needs root and apt-get.
fashion-mnist:
	@test -d $(FASHION_MNIST) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
		echo "note: $(FASHION_MNIST) is missing (apt-get install dataset-fashion-mnist); its tests are skipped"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned here (never unpinned: an unpinned torch pulls a multi-GB build).
	$(PY) -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,faiss,vision,demo,offline,deploy,tables]"
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q -n auto

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) benchmarks/bench_evaluate.py

demo: install
	$(VENV)/bin/tcdml demo --output demo-output

# The offline benchmarks' table, the margins ablation and the Pareto study (several hours of one CPU core; resumable).
study: install
	$(VENV)/bin/tcdml study configs/study/offline.yaml --no-progress
	$(VENV)/bin/tcdml study configs/study/margins.yaml --no-progress --only benchmark=hscodes-minilm-frozen \
		--only benchmark=glyphs-small_cnn --only benchmark=fashion_mnist-small_cnn
	$(VENV)/bin/tcdml study configs/study/margins.yaml --no-progress --only benchmark=hscodes-minilm-finetune --only seed=0
	$(VENV)/bin/tcdml study configs/study/offline-pretrained.yaml --no-progress
	$(VENV)/bin/tcdml study configs/study/pareto.yaml --no-progress
	$(VENV)/bin/tcdml pareto runs/study/pareto
