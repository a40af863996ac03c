# unsup3d: set-up, demo, tests and lint. POSIX make; every target runs from the repo root.
VENV ?= .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed

.PHONY: install demo photos test lint bench clean

# Create the venv once and (re)install the package in editable mode whenever its metadata
# changes; the stamp file makes a second `make install` a no-op.
install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The whole pipeline with the model that ships in the package (no downloads, no training
# first): reconstruct scikit-image's astronaut photo (face detection and crop, maps, turntable,
# gallery) and 16 synthetic mesh faces with ground truth, score them beside the baselines
# (SIDE/MAD table), export meshes, then train the smoke config to show the training path.
# Everything lands in runs/demo/.
DEMO = runs/demo
UNSUP3D = $(VENV)/bin/unsup3d

demo: install
	mkdir -p $(DEMO)/photos
	$(PY) -c "import imageio.v3 as io, skimage.data; io.imwrite('$(DEMO)/photos/astronaut.png', skimage.data.astronaut())"
	$(UNSUP3D) reconstruct $(DEMO)/photos --out $(DEMO)/reconstructions/photos --detect-faces --animate --force
	$(UNSUP3D) synth $(DEMO)/faces --num 32 --seed 1 --split 0.5,0,0.5 --workers 2 --force
	$(UNSUP3D) reconstruct $(DEMO)/faces/test/image --out $(DEMO)/reconstructions/faces \
		--no-detect-faces --force
	$(UNSUP3D) eval --data $(DEMO)/faces/test --checkpoint bundled --baseline const --baseline avg-gt \
		--out $(DEMO)/eval.json
	$(UNSUP3D) export $(DEMO)/reconstructions/faces $(DEMO)/reconstructions/photos \
		--out $(DEMO)/meshes --format all --force
	$(UNSUP3D) train --config configs/smoke.yaml --run-dir $(DEMO)/smoke --no-resume
	@echo "Galleries: $(DEMO)/reconstructions/photos/index.html and $(DEMO)/reconstructions/faces/index.html"
	@echo "Meshes:    $(DEMO)/meshes"

# Reconstruct any folder of photos with the bundled model (or CHECKPOINT=...):
#   make photos PHOTOS=path/to/photos [OUT=runs/photos] [CHECKPOINT=path/to/model]
PHOTOS ?=
OUT ?= runs/photos
CHECKPOINT ?=
MODEL = $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),)

photos: install
	@test -n "$(PHOTOS)" || { echo "usage: make photos PHOTOS=path/to/photos"; exit 2; }
	$(UNSUP3D) reconstruct $(MODEL) $(PHOTOS) --out $(OUT)/reconstructions --detect-faces --force
	$(UNSUP3D) export $(OUT)/reconstructions --out $(OUT)/meshes --format all --force
	@echo "Gallery: $(OUT)/reconstructions/index.html"

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) experiments/bench_train.py

# Removes build and tool caches and the demo run; keeps the venv and any other runs/.
clean:
	rm -rf runs/demo build dist *.egg-info .pytest_cache .ruff_cache
	find . -path "./$(VENV)" -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
