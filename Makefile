# Frontline: `make run` serves all three services embedded; `make test` runs every suite.
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install (done by run and test when needed)

run: $(STAMP) ## all three services in one process on :8000 (PORT overrides), SQLite under var/
	$(BIN)/frontline run

demo: $(STAMP) ## a small live county (sign-ins, findings, a closed week, a draft batch) in `make run`
	$(BIN)/frontline seed --profile demo

test: $(STAMP) ## the whole suite: SQLite, PostgreSQL (started if needed), Apache Kafka (started)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## SQLite only, no PostgreSQL, no Kafka
	$(BIN)/python -m pytest -m "not postgres and not kafka and not e2e"

up: $(STAMP) ## distributed stack: PostgreSQL, Apache Kafka, services on :8001-8003 (logs in var/log/)
	$(BIN)/frontline dev up

down: $(STAMP) ## stop what `make up` started
	$(BIN)/frontline dev down

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

migration: $(STAMP) ## new Alembic revision: make migration SERVICE=registry MSG="add honors"
	$(BIN)/python -m shared.migrate revision $(SERVICE) "$(MSG)"

bench: $(STAMP) ## every benchmark: one table each (figure, same-run reference, ratio, target)
	@failed=""; for b in signin_ratio.py signin_cpu.py idle_cpu.py idle_cpu_kafka.py "week_close.py 10000 40000" \
		"month_close.py" pipeline.py audit_append.py xlsx_import.py; do \
		echo "== bench/$$b"; $(BIN)/python bench/$$b || failed="$$failed, $$b"; done; \
	test -z "$$failed" || { echo "bench: these exited non-zero (a crash, or a miss):$${failed#,}"; exit 1; }

bench-quick: $(STAMP) ## sign-in and batch ratios, a 10k-cadre month close (< 3 min)
	$(BIN)/python bench/signin_ratio.py 6
	$(BIN)/python bench/month_close.py 10000

clean: ## remove var/ (embedded data)
	rm -rf var

.PHONY: help install run demo test test-fast up down lint migration bench bench-quick clean
