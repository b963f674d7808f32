# -*- coding: utf-8 -*-
"""connect(): an API server that is restarting is waited for, refused credentials are not."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import k8s_client
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import K8sUnreachable


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
