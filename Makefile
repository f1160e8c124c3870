# sonimage: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo
DEMO_SITE ?= out/site
# Patients per cohort. Empty (the default) generates the real study size: SONIA 100, IMPACT 200, TRANSCAN 147
# (bench/demo.py times it); `make demo DEMO_PATIENTS=30` is the quick demo for development.
DEMO_PATIENTS ?=
DEMO_SIZE ?= small
export SONIMAGE_HOME ?= $(CURDIR)/.sonimage
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install demo test bench stack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,slurm]"
	@# the dask-kubernetes operator's CRD schema, to validate infra/kubernetes offline (the wheel only: its
	@# dependencies would move python-dateutil under lifelines' feet)
	$(BIN)/pip download --quiet --no-deps -d $(VENV)/wheels "$$($(BIN)/python -c "import tomllib; print(next(p for p in \
		tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['kubernetes'] if p.startswith('dask-kubernetes')))")"
	@# the feature kernels compiled once into Numba's cache (sonimage/lesions/warmup.py), not by every worker
	$(BIN)/python -m sonimage.lesions.warmup
	touch $(STAMP)

install: $(STAMP)

# The demo's analysis uses modest bootstrap and simulation counts (deployments/demo-settings.json; the report's
# Methods section prints them). The synthetic hospital ($(DEMO_SITE), beside the outputs, never inside them) holds
# the PACS export (dicom/) and the site-private linking table (site-private/, 0700); the synthetic trial office
# delivers clinical tables (truth/<cohort>/patients.parquet, lesion response in lesions.parquet). Image uptake values
# always come from the images.
demo: $(STAMP)
	$(BIN)/sonimage synth $(DEMO_SITE) $(if $(DEMO_PATIENTS),--patients $(DEMO_PATIENTS)) --size $(DEMO_SIZE) --seed 1 --workers 2
	$(BIN)/sonimage run $(DEMO_SITE)/dicom $(DEMO_OUT) --linking $(DEMO_SITE)/site-private/linking.csv \
		--clinical $(DEMO_SITE)/truth --settings deployments/demo-settings.json

# The layer contract (pyproject.toml [tool.importlinter]) first, then every test (slow ones included; a quick
# loop without the service-starting tests: pytest -m "not slow").
test: $(STAMP)
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest -q --durations=15

# The production stack as local processes on loopback (PostgreSQL, Prefect server with its UI, process worker, Dask
# scheduler + 2 workers, S3-compatible store), deployments registered; Ctrl-C stops it. The Prefect API/UI requires
# a generated auth string, Dask speaks TLS only with a session CA; clients get both by: source $(STACK_DIR)/stack.env
STACK_DIR ?= $(CURDIR)/.stack
stack: $(STAMP)
	$(BIN)/python -m flows.stack $(STACK_DIR)

SCALE_PATIENTS ?= 25 50 100
bench: $(STAMP)
	$(BIN)/python bench/convert.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/survival.py
	$(BIN)/python bench/truth.py
	$(BIN)/python bench/demo.py
	$(BIN)/python bench/scale.py --patients $(SCALE_PATIENTS) --workers 1 2

clean:
	rm -rf out .prefect .stack bench/results
