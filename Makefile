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

# The whole pipeline on built-in synthetic faces (no downloads): train the smoke config, render
# a few test faces with ground truth, evaluate, reconstruct them and scikit-image's astronaut
# photo (face crop, maps, gallery), and export meshes. Everything lands in runs/demo/.
DEMO = runs/demo
UNSUP3D = $(VENV)/bin/unsup3d

demo: install
	$(UNSUP3D) train --config configs/smoke.yaml --run-dir $(DEMO) --no-resume
	$(UNSUP3D) synth $(DEMO)/faces --num 8 --seed 1 --split 0,0,1 --workers 1 --force
	$(UNSUP3D) eval --data $(DEMO)/faces/test \
		--checkpoint $(DEMO)/checkpoints/last.pt --baseline const --out $(DEMO)/eval.json
	mkdir -p $(DEMO)/photos
	$(PY) -c "import imageio.v3 as io, skimage.data; io.imwrite('$(DEMO)/photos/astronaut.png', skimage.data.astronaut())"
	$(UNSUP3D) reconstruct --checkpoint $(DEMO)/checkpoints/last.pt $(DEMO)/faces/test/image \
		--out $(DEMO)/reconstructions/faces --no-detect-faces --animate --force
	$(UNSUP3D) reconstruct --checkpoint $(DEMO)/checkpoints/last.pt $(DEMO)/photos \
		--out $(DEMO)/reconstructions/photos --detect-faces --force
	$(UNSUP3D) export $(DEMO)/reconstructions/faces $(DEMO)/reconstructions/photos \
		--out $(DEMO)/meshes --format all --force
	@echo "Galleries: $(DEMO)/reconstructions/faces/index.html and $(DEMO)/reconstructions/photos/index.html"
	@echo "Meshes:    $(DEMO)/meshes"

# Reconstruct any folder of photos with the demo model (or CHECKPOINT=...):
#   make photos PHOTOS=path/to/photos [OUT=runs/photos] [CHECKPOINT=runs/demo/checkpoints/last.pt]
PHOTOS ?=
OUT ?= runs/photos
CHECKPOINT ?= $(DEMO)/checkpoints/last.pt

photos: install
	@test -n "$(PHOTOS)" || { echo "usage: make photos PHOTOS=path/to/photos"; exit 2; }
	$(UNSUP3D) reconstruct --checkpoint $(CHECKPOINT) $(PHOTOS) --out $(OUT)/reconstructions --detect-faces --force
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
