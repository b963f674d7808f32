# -*- coding: utf-8 -*-
"""connection_ca as Ansible runs it."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.tests.unit.plugins.module_utils import test_ca_bundle as t


def test_ready_result_and_nothing_written(run_module) -> None:
    c = t.cluster(*t.platform(t.pem(t.S3_CA)))
    result, failed = run_module("connection_ca", {"namespace": t.NS, "connection": "models", "ca": t.pem(t.S3_CA)},
                                cluster=c)
    assert not failed and result["ready"] and result["changed"] is False and c.writes == []
    assert result["trusted_by"] == ["the DSCInitialization's spec.trustedCABundle.customCABundle"]


def test_ca_without_a_certificate_fails_before_reading(run_module) -> None:
    c = t.cluster()
    c.forbid = {("list", "ConfigMap"), ("get", "Namespace")}   # reading anything would fail otherwise
    result, failed = run_module("connection_ca", {"namespace": t.NS, "connection": "models", "ca": "minio-ca.crt"},
                                cluster=c)
    assert failed and result["msg"].startswith("ca holds no PEM certificate")


def test_a_missing_option_is_named(run_module) -> None:
    result, failed = run_module("connection_ca", {"namespace": t.NS, "ca": t.pem(t.S3_CA)})
    assert failed and "connection" in result["msg"]
