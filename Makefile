# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv with the exact versions of requirements.lock and install spar into it.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

# Workflow rules call `spar` and `snakemake` from the environment's PATH.
export PATH := $(BIN):$(PATH)

.PHONY: demo test real venv lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

## demo: simulate the vehicle scenes, pretrain SPAR and the baselines, rebuild Table 1 and Figure 3
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) demo

## real: pretrain SPAR on the real coal-mine geophone recordings shipped by opsdata-coal-node
real: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results/real/coal_node/report.json

## test: run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

## lock: re-resolve requirements.lock from the pins in pyproject.toml (needs network)
lock:
	rm -rf /tmp/spar-lock && $(PYTHON) -m venv /tmp/spar-lock
	/tmp/spar-lock/bin/python -m pip install --quiet . pytest==9.2.0 hypothesis==6.170.27
	{ echo "# Exact versions of every package that spar installs, resolved on CPython 3.11 (x86_64)."; \
	  echo "# Regenerate with: make lock"; \
	  /tmp/spar-lock/bin/python -m pip freeze --exclude spar | sed 's/+cpu$$//'; } > requirements.lock

clean:
	rm -rf results logs .snakemake data/raw data/tensors
