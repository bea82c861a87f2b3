# Two entry points: `make demo` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: install demo airflow ui mlflow-ui test test-fast lint format lock clean

install: $(STAMP)

# The runtime pins and the test tools' pins (the production image gets requirements.txt only);
# setuptools new enough to build the two editable packages in place (no build isolation), without
# its notice that an editable install is one.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml dev/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . -e dev
	touch $(STAMP)

demo: install
	$(BIN)/python -m fairgate_dev.demo

# A real local Airflow on the demo's home and store: api-server, scheduler, dag-processor and
# triggerer, one user who signs in (the password is printed); Ctrl-C stops them.
airflow: install
	$(BIN)/python -m fairgate_dev.local_airflow

# The Airflow UI alone (api-server, every visitor an admin), on the demo's home and store (Ctrl-C to stop).
ui: install
	$(BIN)/python -m fairgate_dev.serve

# The MLflow UI on the embedded store the demo's runs are tracked in (Ctrl-C to stop).
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.mlflow/mlflow.db --host 127.0.0.1 --port 5000

test: install
	$(BIN)/python -m pytest tests

# The inner loop: domain and operator tests, no whole lifecycles, DAG runs or services, on two workers
# (46 s on a quiet 2-core machine; 66 s on one).
test-fast: install
	$(BIN)/python -m pytest tests/unit tests/operators tests/test_structure.py -m "not lifecycle" -q -n 2

lint: install
	$(BIN)/ruff format --check include plugins dags dev tests benchmarks
	$(BIN)/ruff check include plugins dags dev tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format include plugins dags dev tests benchmarks
	$(BIN)/ruff check --fix include plugins dags dev tests benchmarks

# Re-resolve requirements.in into requirements.txt, then requirements-dev.in against it into
# requirements-dev.txt, in a scratch environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip && .lock-venv/bin/pip install --quiet -r requirements.in
	.lock-venv/bin/pip freeze > .lock-venv/runtime.txt
	{ echo "# Fully pinned resolution of requirements.in for Python 3.11 (regenerate with \`make lock\`): what"; \
	  echo "# the production image installs. Test tools are in requirements-dev.txt."; \
	  cat .lock-venv/runtime.txt; } > requirements.txt
	.lock-venv/bin/pip install --quiet -r requirements-dev.in -c requirements.txt
	{ echo "# The test and development tools of requirements-dev.in, pinned against requirements.txt (\`make lock\`)."; \
	  echo "# Installed by \`make\` next to requirements.txt; never in the production image."; \
	  .lock-venv/bin/pip freeze | grep -vxFf .lock-venv/runtime.txt; } > requirements-dev.txt
	rm -rf .lock-venv

clean:
	rm -rf $(AIRFLOW_HOME) .artifacts .mlflow
