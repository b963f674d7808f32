# -*- coding: utf-8 -*-
"""The LocalQueue the RHOAI way: DSC defaults first, replace only an unused queue, never fail on the immutable field."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import local_queue as lq
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

DSC = "datasciencecluster.opendatahub.io/v2"


def params(**kw: Any) -> Dict[str, Any]:
    return dict({"namespace": o.NS, "name": "default", "cluster_queue": "rhoai-main-queue", "replace": True,
                 "set_dsc_defaults": True, "kueue_api_version": "auto"}, **kw)


def rhoai(state: str = "Unmanaged", **kueue: str) -> FakeCluster:
    c = FakeCluster(served={"kueue.x-k8s.io": ["v1beta2", "v1beta1"], "datasciencecluster.opendatahub.io": ["v1", "v2"]})
    c.add({"apiVersion": DSC, "kind": "DataScienceCluster", "metadata": {"name": "default-dsc"},
           "spec": {"components": {"kueue": dict({"managementState": state}, **kueue)}}},
          o.cluster_queue(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.NS}})
    return c


def operator_recreates(c: FakeCluster) -> None:
    """The operator puts a deleted LocalQueue back at once, for the DSC's current default ClusterQueue."""
    def hook(cluster: FakeCluster, verb: str, obj: Dict[str, Any]) -> None:
        if verb == "delete" and obj["kind"] == "LocalQueue":
            dsc = cluster.find(DSC, "DataScienceCluster", "default-dsc")
            cq = dsc["spec"]["components"]["kueue"].get("defaultClusterQueueName", "default")
            cluster.add(o.local_queue(obj["metadata"]["name"], cq=cq))
    c.on_write.append(hook)


def test_the_operators_queue_is_replaced_after_the_dsc_defaults_are_set() -> None:
    c = rhoai()
    c.add(o.local_queue(cq="default"))
    operator_recreates(c)
    result = lq.ensure(c, params(), False, True, lambda m: None)
    assert result["changed"] is True
    assert c.find(DSC, "DataScienceCluster", "default-dsc")["spec"]["components"]["kueue"] == {
        "managementState": "Unmanaged", "defaultClusterQueueName": "rhoai-main-queue"}  # the LocalQueue name was already right
    assert c.find(o.KUEUE, "LocalQueue", "default", o.NS)["spec"]["clusterQueue"] == "rhoai-main-queue"
    assert result["actions"] == [
        "DataScienceCluster default-dsc: defaultClusterQueueName default -> rhoai-main-queue",
        "LocalQueue private-ai/default replaced: it pointed at ClusterQueue default (the operator's default), "
        "now at rhoai-main-queue"]
    assert result["diff"]["before"]["local_queue"]["cluster_queue"] == "default"
    # the operator made it anew for the new default: nothing left to create
    assert [w["verb"] for w in c.writes] == ["patch", "delete"]


def test_second_run_changes_nothing() -> None:
    c = rhoai(defaultClusterQueueName="rhoai-main-queue", defaultLocalQueueName="default")
    c.add(o.local_queue())
    result = lq.ensure(c, params(), False, True, lambda m: None)
    assert result == {"changed": False, "actions": [], "dsc": {"name": "default-dsc", "management_state": "Unmanaged"},
                      "local_queue": {"name": "default", "cluster_queue": "rhoai-main-queue"}}
    assert c.writes == []


def test_a_queue_in_use_is_never_deleted() -> None:
    c = rhoai()
    c.add(o.local_queue(cq="default"))
    wl = o.workload(o.pod("m"), admitted_to="default-flavor")
    c.add(wl)
    with pytest.raises(GpuaasError, match=r"cannot be replaced while Workloads queue through it \(pod-m-predictor-abc12-1a2b3\)"):
        lq.ensure(c, params(), False, False, lambda m: None)
    assert c.find(o.KUEUE, "LocalQueue", "default", o.NS) is not None and not c.written("delete")
    assert not c.written("patch"), "the DataScienceCluster's defaults were changed although the task failed"


def test_replace_false_refuses_with_the_fix() -> None:
    c = rhoai()
    c.add(o.local_queue(cq="default"))
    with pytest.raises(GpuaasError, match="Allow its replacement with replace=true"):
        lq.ensure(c, params(replace=False), False, False, lambda m: None)
    assert c.writes == []


def test_check_mode_dry_runs_every_write() -> None:
    c = rhoai()
    c.add(o.local_queue(cq="default"))
    result = lq.ensure(c, params(), True, False, lambda m: None)
    assert result["changed"] is True and all(w["dry_run"] for w in c.writes)
    assert c.find(o.KUEUE, "LocalQueue", "default", o.NS)["spec"]["clusterQueue"] == "default"


def test_without_rhoai_the_queue_is_created() -> None:
    c = FakeCluster()
    c.add(o.cluster_queue())
    result = lq.ensure(c, params(), False, False, lambda m: None)
    assert result["actions"] == ["LocalQueue private-ai/default created for ClusterQueue rhoai-main-queue"]
    assert "dsc" not in result


def test_a_removed_kueue_is_left_alone_with_a_warning() -> None:
    c = rhoai(state="Removed")
    warnings = []
    lq.ensure(c, params(), False, False, warnings.append)
    assert not c.written("patch") and "expects Unmanaged" in warnings[0]


def test_a_queue_the_operator_makes_meanwhile_for_our_cluster_queue_is_fine() -> None:
    c = rhoai(defaultClusterQueueName="rhoai-main-queue")
    real_create = c.create

    def racing(body, dry_run=False, request_timeout=None):
        c.add(o.local_queue())  # the operator was faster
        return real_create(body, dry_run)
    c.create = racing
    result = lq.ensure(c, params(), False, False, lambda m: None)
    assert result["local_queue"]["cluster_queue"] == "rhoai-main-queue"


@pytest.mark.parametrize("given, message", [
    ({"cluster_queue": "rhoai-main-queu"}, "ClusterQueue rhoai-main-queu does not exist: create it first (the serving "
                                           "role applies it before the LocalQueue), or fix cluster_queue"),
    ({"namespace": "private-aj"}, "Namespace private-aj does not exist: create it first (the serving role applies it), "
                                  "or fix namespace"),
])
def test_a_missing_cluster_queue_or_namespace_fails_before_the_dsc_is_touched(given: Dict[str, str], message: str) -> None:
    c = rhoai()
    with pytest.raises(GpuaasError) as err:
        lq.ensure(c, params(**given), False, False, lambda m: None)
    assert err.value.msg == message
    assert [w for w in c.writes if not w["dry_run"]] == []
