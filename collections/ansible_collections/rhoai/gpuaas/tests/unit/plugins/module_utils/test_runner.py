# -*- coding: utf-8 -*-
"""One way to end a module: result with elapsed, GpuaasError with its partial result, API answers in one line."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import WaitTimeout
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeApiError, rbac_refusal


class Ended(Exception):
    pass


class FakeModule:
    def __init__(self) -> None:
        self.exited = None
        self.failed = None

    def exit_json(self, **kw):
        self.exited = kw
        raise Ended()

    def fail_json(self, **kw):
        self.failed = kw
        raise Ended()


def run(body, redact=None) -> FakeModule:
    module = FakeModule()
    with pytest.raises(Ended):
        run_module(module, body, redact)
    return module


def test_success_adds_elapsed() -> None:
    module = run(lambda m: {"changed": True})
    assert module.exited["changed"] is True and module.exited["elapsed"] >= 0 and module.failed is None


def test_a_gpuaas_error_fails_with_its_partial_result() -> None:
    def body(m):
        raise GpuaasError("wait_timeout must be > 0, got 0", changed=False, pods=[1])
    failed = run(body).failed
    assert failed["msg"] == "wait_timeout must be > 0, got 0" and failed["pods"] == [1] and "elapsed" in failed


def test_a_wait_error_returns_the_last_state_seen() -> None:
    def body(m):
        raise WaitTimeout("Timed out after 5s", {"workloads": [{"state": "pending"}]}, 5.0)
    failed = run(body).failed
    assert failed["workloads"] == [{"state": "pending"}]


def test_an_api_answer_is_one_line_without_headers() -> None:
    def body(m):
        raise FakeApiError(403, 'inferenceservices "x" is forbidden: User "u" cannot patch resource')
    failed = run(body).failed
    assert failed["msg"] == ('Kubernetes API error: HTTP 403: inferenceservices "x" is forbidden: '
                             'User "u" cannot patch resource')


def test_a_bug_keeps_its_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        run_module(FakeModule(), lambda m: 1 / 0)


def test_redact_applies_to_every_message() -> None:
    def body(m):
        raise GpuaasError("bad key s3cr3t")
    assert run(body, redact=lambda t: t.replace("s3cr3t", "********")).failed["msg"] == "bad key ********"


def test_an_rbac_refusal_names_the_user_verb_and_resource_without_headers() -> None:
    """kubernetes' own ApiException, as a ServiceAccount bound to aap/rbac/handover.yaml gets it for a scale."""
    refusal = rbac_refusal("patch", "deployments/scale", "apps/v1", "mistral-3-int4-predictor", "private-ai")
    assert "HTTP response headers" in str(refusal)  # what the module must not show

    def body(m):
        raise refusal
    failed = run(body).failed
    assert failed["msg"] == (
        'Kubernetes API error: HTTP 403: deployments.apps "mistral-3-int4-predictor" is forbidden: User '
        '"system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover" cannot patch resource "deployments/scale" '
        'in API group "apps" in the namespace "private-ai"')
