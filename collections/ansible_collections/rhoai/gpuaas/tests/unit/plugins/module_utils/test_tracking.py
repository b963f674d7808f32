# -*- coding: utf-8 -*-
"""One model followed through a wait: goals, dead ends and what is reported."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import tracking
from ansible_collections.rhoai.gpuaas.plugins.module_utils.tracking import Tracker
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o


def state(isvc=None, pods=(), workloads=(), deployment=None, cqs=None):
    out = {"isvc": [isvc] if isvc else [], "pods": list(pods), "workloads": list(workloads),
           "deployment": [deployment] if deployment else []}
    if cqs is not None:
        out["clusterqueues"] = cqs
    return out


def test_stopped_needs_pods_and_workloads_gone_even_a_workload_that_outlives_its_pod() -> None:
    t = Tracker.for_isvc("m")
    p = o.pod("m")
    wl = o.workload(p, admitted_to="nvidia-l4-4gpu")
    assert not t.reached("stopped", state(o.isvc("m", stopped=True), [p], [wl]))
    # the pod is gone; its Workload still holds quota for a moment: tied by the remembered uid
    assert not t.reached("stopped", state(o.isvc("m", stopped=True), [], [wl]))
    assert t.reached("stopped", state(o.isvc("m", stopped=True), [], []))


def test_a_workload_of_a_pod_never_seen_is_tied_by_the_pod_name_prefix() -> None:
    wl = o.workload(o.pod("m", suffix="zzz99"), admitted_to="nvidia-l4-4gpu")
    other = o.workload(o.pod("mm"), admitted_to="nvidia-l4-4gpu")
    t = Tracker.for_isvc("m")
    assert not t.reached("stopped", state(o.isvc("m"), [], [wl]))
    assert Tracker.for_isvc("m").reached("stopped", state(o.isvc("m"), [], [other]))


@pytest.mark.parametrize("goal, pods_wls, reached", [
    ("queued", "pod-no-wl", False),
    ("queued", "pending", True),
    ("pending", "unassessed", False),
    ("pending", "pending", True),
    ("admitted", "pending", False),
    ("admitted", "admitted", True),
])
def test_goals_per_pod(goal, pods_wls, reached) -> None:
    p = o.pod("m", gated=pods_wls != "admitted", ready=pods_wls == "admitted")
    wls = {"pod-no-wl": [], "unassessed": [o.workload(p)], "pending": [o.workload(p, pending=o.PENDING_4)],
           "admitted": [o.workload(p, admitted_to="nvidia-l4-4gpu")]}[pods_wls]
    assert Tracker.for_isvc("m").reached(goal, state(o.isvc("m", ready=False), [p], wls)) is reached


def test_fewer_pods_than_expected_is_not_admitted() -> None:
    p = o.pod("m")
    t = Tracker.for_isvc("m", expected=2)
    assert not t.reached("admitted", state(o.isvc("m"), [p], [o.workload(p, admitted_to="f")]))


def test_admitted_waits_for_the_cluster_queue_usage_to_count_it() -> None:
    p = o.pod("m")
    wl = o.workload(p, admitted_to="nvidia-l4-4gpu")
    t = Tracker.for_isvc("m")
    assert not t.reached("admitted", state(o.isvc("m"), [p], [wl], cqs=[o.cluster_queue()]))
    assert t.reached("admitted", state(o.isvc("m"), [p], [wl], cqs=[o.cluster_queue(used={"nvidia-l4-4gpu": 4})]))


def test_ready_needs_the_isvc_ready_not_stopped_and_pods_ready() -> None:
    p = o.pod("m")
    t = Tracker.for_isvc("m")
    assert t.reached("ready", state(o.isvc("m"), [p]))
    assert not t.reached("ready", state(o.isvc("m", ready=False), [p]))
    assert not t.reached("ready", state(o.isvc("m"), [o.pod("m", ready=False)]))


@pytest.mark.parametrize("goal", ["pending", "admitted", "ready", "queued"])
def test_a_stopped_model_is_a_dead_end_for_every_goal_but_stopped(goal) -> None:
    why = Tracker.for_isvc("m").dead_end(goal, state(o.isvc("m", stopped=True)))
    assert "InferenceService m is stopped" in why and "start it first" in why
    assert Tracker.for_isvc("m").dead_end("stopped", state(o.isvc("m", stopped=True))) is None


def test_deleted_isvc_refused_pods_and_impossible_workloads_are_dead_ends() -> None:
    t = Tracker.for_isvc("m")
    assert "does not exist" in t.dead_end("admitted", state(None))
    refused = {"metadata": {"name": "m-predictor"}, "status": {"conditions": [
        {"type": "ReplicaFailure", "status": "True", "message": 'pods "m-predictor-1" is forbidden: exceeded quota'}]}}
    assert "cannot create pods: pods \"m-predictor-1\" is forbidden" in t.dead_end("admitted", state(o.isvc("m"), deployment=refused))
    p = o.pod("m", gated=True)
    bad = o.workload(p, pending="couldn't assign flavors to pod set main: resource ephemeral-storage unavailable in ClusterQueue")
    assert "cannot be admitted" in t.dead_end("admitted", state(o.isvc("m"), [p], [bad]))


def test_a_crash_loop_is_a_dead_end_for_ready_only_after_the_second_restart() -> None:
    t = Tracker.for_isvc("m")
    words = "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens"
    once = o.pod("m", ready=False, waiting="CrashLoopBackOff", restarts=1, last_words=words)
    twice = o.pod("m", ready=False, waiting="CrashLoopBackOff", restarts=2, last_words=words)
    assert t.dead_end("ready", state(o.isvc("m", ready=False), [once])) is None
    why = t.dead_end("ready", state(o.isvc("m", ready=False), [twice]))
    assert "cannot become Ready" in why and "CrashLoopBackOff (restarts 2)" in why and words in why
    assert t.dead_end("admitted", state(o.isvc("m", ready=False), [twice])) is None


def test_hopeless_waiting_reasons_and_the_tail_of_long_last_words() -> None:
    p = o.pod("m", ready=False, waiting="ImagePullBackOff", restarts=0)
    assert tracking.container_trouble(p) == "pod m-predictor-abc12 container kserve-container: ImagePullBackOff (restarts 0)"
    long = o.pod("m", ready=False, waiting="CrashLoopBackOff", restarts=5, last_words="x" * 1000 + " THE END")
    assert tracking.container_trouble(long).endswith("x THE END") and "..." in tracking.container_trouble(long)


def test_summary_reports_pods_workloads_and_kueues_reason() -> None:
    p = o.pod("m", gated=True, ready=False)
    summary = Tracker.for_isvc("m").summary(state(o.isvc("m", ready=False), [p], [o.workload(p, pending=o.PENDING_4)]))
    assert summary["pending_reason"] == o.PENDING_4 and summary["pending"]["resource"] == "nvidia.com/gpu"
    assert summary["pods"][0]["gated"] is True and summary["isvc"]["name"] == "m"


def test_a_workload_target_follows_no_pods() -> None:
    wl = o.workload(o.pod("x"), admitted_to="f")
    t = Tracker("w", follows_pods=False)
    assert t.reached("admitted", {"workloads": [wl]})
    assert "pods" not in t.summary({"workloads": [wl]})
