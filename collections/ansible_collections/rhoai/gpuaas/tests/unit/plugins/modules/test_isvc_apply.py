# -*- coding: utf-8 -*-
"""isvc_apply: create, patch only what really changes, keep what others own, ignore the status."""

from __future__ import annotations

import copy

from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def definition(**annotations):
    obj = o.isvc("m")
    obj.pop("status")
    obj["metadata"]["annotations"] = dict({"serving.kserve.io/deploymentMode": "RawDeployment"}, **annotations)
    return obj


def test_creates_then_reports_no_change_while_the_status_moves(run_module) -> None:
    c = FakeCluster()
    first, failed = run_module("isvc_apply", {"definition": definition(**{"serving.kserve.io/stop": "true"})},
                               cluster=c, diff=True)
    assert not failed and first["changed"] is True and first["method"] == "create"
    live = c.find(o.ISVC, "InferenceService", "m", o.NS)
    live["status"] = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "now"}]}
    c.update(live)  # KServe writes the status
    second, failed = run_module("isvc_apply", {"definition": definition()}, cluster=c)
    assert not failed
    assert second["changed"] is False and second["method"] == "none"
    assert [w["dry_run"] for w in c.written("patch")] == [True]  # asked, not written
    assert c.find(o.ISVC, "InferenceService", "m", o.NS)["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"


def test_a_real_change_is_patched_with_the_diff(run_module) -> None:
    c = FakeCluster()
    c.add(definition())
    changed = definition()
    changed["spec"]["predictor"]["model"]["args"] = ["--max-model-len=4096"]
    result, failed = run_module("isvc_apply", {"definition": changed}, cluster=c, diff=True)
    assert not failed and result["method"] == "patch"
    assert result["diff"]["after"]["spec"]["predictor"]["model"]["args"] == ["--max-model-len=4096"]
    assert "args" not in result["diff"]["before"]["spec"]["predictor"]["model"]
    assert [w["dry_run"] for w in c.written("patch")] == [True, False]


def test_check_mode_writes_nothing(run_module) -> None:
    c = FakeCluster()
    result, failed = run_module("isvc_apply", {"definition": definition()}, cluster=c, check=True)
    assert not failed
    assert result["changed"] is True and all(w["dry_run"] for w in c.writes)
    assert c.find(o.ISVC, "InferenceService", "m", o.NS) is None


def test_a_webhook_refusal_is_one_line(run_module) -> None:
    c = FakeCluster()
    c.refuse[("InferenceService", "*")] = "hardware profile 'nope' not found in namespace 'redhat-ods-applications'"
    result, failed = run_module("isvc_apply", {"definition": copy.deepcopy(definition())}, cluster=c)
    assert failed and "hardware profile 'nope' not found" in result["msg"]


def test_a_definition_without_namespace_is_refused(run_module) -> None:
    bad = definition()
    bad["metadata"].pop("namespace")
    result, failed = run_module("isvc_apply", {"definition": bad}, cluster=FakeCluster())
    assert failed and result["msg"] == "definition needs metadata.name and metadata.namespace"


def test_a_missing_namespace_is_named_not_an_api_404(run_module) -> None:
    c = FakeCluster()
    c.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}})
    result, failed = run_module("isvc_apply", {"definition": definition()}, cluster=c)
    assert failed and result["msg"] == ("Namespace private-ai (definition's metadata.namespace) does not exist: create "
                                        "it first (the serving role applies it), or fix the definition")
    assert c.writes == []
