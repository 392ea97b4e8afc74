# Two entry points (README): `make demo` and `make test`. Both build .venv on first use; `make test`
# also builds .venv-ui4, the gradio-4 UI environment the browser test serves the tab from a second time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The UI on gradio 4.40 (Forge Neo's gradio): gradio and what the UI process imports, no torch. Its
# jobs train with .venv's Python (LORA_TRAINER_PYTHON). Our package is not installed there: it runs
# from the checkout (`python -m` from the repository root, or PYTHONPATH).
UI4_VENV ?= .venv-ui4
UI4_PY := $(UI4_VENV)/bin/python
UI4_STAMP := $(UI4_VENV)/.installed
PIP := -m pip install -q --disable-pip-version-check
# The face-identity tests install dlib the way a user's first test does (pip --target, no network
# then: from this local wheel folder) and read a real photograph out of scikit-image's wheel.
FACE_WHEELS := $(VENV)/face-wheels
FACE_STAMP := $(FACE_WHEELS)/.complete

.PHONY: demo test bench env ui4-env ui4 face-wheels clean

env: $(STAMP)

$(STAMP): requirements/env.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) -r requirements/env.txt
	# open_clip is installed only for its CLIP BPE vocabulary file; its dependencies
	# (torchvision, timm) would break peft and diffusers beside this torch.
	$(PY) $(PIP) --no-deps open_clip_torch==3.3.0
	$(PY) $(PIP) --no-deps --no-build-isolation -e .
	touch $(STAMP)

ui4-env: $(UI4_STAMP)

$(UI4_STAMP): requirements/ui-gradio4.txt pyproject.toml
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(UI4_VENV) && \
	$(UI4_PY) $(PIP) -r requirements/ui-gradio4.txt && \
	$(UI4_PY) $(PIP) --no-deps open_clip_torch==3.3.0 && \
	echo "$(UI4_VENV): built in $$(( $$(date +%s) - start )) s"
	touch $(UI4_STAMP)

demo: $(STAMP)
	$(PY) -m lib_lora_trainer demo --out out/demo

face-wheels: $(FACE_STAMP)

$(FACE_STAMP): $(STAMP) lib_lora_trainer/evaluate/face_identity.py
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps -w $(FACE_WHEELS) \
		$$($(PY) -c "from lib_lora_trainer.evaluate.face_identity import PACKAGES; print(' '.join(PACKAGES))")
	$(PY) -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d $(FACE_WHEELS) \
		scikit-image==0.26.0
	touch $(FACE_STAMP)

# One command: the whole suite in .venv; the browser test (tests/ui) runs once per UI environment.
test: $(STAMP) $(UI4_STAMP) $(FACE_STAMP)
	$(PY) -m pytest -q

# The standalone tab on gradio 4 (trainer: .venv).
ui4: $(STAMP) $(UI4_STAMP)
	PYTHONPATH=$(CURDIR) LORA_TRAINER_PYTHON=$(abspath $(PY)) $(UI4_PY) -m lib_lora_trainer ui

bench: $(STAMP)
	$(PY) bench/dataset_check.py

clean:
	rm -rf $(VENV) $(UI4_VENV) out
