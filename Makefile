# Two commands matter: `make run` (Meridian against the simulated EU fleet, or your KUBECONFIG)
# and `make test` (everything). The rest are the inner loop.
PY ?= python3
MERIDIAN_TOPOLOGY ?= cluster
# clusters: a Karmada control plane and one member cluster per region
FLEET ?= $(if $(filter clusters,$(MERIDIAN_TOPOLOGY)),examples/fleets/karmada.yaml,examples/fleets/eu.yaml)
WORKDIR ?= .meridian-sim
export MERIDIAN_BIN_DIR ?= $(shell $(PY) -c "import os;print(os.environ.get('MERIDIAN_CACHE_DIR', os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'meridian')) + '/bin')")

.PHONY: install tools crds lint typecheck test test-unit test-integration test-e2e run sim-up sim-down bench bench-autoscale clean

install:
	$(PY) -m pip install -q -e '.[test]'

tools:
	hack/build-tools.sh

crds:
	meridian crds --out crds
	cp crds/*.yaml charts/meridian/crds/

lint:
	ruff check operator tests bench
	ruff format --check operator tests bench

typecheck:
	mypy

test-unit:
	$(PY) -m pytest -m unit -q

test-integration: tools
	$(PY) -m pytest -m "integration or e2e" -q

test: install tools lint typecheck
	$(PY) -m pytest -q

run: install tools
	hack/run.sh "$(FLEET)" "$(WORKDIR)"

sim-up: tools
	meridian sim up --fleet $(FLEET) --workdir $(WORKDIR)

sim-down:
	meridian sim down --workdir $(WORKDIR)

bench: tools
	$(PY) bench/controlplane.py
	$(PY) bench/placement.py
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/autoscale.py --plots bench/out
	$(PY) bench/reconcile_scale.py
	$(PY) bench/residency.py
	$(PY) bench/karmada.py

# the autoscaling benchmark alone, with its plots (bench/out/*.png)
bench-autoscale:
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/autoscale.py --plots bench/out

clean:
	-meridian sim down --workdir $(WORKDIR)
	rm -rf $(WORKDIR) .pytest_cache .mypy_cache .ruff_cache
