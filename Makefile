# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
COLLECTION := collections/ansible_collections/rhoai/gpuaas
SITE_COLLECTIONS = $(shell $(PY) -c 'import ansible_collections.kubernetes.core as m, os; print(os.path.dirname(m.__path__[0]))')
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)

.PHONY: venv deps testbed-build testbed-up testbed-down testbed-status testbed-kubeconfig \
        test test-unit test-sanity test-lint test-build test-integration test-molecule demo model \
        mutation test-mutation-fast

venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ansible-test sees only the collections under the same ansible_collections/ root, so the
# kubernetes.core that the `ansible` package ships is linked there (gitignored). ansible-test
# also downloads a pip bootstrap script from a host we cannot reach; the error it prints names
# the cache path to put one at, and ours bootstraps pip from Python's own ensurepip.
deps: venv
	@mkdir -p collections/ansible_collections/kubernetes ~/.ansible/test/cache
	@ln -sfn $(SITE_COLLECTIONS)/core collections/ansible_collections/kubernetes/core
	@cp -n tools/ansible_test_get_pip.py ~/.ansible/test/cache/get_pip_24_2.py

testbed-build:
	testbed/build.sh

testbed-up: venv testbed-build
	$(PY) testbed/testbed.py up

testbed-down:
	@if [ -x $(PY) ]; then $(PY) testbed/testbed.py down; fi

testbed-status: venv
	$(PY) testbed/testbed.py status

testbed-kubeconfig:
	@$(PY) testbed/testbed.py kubeconfig

test: test-unit test-mutation-fast test-sanity test-lint test-build testbed-up test-integration test-molecule

test-unit: deps
	cd collections && $(BIN)/python -m pytest -q -p no:cacheprovider ansible_collections/rhoai/gpuaas/tests/unit
	$(PY) -m pytest -q -p no:cacheprovider tests/testbed tests/test_aap_config.py tests/test_rbac_manifests.py tests/test_kind_scenario.py tests/test_inventory_schema.py

test-sanity: deps
	cd $(COLLECTION) && $(BIN)/ansible-test sanity --python 3.11 --color no
	cd $(COLLECTION) && $(BIN)/antsibull-changelog lint

test-lint: deps
	$(BIN)/ansible-lint --profile production --offline

test-build: deps
	$(BIN)/ansible-galaxy collection build --force --output-path /tmp $(COLLECTION)
	for m in $(notdir $(basename $(wildcard $(COLLECTION)/plugins/modules/*.py))); do \
	  $(BIN)/ansible-doc rhoai.gpuaas.$$m > /dev/null || exit 1; done

# The integration tests run in a random order (pytest-randomly); the header prints the seed as
# "Using --randomly-seed=N". Replay that order with `make test-integration SEED=N`.
test-integration: deps model
	$(PY) -m pytest -p no:cacheprovider -p randomly $(if $(SEED),--randomly-seed=$(SEED)) \
	  -m integration tests/integration

test-molecule: deps model
	cd $(CURDIR) && $(BIN)/molecule test -s default

# Mutation testing of module_utils with mutmut (tests/mutation/setup.cfg): the collection is copied
# to .mutation/ and mutated there, so the tree stays clean. Prints the score per file (the equivalent
# mutants of tests/mutation/equivalent_mutants.py left out) and fails when kueue, isvc, machinesets,
# k8s_wait or s3_etag is below 90% or that record is stale; then the hand-written mutants
# (tests/mutation/listed_mutants.py). Too slow for every `make test`: that runs test-mutation-fast.
MUTATION_DIR := .mutation
mutation: deps
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)/ansible_collections
	cp -r collections/ansible_collections/rhoai $(MUTATION_DIR)/ansible_collections/
	rm -rf $(MUTATION_DIR)/ansible_collections/rhoai/gpuaas/tests/output
	cp tests/mutation/setup.cfg $(MUTATION_DIR)/
	cd $(MUTATION_DIR) && $(BIN)/mutmut run --max-children 2 $(MUTANTS) > mutmut.log 2>&1 \
	  || { tail -40 mutmut.log; exit 1; }
	cd $(MUTATION_DIR) && $(BIN)/mutmut results --all true | $(BIN)/python ../tests/mutation/score.py
	$(PY) tests/mutation/listed_mutants.py

# The fast subset: the hand-written mutants of issue 14 must still be killed.
test-mutation-fast: deps
	$(PY) tests/mutation/listed_mutants.py

model: venv
	$(PY) playbooks/files/make_model.py --hf-cache $${TESTBED_STATE:-.testbed}/hf-cache

demo: deps testbed-up model
	$(BIN)/ansible-playbook -i inventories/local playbooks/site.yml
