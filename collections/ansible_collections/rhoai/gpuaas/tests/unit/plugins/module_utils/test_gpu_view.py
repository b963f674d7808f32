# -*- coding: utf-8 -*-
"""The one view of the GPUs: model states, per-flavor usage, rendering, expectations, narrow reads."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import gpu_view
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

MODELS = ("mistral-3-bf16", "mistral-3-int4", "devstral-2")


def view_of(objs, models=MODELS):
    by_kind = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    return gpu_view.build_view(by_kind.get("ClusterQueue", []), by_kind.get("InferenceService", []),
                               by_kind.get("Pod", []), by_kind.get("Workload", []), models)


def states(view):
    return {m["name"]: m["state"] for m in view["models"]}


def test_after_step2_two_models_on_and_one_pending_with_kueues_reason() -> None:
    view = view_of(o.baseline())
    assert states(view) == {"mistral-3-bf16": "ON", "mistral-3-int4": "ON", "devstral-2": "PENDING"}
    dev = gpu_view.find_model(view, "devstral-2")
    assert dev["message"] == o.PENDING_4
    assert dev["pending"]["more_needed"] == "4" and dev["flavor"] is None
    bf16 = gpu_view.find_model(view, "mistral-3-bf16")
    assert (bf16["gpus"], bf16["flavor"], bf16["admitted"]) == (4, "nvidia-l4-4gpu", True)
    assert (view["used"], view["nominal"]) == (5, 5)
    assert [(f["name"], f["used"], f["nominal"], f["models"]) for f in view["flavors"]] == [
        ("nvidia-l4-1gpu", 1, 1, ["mistral-3-int4"]), ("nvidia-l4-4gpu", 4, 4, ["mistral-3-bf16"])]


def test_states_off_absent_starting_failing() -> None:
    objs = [o.cluster_queue(), o.isvc("a", stopped=True), o.isvc("b", ready=False), o.isvc("c", ready=False)]
    b_pod = o.pod("b", ready=False)
    c_pod = o.pod("c", ready=False, waiting="CrashLoopBackOff", restarts=3,
                  last_words="torch.OutOfMemoryError: CUDA out of memory.")
    objs += [b_pod, c_pod, o.workload(b_pod, admitted_to="nvidia-l4-4gpu"), o.workload(c_pod, admitted_to="nvidia-l4-4gpu")]
    view = view_of(objs, ["a", "b", "c", "d"])
    assert states(view) == {"a": "OFF", "b": "STARTING", "c": "FAILING", "d": "ABSENT"}
    failing = gpu_view.find_model(view, "c")
    assert "CrashLoopBackOff (restarts 3)" in failing["message"] and "CUDA out of memory" in failing["message"]


def test_a_gated_pod_without_verdict_is_pending_and_one_crash_is_not_failing_yet() -> None:
    gated = o.pod("m", gated=True, ready=False)
    once = o.pod("n", ready=False, waiting="CrashLoopBackOff", restarts=1)
    view = view_of([o.cluster_queue(), o.isvc("m", ready=False), o.isvc("n", ready=False), gated, once,
                    o.workload(gated), o.workload(once, admitted_to="nvidia-l4-4gpu")], ["m", "n"])
    assert states(view) == {"m": "PENDING", "n": "STARTING"}


def test_workloads_of_other_models_and_terminating_pods_do_not_count() -> None:
    objs = o.baseline()
    stray = o.pod("other")
    objs += [o.isvc("other"), stray, o.workload(stray, pending=o.PENDING_4)]
    view = view_of(objs)
    assert states(view)["mistral-3-bf16"] == "ON" and len(view["models"]) == 3


def test_usage_comes_from_the_cluster_queue_status_not_from_models() -> None:
    objs = o.baseline()
    objs[0] = o.cluster_queue(used={"nvidia-l4-4gpu": 2})
    view = view_of(objs)
    assert (view["used"], view["nominal"]) == (2, 5)


def test_render_prints_bars_totals_and_reasons() -> None:
    lines = gpu_view.render(view_of(o.baseline()), "Step 2")
    assert lines[0] == "Step 2"
    assert lines[1] == "ClusterQueue rhoai-main-queue (live usage of nvidia.com/gpu)"
    assert lines[2].split() == ["nvidia-l4-1gpu", "█", "1/1", "mistral-3-int4"]
    assert lines[3].split() == ["nvidia-l4-4gpu", "████", "4/4", "mistral-3-bf16"]
    assert "GPUs in use: 5/5" in lines[4]
    assert lines[-1].split()[:4] == ["devstral-2", "4", "GPU", "PENDING"] and o.PENDING_4 in lines[-1]


def test_explain_pending_does_the_arithmetic() -> None:
    lines = gpu_view.explain_pending(view_of(o.baseline()), "devstral-2")
    assert lines[0] == "devstral-2 is PENDING. Kueue says: " + o.PENDING_4
    assert lines[1] == "GPUs: 4 + 1 + 4 = 9 > 5 (mistral-3-bf16 + mistral-3-int4 + devstral-2 vs. the quota)"
    assert lines[2].endswith("devstral-2 needs 4 in one flavor (Kueue: 4 more needed for nvidia.com/gpu)")


@pytest.mark.parametrize("expect, hopeless", [
    ({"devstral-2": "ON"}, None),
    ({"mistral-3-bf16": "OFF"}, "only a start or stop changes that"),
    ({"nope": "ON"}, "nope is ABSENT, expected ON"),
])
def test_expectations_unmet_and_hopeless(expect, hopeless) -> None:
    view = view_of(o.baseline())
    assert gpu_view.unmet(view, expect)
    why = gpu_view.hopeless(view, expect)
    assert (why is None) if hopeless is None else (hopeless in why)


def test_a_pending_model_kueue_can_never_admit_is_hopeless() -> None:
    objs = o.baseline()
    dev_wl = objs[-1]
    dev_wl["status"]["conditions"][0]["message"] = "LocalQueue default doesn't exist"
    assert "can never be admitted" in gpu_view.hopeless(view_of(objs), {"devstral-2": "ON"})


def params(**kw):
    base = {"namespace": o.NS, "models": None, "cluster_queues": None, "gpu_resource": o.GPU, "title": None,
            "explain": None, "expect": None, "wait": True, "wait_timeout": 5, "kueue_api_version": "auto"}
    base.update(kw)
    return base


def test_board_reads_narrowly_and_derives_the_cluster_queue() -> None:
    cluster = FakeCluster()
    cluster.add(*o.baseline())
    for i in range(50):  # unrelated Workloads in the namespace are never listed
        cluster.add({"apiVersion": o.KUEUE, "kind": "Workload", "metadata": {"name": "job-%d" % i, "namespace": o.NS}})
    seen = []
    real_list = cluster.list

    def spy(api_version, kind, namespace=None, label_selector=None, field_selector=None):
        items, rv = real_list(api_version, kind, namespace, label_selector, field_selector)
        seen.append((kind, label_selector, len(items)))
        return items, rv
    cluster.list = spy
    result = gpu_view.board(cluster, params(explain="devstral-2"))
    assert ("Workload", "kueue.x-k8s.io/job-uid in (uid-devstral-2-predictor-abc12,uid-mistral-3-bf16-predictor-abc12,"
            "uid-mistral-3-int4-predictor-abc12)", 3) in seen
    assert [q["name"] for q in result["cluster_queues"]] == ["rhoai-main-queue"]
    assert result["board"][0].startswith("ClusterQueue rhoai-main-queue")
    assert result["explanation"][1].startswith("GPUs: 4 + 1 + 4 = 9 > 5")


def test_board_fails_at_once_on_a_hopeless_expectation_and_names_it() -> None:
    cluster = FakeCluster()
    cluster.add(*o.baseline())
    with pytest.raises(GpuaasError, match="mistral-3-bf16 is ON, expected OFF") as err:
        gpu_view.board(cluster, params(expect={"mistral-3-bf16": "off"}))
    assert err.value.result["board"]


def test_board_rejects_an_unknown_state_before_reading() -> None:
    with pytest.raises(GpuaasError, match="expect: RUNNING is not a model state; use one of ON, STARTING"):
        gpu_view.board(FakeCluster(), params(expect={"x": "running"}))


def test_board_waits_for_an_expectation_until_the_cluster_meets_it() -> None:
    cluster = FakeCluster()
    objs = o.baseline()
    cluster.add(*objs)
    dev_pod = copy.deepcopy(objs[7])

    def admit_later() -> None:
        admitted = o.pod("devstral-2")
        cluster.update(admitted)
        cluster.update(o.workload(admitted, admitted_to="nvidia-l4-4gpu"))
        cluster.update(o.isvc("devstral-2"))
    import threading
    timer = threading.Timer(0.3, admit_later)
    timer.start()
    result = gpu_view.board(cluster, params(expect={"devstral-2": "ON"}, wait_timeout=10))
    timer.join()
    assert gpu_view.find_model(result, "devstral-2")["state"] == "ON"
    assert dev_pod["metadata"]["name"] == "devstral-2-predictor-abc12"


def test_board_with_a_missing_cluster_queue_says_what_to_do() -> None:
    cluster = FakeCluster()
    cluster.add(o.isvc("m"))
    with pytest.raises(GpuaasError, match="ClusterQueue nope does not exist; deploy the quota first"):
        gpu_view.board(cluster, params(cluster_queues=["nope"]))


def test_follow_reports_every_change_from_the_watches() -> None:
    import threading
    cluster = FakeCluster()
    cluster.add(*o.baseline())
    seen = []
    threading.Timer(0.3, lambda: cluster.update(o.isvc("devstral-2", stopped=True))).start()
    last = gpu_view.follow(cluster, o.KUEUE, o.NS, ["rhoai-main-queue"], MODELS,
                           lambda v: seen.append(gpu_view.find_model(v, "devstral-2")["state"]), seconds=1.5)
    assert seen[0] == "PENDING" and seen[-1] == "OFF" and gpu_view.find_model(last, "devstral-2")["state"] == "OFF"


def test_follow_stops_as_soon_as_until_holds() -> None:
    import threading
    cluster = FakeCluster()
    cluster.add(*o.baseline())
    seen = []

    def on_change(view) -> None:
        seen.append(states(view))
        if states(view)["devstral-2"] == "OFF":  # a change the watches would see, were they still open
            cluster.update(o.isvc("mistral-3-bf16", stopped=True))
    threading.Timer(0.3, lambda: cluster.update(o.isvc("devstral-2", stopped=True))).start()
    last = gpu_view.follow(cluster, o.KUEUE, o.NS, ["rhoai-main-queue"], MODELS, on_change, seconds=3,
                           until=lambda v: gpu_view.find_model(v, "devstral-2")["state"] == "OFF")
    assert [s["devstral-2"] for s in seen] == ["PENDING", "OFF"]
    assert states(last) == {"mistral-3-bf16": "ON", "mistral-3-int4": "ON", "devstral-2": "OFF"}


def with_devstral(isvc_kw, pod_kw=None, workload_kw=None):
    """The baseline's other two models, and devstral-2 as given (no pod when ``pod_kw`` is None)."""
    objs = [obj for obj in o.baseline() if "devstral-2" not in obj["metadata"]["name"]]
    objs.append(o.isvc("devstral-2", **isvc_kw))
    if pod_kw is not None:
        dev_pod = o.pod("devstral-2", **pod_kw)
        objs += [dev_pod, o.workload(dev_pod, **(workload_kw or {}))]
    return objs


@pytest.mark.parametrize("isvc_kw, pod_kw, workload_kw, settled", [
    ({"ready": False}, {"gated": True, "ready": False}, {"pending": o.PENDING_4}, True),   # PENDING, Kueue's verdict
    ({"ready": False}, {"gated": True, "ready": False}, {}, False),                        # gated, no verdict yet
    ({"stopped": True}, {"terminating": True}, {"admitted_to": "nvidia-l4-4gpu"}, False),  # OFF, pod still there
    ({"stopped": True}, None, None, True),                                                 # OFF, pods gone
    ({"ready": False}, {"ready": False}, {"admitted_to": "nvidia-l4-4gpu"}, False),        # STARTING
    ({}, {}, {"admitted_to": "nvidia-l4-4gpu"}, True),                                     # ON
])
def test_settled_tells_where_a_switch_leads(isvc_kw, pod_kw, workload_kw, settled) -> None:
    assert gpu_view.settled(view_of(with_devstral(isvc_kw, pod_kw, workload_kw)), "devstral-2") is settled


def test_settled_for_a_model_that_is_not_there() -> None:
    assert gpu_view.settled(view_of(o.baseline()), "nope") is True


@pytest.mark.parametrize("stopped, on, annotation, was_on, now_on", [
    (True, None, "false", False, True),    # flip: off -> on
    (False, None, "true", True, False),    # flip: on -> off
    (True, True, "false", False, True),
    (False, False, "true", True, False),
])
def test_switch_writes_only_the_stop_annotation(stopped, on, annotation, was_on, now_on) -> None:
    cluster = FakeCluster()
    cluster.add(o.isvc("m", stopped=stopped))
    before = cluster.find(o.ISVC, "InferenceService", "m", o.NS)
    result = gpu_view.switch(cluster, o.NS, "m", on)
    assert result == {"name": "m", "namespace": o.NS, "was_on": was_on, "on": now_on, "changed": True}
    assert [w["body"] for w in cluster.written("patch", dry_run=False)] == [
        {"metadata": {"annotations": {"serving.kserve.io/stop": annotation}}}]
    after = cluster.find(o.ISVC, "InferenceService", "m", o.NS)
    assert after["spec"] == before["spec"]


def test_switch_to_the_state_it_is_in_writes_nothing() -> None:
    cluster = FakeCluster()
    cluster.add(o.isvc("m", stopped=True))
    assert gpu_view.switch(cluster, o.NS, "m", on=False)["changed"] is False
    assert cluster.writes == []


def test_switch_dry_run_asks_the_server_and_stores_nothing() -> None:
    cluster = FakeCluster()
    cluster.add(o.isvc("m"))
    assert gpu_view.switch(cluster, o.NS, "m", on=False, dry_run=True)["changed"] is True
    assert [w["dry_run"] for w in cluster.writes] == [True]
    assert cluster.find(o.ISVC, "InferenceService", "m", o.NS)["metadata"]["annotations"]["serving.kserve.io/stop"] == "false"


def test_switch_of_an_unknown_model_names_it_and_writes_nothing() -> None:
    cluster = FakeCluster()
    with pytest.raises(GpuaasError, match="InferenceService nope does not exist in namespace private-ai"):
        gpu_view.switch(cluster, o.NS, "nope")
    assert cluster.writes == []
