# q2c: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SEED ?= 7
ACCOUNTS ?= 60
# Test processes: each takes whole test files, so a file's shared fixtures are built once.
TEST_WORKERS ?= 2

export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
# Dagster's runs live beside the data they ran on: $Q2C_HOME/dagster, else var/dagster.
export DAGSTER_HOME ?= $(if $(Q2C_HOME),$(abspath $(Q2C_HOME))/dagster,$(CURDIR)/var/dagster)

.PHONY: setup system-packages demo ui test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-packages:
	@scripts/install-system-packages.sh

setup: system-packages $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp orchestration/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: setup
	$(BIN)/q2c generate --seed $(SEED) --accounts $(ACCOUNTS) --out var/landing \
		--attachments var/attachments
	$(BIN)/q2c run --landing var/landing

ui: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf var dbt_project/target dbt_project/logs
