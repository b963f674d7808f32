# -*- coding: utf-8 -*-
"""kueue_wait's work: the ClusterQueue usage is a bonus that never hides the wait's outcome."""

from __future__ import annotations

from typing import List

from ansible_collections.rhoai.gpuaas.plugins.module_utils.kueue_service import follow
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def test_usage_the_identity_may_not_read_is_a_one_line_warning() -> None:
    cluster = FakeCluster()
    pod = o.pod("m", gated=True, ready=False)
    cluster.add(o.isvc("m", ready=False), pod, o.workload(pod, pending=o.PENDING_4), o.local_queue(), o.cluster_queue())
    cluster.forbid.add(("get", "ClusterQueue"))
    warnings: List[str] = []
    result = follow(cluster, {"isvc": "m", "pod_selector": None, "workload": None, "namespace": o.NS,
                              "state": "pending", "wait": False, "wait_timeout": 5, "cluster_queue": None,
                              "kueue_api_version": "auto"}, warnings.append)
    assert result["reached"] is True and "cluster_queue_usage" not in result
    assert warnings == [
        'Could not read ClusterQueue usage: HTTP 403: clusterqueues.kueue.x-k8s.io "rhoai-main-queue" is forbidden: '
        'User "system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover" cannot get resource "clusterqueues" in API '
        'group "kueue.x-k8s.io" at the cluster scope']
