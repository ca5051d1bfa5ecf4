# orderhub: every command starts here. `make demo` and `make test` work on a fresh clone
# (Python 3.11+, Node 20+): they install what they need into .venv first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8080
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1

.PHONY: help install demo run test test-unit test-integration test-infra test-e2e test-hostile test-reliability mutants lint bench synth deploy schemas clean

help:
	@echo "make demo     install, start the hub locally on moto, play sample traffic, print a summary"
	@echo "make run      serve the hub locally on http://127.0.0.1:$(PORT) until stopped (PORT overrides)"
	@echo "make test     install and run every test tier (unit, integration, infrastructure, e2e, hostile input, reliability) + lint"
	@echo "make bench    run the benchmarks and rewrite bench/RESULTS.md"
	@echo "make mutants  break each safety check (lost update, blind overwrite, log or ledger overwrite, money counted twice, ledger skipped) in a copy; its tests must fail"
	@echo "make synth    synthesise the CDK app into cdk.out (no AWS account needed)"
	@echo "make deploy   deploy with CDK (needs AWS credentials and a bootstrapped account)"

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || (echo "orderhub needs Python 3.11+" && exit 1)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/orderhub demo

run: install
	$(BIN)/orderhub run --port $(PORT)

# The reliability tier is minutes of moto work on one core: it runs beside the other tiers, its
# report (lost / duplicated / unexpected per scenario) printed when both are done.
test: install lint
	@$(BIN)/python -m pytest tests/reliability > .reliability.log 2>&1 & reliability=$$!; \
	$(BIN)/python -m pytest tests/unit tests/integration tests/infrastructure tests/e2e tests/hostile; tiers=$$?; \
	wait $$reliability; status=$$?; \
	echo "---- reliability tier (tests/reliability) ----"; cat .reliability.log; \
	test $$tiers -eq 0 -a $$status -eq 0

test-unit: install
	$(BIN)/python -m pytest tests/unit

test-integration: install
	$(BIN)/python -m pytest tests/integration

test-infra: install
	$(BIN)/python -m pytest tests/infrastructure

test-e2e: install
	$(BIN)/python -m pytest tests/e2e

test-hostile: install
	$(BIN)/python -m pytest tests/hostile

test-reliability: install
	$(BIN)/python -m pytest tests/reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Each mutant is applied to a temporary copy of the working tree, never to the tree itself.
mutants: install
	$(BIN)/python -m tests.mutants

bench: install
	$(BIN)/python -m bench.run_all

synth: install
	$(BIN)/python -m infra.cdk.app

deploy: synth
	npx --yes aws-cdk@2 deploy --app cdk.out --require-approval broadening

schemas: install
	$(BIN)/python -m infra.schemas

clean:
	rm -rf $(VENV) cdk.out .build .pytest_cache .ruff_cache .mypy_cache .hypothesis .reliability.log
