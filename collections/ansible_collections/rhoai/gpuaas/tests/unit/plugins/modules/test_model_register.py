# -*- coding: utf-8 -*-
"""The model_register module as Ansible runs it: argument spec, fallbacks, no_log, result shape, failures."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.rhoai.gpuaas.plugins.modules import model_register

S3 = "http://127.0.0.1:18333"


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        model_register.main()
    return json.loads(capsys.readouterr().out)


def test_registers_and_returns_the_objects_with_elapsed(fake_registry, capsys) -> None:
    args = {"url": fake_registry.url, "name": "granite", "version": "3.1", "uri": "s3://models/granite",
            "s3_endpoint": S3, "_ansible_diff": True}
    result = run_main(args, capsys)
    assert result["changed"] is True and "failed" not in result
    assert result["model_artifact"]["uri"] == "s3://models/granite?endpoint=http%3A%2F%2F127.0.0.1%3A18333"
    assert result["elapsed"] >= 0
    assert set(result["diff"]) == {"before", "after"}
    assert run_main(args, capsys)["changed"] is False


def test_check_mode_is_supported_and_writes_nothing(fake_registry, capsys) -> None:
    result = run_main({"url": fake_registry.url, "name": "granite", "version": "3.1",
                       "uri": "oci://quay.io/org/granite-modelcar:3.1", "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True and result["model_artifact"]["uri"] == "oci://quay.io/org/granite-modelcar:3.1"
    assert fake_registry.writes() == []


def test_url_and_token_fall_back_to_the_environment_and_the_token_is_never_output(
        fake_registry, capsys, monkeypatch) -> None:
    fake_registry.token = "sha256~very-secret"
    monkeypatch.setenv("MODEL_REGISTRY_URL", fake_registry.url)
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "sha256~very-secret")
    with patch_module_args({"name": "granite", "version": "3.1", "uri": "oci://quay.io/org/granite:3.1"}), \
            pytest.raises(SystemExit):
        model_register.main()
    out = capsys.readouterr().out
    assert json.loads(out)["url"] == fake_registry.url
    assert "very-secret" not in out
    assert fake_registry.requests[0]["headers"]["authorization"] == "Bearer sha256~very-secret"


def test_a_failure_names_the_option_and_carries_elapsed(fake_registry, capsys) -> None:
    result = run_main({"url": fake_registry.url, "name": "granite", "version": "3.1",
                       "uri": "s3://models/granite"}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("s3_endpoint is required with an s3:// uri")
    assert "elapsed" in result
    assert fake_registry.requests == []


def test_required_options_are_enforced_by_the_argument_spec(capsys) -> None:
    result = run_main({"url": "http://127.0.0.1:1", "name": "granite", "version": "3.1"}, capsys)
    assert result["failed"] is True and "missing required arguments: uri" in result["msg"]
