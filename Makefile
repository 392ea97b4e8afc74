# Two entry points (README): `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench env clean

env: $(STAMP)

$(STAMP): requirements/env.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/env.txt
	# open_clip is installed only for its CLIP BPE vocabulary file; its dependencies
	# (torchvision, timm) would break peft and diffusers beside this torch.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps open_clip_torch==3.3.0
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lib_lora_trainer demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/dataset_check.py

clean:
	rm -rf $(VENV) out
