# -*- coding: utf-8 -*-
"""connect(): an API server that is restarting is waited for, refused credentials are not."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import k8s_client
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import K8sUnreachable
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeApiError, rbac_refusal


def test_a_restarting_api_server_is_retried_until_it_answers(monkeypatch) -> None:
    attempts = []

    def once(module):
        attempts.append(1)
        if len(attempts) < 3:
            raise K8sUnreachable("The Kubernetes API at https://x is unreachable: connection refused.", retriable=True)
        return "client"
    monkeypatch.setattr(k8s_client, "_connect_once", once)
    monkeypatch.setattr(k8s_client.time, "sleep", lambda s: None)
    assert k8s_client.connect(object(), retry_seconds=10) == "client" and len(attempts) == 3


def test_refused_credentials_fail_at_once(monkeypatch) -> None:
    attempts = []

    def once(module):
        attempts.append(1)
        raise K8sUnreachable("The Kubernetes API at https://x refused the credentials (HTTP 401).")
    monkeypatch.setattr(k8s_client, "_connect_once", once)
    with pytest.raises(K8sUnreachable, match="refused the credentials"):
        k8s_client.connect(object(), retry_seconds=10)
    assert len(attempts) == 1


def test_an_api_server_that_never_comes_back_fails_after_the_bound(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(k8s_client.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(k8s_client.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))

    def once(module):
        raise K8sUnreachable("The Kubernetes API at https://x is unreachable: connection refused.", retriable=True)
    monkeypatch.setattr(k8s_client, "_connect_once", once)
    with pytest.raises(K8sUnreachable, match="unreachable"):
        k8s_client.connect(object(), retry_seconds=10)
    assert 6 <= clock[0] <= 10


def test_the_probe_marks_5xx_and_no_connection_retriable_but_not_401() -> None:
    class Answer(Exception):
        def __init__(self, status):
            super().__init__(status)
            self.status = status
    assert k8s_client._unreachable(Answer(503), "h", "c", "x").retriable is True
    assert k8s_client._unreachable(ConnectionRefusedError("refused"), "h", "c", "x").retriable is True
    assert k8s_client._unreachable(Answer(401), "h", "c", "x").retriable is False
    assert k8s_client._unreachable(Answer(404), "h", "c", "x") is None


def test_an_rbac_refusal_is_told_from_a_webhook_refusal() -> None:
    """Both answer 403; only the authorizer's says which user may not do which verb."""
    assert k8s_client.is_rbac_refusal(rbac_refusal("create", "workloads", "kueue.x-k8s.io/v1beta1", None, "ns"))
    webhook = FakeApiError(403, 'admission webhook "vworkload.kb.io" denied the request: spec.podSets: Required value')
    assert not k8s_client.is_rbac_refusal(webhook)
    assert not k8s_client.is_rbac_refusal(FakeApiError(404, 'workloads.kueue.x-k8s.io "w" not found'))
    assert not k8s_client.is_rbac_refusal(ConnectionRefusedError("refused"))
