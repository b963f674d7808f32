"""rhoai.gpuaas.kueue_wait against the testbed: the demo's GPU handover and API server restarts.

Bad input (wrong types, missing objects, unreachable endpoints, ...) is in test_bad_inputs.py.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko
from _poll import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def cq(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str], kueue_flavors: list[str]) -> Iterator[str]:
    with ko.queues(k8s, namespace) as name:
        yield name


def start(run_module: Callable[..., dict], name: str, namespace: str, wait: str = "admitted") -> dict:
    return run_module("isvc_replicas", {"name": name, "namespace": namespace, "state": "started",
                                        "wait_for": wait, "wait_timeout": 120})


def stop(run_module: Callable[..., dict], name: str, namespace: str) -> dict:
    return run_module("isvc_replicas", {"name": name, "namespace": namespace, "state": "stopped",
                                        "wait_timeout": 120})


def demo(k8s: client.ApiClient, run_module: Callable[..., dict], namespace: str) -> None:
    """Baseline of the demo: bf16 (4 GPUs) and int4 (1 GPU) on, devstral (4 GPUs) off."""
    ko.create(k8s, ko.inference_service("mistral-3-bf16", namespace, 4))
    ko.create(k8s, ko.inference_service("mistral-3-int4", namespace, 1))
    ko.create(k8s, ko.inference_service("devstral-2", namespace, 4, stopped=True))
    start(run_module, "mistral-3-bf16", namespace)
    start(run_module, "mistral-3-int4", namespace)


def test_handover(k8s: client.ApiClient, run_module: Callable[..., dict], namespace: str, cq: str) -> None:
    demo(k8s, run_module, namespace)
    baseline = run_module("kueue_wait", {"isvc": "mistral-3-bf16", "namespace": namespace, "timeout": 30})
    (bf16,) = baseline["workloads"]
    assert bf16["state"] == "admitted" and bf16["cluster_queue"] == cq
    assert bf16["flavors"][ko.GPU] == "nvidia-l4-4gpu"
    assert baseline["cluster_queue"] == cq
    assert baseline["cluster_queue_usage"]["nvidia-l4-4gpu"][ko.GPU] == {"used": "4", "nominal": "4"}
    assert baseline["cluster_queue_usage"]["nvidia-l4-1gpu"][ko.GPU] == {"used": "1", "nominal": "1"}

    queued = start(run_module, "devstral-2", namespace, wait="queued")
    assert queued["changed"] is True
    assert [p["gated"] for p in queued["pods"]] == [True]

    pending = run_module("kueue_wait", {"isvc": "devstral-2", "namespace": namespace, "state": "pending",
                                        "timeout": 60})
    (wl,) = pending["workloads"]
    assert wl["state"] == "pending" and wl["cluster_queue"] is None
    assert wl["pending"]["resource"] == ko.GPU and wl["pending"]["more_needed"] == "4"
    assert {"name": "nvidia-l4-4gpu", "reason": "insufficient unused quota for nvidia.com/gpu, 4 more needed"} \
        in wl["pending"]["flavors"]
    assert pending["cluster_queue"] == cq  # found through the LocalQueue: the workload is not admitted

    timeout = run_module("kueue_wait", {"isvc": "devstral-2", "namespace": namespace, "state": "admitted",
                                        "timeout": 3}, expect_fail=True)
    assert "Timed out" in timeout["msg"] and "4 more needed" in timeout["msg"]
    assert timeout["workloads"][0]["state"] == "pending"

    off = stop(run_module, "mistral-3-bf16", namespace)
    assert off["pods"] == [] and off["workloads"] == []
    admitted = run_module("kueue_wait", {"isvc": "devstral-2", "namespace": namespace, "state": "admitted",
                                         "timeout": 60, "cluster_queue": cq})
    (wl,) = admitted["workloads"]
    assert wl["state"] == "admitted" and wl["flavors"][ko.GPU] == "nvidia-l4-4gpu"
    assert admitted["cluster_queue_usage"]["nvidia-l4-4gpu"][ko.GPU]["used"] == "4"


def test_workload_and_selector_targets_and_absent(k8s: client.ApiClient, run_module: Callable[..., dict],
                                                  namespace: str, cq: str, start_module: Callable[..., Any]) -> None:
    ko.create(k8s, ko.inference_service("small", namespace, 1))
    by_isvc = start(run_module, "small", namespace)
    name = by_isvc["workloads"][0]["name"]
    by_name = run_module("kueue_wait", {"workload": name, "namespace": namespace, "api_version": "v1beta1"})
    assert by_name["api_version"] == "kueue.x-k8s.io/v1beta1"
    assert [w["name"] for w in by_name["workloads"]] == [name]
    by_selector = run_module("kueue_wait", {"pod_selector": "serving.kserve.io/inferenceservice=small",
                                            "namespace": namespace}, check=True)
    assert by_selector["changed"] is False and [w["name"] for w in by_selector["workloads"]] == [name]

    waiter = start_module("kueue_wait", {"isvc": "small", "namespace": namespace, "state": "absent", "timeout": 90})
    wait_for("kueue_wait to be waiting", waiter.running, timeout=60)
    stop(run_module, "small", namespace)
    result = waiter.wait()
    assert result["workloads"] == [] and result["pods"] == []


def test_wait_survives_apiserver_restart(k8s: client.ApiClient, run_module: Callable[..., dict], namespace: str,
                                         cq: str, restart_apiserver: Callable[..., Any],
                                         start_module: Callable[..., Any]) -> None:
    demo(k8s, run_module, namespace)
    start(run_module, "devstral-2", namespace, wait="queued")
    waiter = start_module("kueue_wait", {"isvc": "devstral-2", "namespace": namespace, "state": "admitted",
                                         "timeout": 240})
    wait_for("kueue_wait to be watching", waiter.watching, timeout=60)
    outage = restart_apiserver(down_for=8, during=waiter.running)
    outage.join(120)
    assert outage.seen_during is True, "kueue_wait was not waiting any more when the API went down"
    assert waiter.running(), "kueue_wait ended while devstral-2 could not be admitted yet"
    wait_for("API back", lambda: ko.get(k8s, ko.ISVC, "InferenceService", "mistral-3-bf16", namespace), 60)
    stop(run_module, "mistral-3-bf16", namespace)
    (wl,) = waiter.wait()["workloads"]
    assert wl["state"] == "admitted" and wl["flavors"][ko.GPU] == "nvidia-l4-4gpu"
