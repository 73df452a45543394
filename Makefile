# Thin aliases for people. Everything here calls nox or stageflow; `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# make runs nox sessions inside .venv (already set up): no second virtualenv, nothing reinstalled
NOX := $(BIN)/nox --no-venv --no-install
ENV ?= dev
PYTEST_ARGS ?=
# LOCAL=1: act on the local emulator (on-call targets never choose it just because no credentials exist)
ifdef LOCAL
export STAGEFLOW_LOCAL := 1
endif

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/.installed ## create .venv with stageflow and every tool the tests need
	@$(BIN)/python scripts/setup_tools.py

test: setup ## install everything, start what the tests need, and run the whole suite
	@bash scripts/run-tests.sh $(PYTEST_ARGS)

demo: setup ## the main job: the pipeline for dev (nox -s deploy -- dev) on the local AWS emulator
	STAGEFLOW_LOCAL=1 $(NOX) -s deploy -- dev

docker-up: ## start the local Docker engine, base image and registry (root; scripts/docker-engine.sh)
	bash scripts/docker-engine.sh up

docker-down: ## stop the local Docker engine and registry started by docker-up
	bash scripts/docker-engine.sh down

build: setup ## build (and push) the service's images for ENV: make build ENV=dev
	$(BIN)/stageflow build $(ENV)

lint: setup ## ruff check, ruff format --check, terraform fmt -check
	$(NOX) -s lint

deploy: setup ## the pipeline for ENV: build, security, Terraform, canary (ENV=staging)
	$(NOX) -s deploy -- $(ENV)

plan: setup ## Terraform plan of ENV with its summary and policy (ENV=dev [ALLOW_DESTROY=1])
	$(NOX) -s plan -- $(ENV) $(if $(ALLOW_DESTROY),--allow-destroy,)

apply: setup ## plan ENV, check the policy, apply exactly that plan (ENV=dev [ALLOW_DESTROY=1])
	$(NOX) -s apply -- $(ENV) $(if $(ALLOW_DESTROY),--allow-destroy,)

drift: setup ## does ENV's infrastructure still match its code? exit 1 when not (ENV=prod)
	$(BIN)/stageflow drift $(ENV)

canary: setup ## ship the current code to ENV in canary steps (ENV=dev)
	$(NOX) -s canary -- $(ENV)

rollback: setup ## all traffic of ENV to the last known good version (ENV=prod [TO=VERSION] [LOCAL=1])
	$(NOX) -s rollback -- $(ENV) $(if $(TO),--to $(TO),)

status: setup ## what ENV serves and what is in flight (ENV=prod [LOCAL=1])
	$(NOX) -s status -- $(ENV)

unit: setup ## the service's unit tests with the coverage floor (reports/junit-service-unit.xml, coverage-service.xml)
	$(NOX) -s unit

integration: setup ## the service's integration suite against the deployed ENV (ENV=dev)
	$(NOX) -s integration -- $(ENV)

smoke: setup ## the deployed service's health endpoint (ENV=dev)
	$(NOX) -s smoke -- $(ENV)

load: setup ## the service's load test with ENV's profile, compared with the gates; HTML + JSON in reports/ (ENV=dev)
	$(NOX) -s load -- $(ENV)

bench-reliability: setup ## 50 deploy+rollback cycles under 5 % AWS faults, persistent faults, kills → bench/results/reliability.json
	$(BIN)/python bench/reliability.py

local-up: setup ## start the local AWS emulator
	$(BIN)/stageflow local up

local-down: setup ## stop the local AWS emulator
	$(BIN)/stageflow local down

.PHONY: help setup test demo lint unit integration deploy plan apply drift canary rollback status smoke load local-up local-down docker-up docker-down build bench-reliability
