# -*- coding: utf-8 -*-
"""The handover as one operation: preflight, stop, one wait, restore, convergence, the Lease."""

from __future__ import annotations

import threading
from typing import Any, Dict

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import handover as ho
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.gpu_view import build_view
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeApiError, FakeCluster

OUT, INC = "mistral-3-bf16", "devstral-2"


def params(**kw: Any) -> Dict[str, Any]:
    base = {"namespace": o.NS, "outgoing": OUT, "incoming": INC, "resident": ["mistral-3-int4"],
            "cluster_queues": ["rhoai-main-queue"], "wait_for": "admitted", "wait_timeout": 5, "ready_timeout": 5,
            "preflight": True, "restore": True, "restore_timeout": 0, "lock": "", "lock_identity": None,
            "lock_wait": 0, "gpu_resource": o.GPU, "kueue_api_version": "auto"}
    base.update(kw)
    return base


def kserve_and_kueue(cluster: FakeCluster, admits: bool = True) -> None:
    """Play KServe (a stopped model loses its pod) and Kueue (its Workload goes, the pending one is admitted)."""
    def hook(c: FakeCluster, verb: str, obj: Dict[str, Any]) -> None:
        if obj["kind"] != "InferenceService":
            return
        name = obj["metadata"]["name"]
        stopped = obj["metadata"]["annotations"].get("serving.kserve.io/stop") == "true"
        pod_name = name + "-predictor-abc12"
        wl_name = "pod-{0}-1a2b3".format(pod_name)
        if stopped:
            c.remove("v1", "Pod", pod_name, o.NS)
            c.remove(o.KUEUE, "Workload", wl_name, o.NS)
            if admits and name == OUT:
                dev = o.pod(INC)
                c.update(dev)
                c.update(o.workload(dev, admitted_to="nvidia-l4-4gpu"))
                c.update(o.cluster_queue(used={"nvidia-l4-4gpu": 4, "nvidia-l4-1gpu": 1}))
                c.update(o.isvc(INC))
        elif name == OUT and c.find("v1", "Pod", pod_name, o.NS) is None:
            c.update(o.pod(OUT, gated=True, ready=False))
    cluster.on_write.append(hook)


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add(*o.baseline())
    return c


def view(cluster: FakeCluster) -> Dict[str, Any]:
    return build_view(*[cluster.list(a, k, n)[0] for a, k, n in (
        (o.KUEUE, "ClusterQueue", None), (o.ISVC, "InferenceService", o.NS), ("v1", "Pod", o.NS), (o.KUEUE, "Workload", o.NS))],
        [OUT, "mistral-3-int4", INC])


def stop_of(cluster: FakeCluster, name: str) -> str:
    return cluster.find(o.ISVC, "InferenceService", name, o.NS)["metadata"]["annotations"]["serving.kserve.io/stop"]


# ---------------------------------------------------------------- preflight


def test_quota_checks_pass_after_step2(cluster: FakeCluster) -> None:
    checks = ho.quota_checks(view(cluster), OUT, INC)
    assert [(c["check"], c["ok"]) for c in checks] == [
        ("outgoing holds GPUs", True), ("incoming is queued", True), ("pending for quota alone", True),
        ("freed GPUs suffice", True)]
    assert checks[3]["message"] == "4 GPU free in nvidia-l4-4gpu after the stop, devstral-2 needs 4"


def test_quota_checks_refuse_an_incoming_model_that_is_off(cluster: FakeCluster) -> None:
    cluster.update(o.isvc(INC, stopped=True))
    checks = ho.quota_checks(view(cluster), OUT, INC)
    assert checks[1]["ok"] is False and "turn it on first (step 2)" in checks[1]["message"]


def test_quota_checks_refuse_a_reason_that_is_not_quota_in_the_freed_flavor(cluster: FakeCluster) -> None:
    dev = cluster.find("v1", "Pod", INC + "-predictor-abc12", o.NS)
    cluster.update(o.workload(dev, pending="couldn't assign flavors to pod set main: insufficient quota for "
                              "nvidia.com/gpu in flavor nvidia-l4-4gpu, request > maximum capacity (5 > 4)"))
    checks = ho.quota_checks(view(cluster), OUT, INC)
    assert checks[2]["ok"] is False and "names no shortage of unused quota in nvidia-l4-4gpu" in checks[2]["message"]


def test_quota_checks_refuse_when_the_freed_gpus_do_not_suffice(cluster: FakeCluster) -> None:
    cluster.update(o.isvc(INC, gpus=6, ready=False))
    cluster.update(o.pod(INC, gpus=6, gated=True, ready=False))  # the pod Kueue weighs asks for 6
    checks = ho.quota_checks(view(cluster), OUT, INC)
    assert checks[3]["ok"] is False
    assert checks[3]["message"] == ("stopping mistral-3-bf16 leaves 4 GPU free in nvidia-l4-4gpu (nominal 4, used 4, "
                                    "mistral-3-bf16 holds 4); devstral-2 needs 6")


def test_a_refused_preflight_changes_nothing_and_says_which_check(cluster: FakeCluster) -> None:
    cluster.update(o.isvc(INC, stopped=True))
    with pytest.raises(ho.HandoverError, match=r"refused before any change \(incoming is queued\)") as err:
        ho.hand_over(cluster, params(), check_mode=False)
    assert cluster.written(dry_run=False) == [] and stop_of(cluster, OUT) == "false"
    assert err.value.result["board"][0] == "Step 3 refused, nothing changed"


def test_kueue_not_answering_the_probe_refuses_the_handover(cluster: FakeCluster) -> None:
    cluster.refuse[("Workload", "*")] = "Internal error occurred: failed calling webhook: connection refused"
    with pytest.raises(ho.HandoverError, match=r"\(Kueue is acting\): Kueue refused a dry-run Workload"):
        ho.hand_over(cluster, params(), check_mode=False)
    assert stop_of(cluster, OUT) == "false"


def test_an_identity_that_may_not_create_workloads_is_told_so_not_that_kueue_refused(cluster: FakeCluster) -> None:
    """The probe is a dry-run create, authorised like a real one: RBAC answers before Kueue's webhook is asked."""
    cluster.forbid.add(("create", "Workload"))
    with pytest.raises(ho.HandoverError) as err:
        ho.hand_over(cluster, params(), check_mode=False)
    assert str(err.value) == (
        "Handover refused before any change (Kueue is acting): this identity may not ask Kueue: the probe is a "
        "dry-run create of a Workload in private-ai, authorised like a real one (grant create on "
        "workloads.kueue.x-k8s.io; nothing is stored): HTTP 403: workloads.kueue.x-k8s.io is forbidden: User "
        '"system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover" cannot create resource "workloads" in API group '
        '"kueue.x-k8s.io" in the namespace "private-ai"')
    assert cluster.written(dry_run=False) == [] and stop_of(cluster, OUT) == "false"


def test_a_board_the_identity_may_not_read_is_one_line_in_the_result(cluster: FakeCluster) -> None:
    handover = ho.Handover(cluster, params(), o.KUEUE, check_mode=False)
    cluster.forbid.add(("get", "ClusterQueue"))
    handover.report("Step 3 FAILED")
    assert handover.result["board"] == ["Step 3 FAILED", (
        '  (board unavailable: HTTP 403: clusterqueues.kueue.x-k8s.io "rhoai-main-queue" is forbidden: User '
        '"system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover" cannot get resource "clusterqueues" in API group '
        '"kueue.x-k8s.io" at the cluster scope)')]


def test_the_probe_is_a_dry_run_of_a_valid_workload(cluster: FakeCluster) -> None:
    assert ho.probe_kueue(cluster, o.KUEUE, o.NS, "default") is None
    probe = cluster.written("create")[0]
    assert probe["dry_run"] is True and probe["body"]["spec"]["queueName"] == "default"
    assert cluster.list(o.KUEUE, "Workload", o.NS)[0] and not any(
        w["metadata"]["name"].startswith("gpuaas-probe-") for w in cluster.list(o.KUEUE, "Workload", o.NS)[0])


def test_a_timeout_of_the_probe_reads_as_kueue_not_acting(cluster: FakeCluster) -> None:
    def frozen(*a: Any, **kw: Any) -> None:
        raise TimeoutError("read timed out")
    cluster.create = frozen
    assert "Kueue did not answer a dry-run Workload within 5s (TimeoutError)" in ho.probe_kueue(cluster, o.KUEUE, o.NS, "q")


# ---------------------------------------------------------------- the step


def test_handover_stops_outgoing_and_returns_once_incoming_is_admitted(cluster: FakeCluster) -> None:
    kserve_and_kueue(cluster)
    result = ho.hand_over(cluster, params(), check_mode=False)
    assert result["changed"] is True and stop_of(cluster, OUT) == "true"
    assert result["incoming"]["state"] == "ON" and result["outgoing"]["state"] == "OFF"
    timeline = result["timeline"]
    assert timeline["stop_written"] == 0.0
    assert timeline["stop_written"] <= timeline["outgoing_released"] and timeline["incoming_admitted"] <= timeline["usage_counted"]
    assert result["board"][0] == "Step 3: mistral-3-bf16 off, devstral-2 on"
    assert [c["ok"] for c in result["preflight"]] == [True] * 5


def test_check_mode_runs_the_preflight_and_dry_runs_the_stop(cluster: FakeCluster) -> None:
    result = ho.hand_over(cluster, params(), check_mode=True)
    assert result["changed"] is True and stop_of(cluster, OUT) == "false"
    assert [(w["verb"], w["kind"], w["dry_run"]) for w in cluster.writes] == [
        ("create", "Workload", True), ("patch", "InferenceService", True)]


def test_a_second_run_changes_nothing(cluster: FakeCluster) -> None:
    kserve_and_kueue(cluster)
    ho.hand_over(cluster, params(), check_mode=False)
    writes = len(cluster.written(dry_run=False))
    again = ho.hand_over(cluster, params(), check_mode=False)
    assert again["changed"] is False and again["already_done"] is True
    assert len(cluster.written(dry_run=False)) == writes


def test_an_interrupted_run_resumes_the_wait_without_stopping_again(cluster: FakeCluster) -> None:
    cluster.update(o.isvc(OUT, stopped=True))
    cluster.remove("v1", "Pod", OUT + "-predictor-abc12", o.NS)
    cluster.remove(o.KUEUE, "Workload", "pod-{0}-predictor-abc12-1a2b3".format(OUT), o.NS)

    def kueue_admits() -> None:
        dev = o.pod(INC)
        cluster.update(dev)
        cluster.update(o.workload(dev, admitted_to="nvidia-l4-4gpu"))
        cluster.update(o.cluster_queue(used={"nvidia-l4-4gpu": 4, "nvidia-l4-1gpu": 1}))
    threading.Timer(0.2, kueue_admits).start()
    result = ho.hand_over(cluster, params(), check_mode=False)
    assert cluster.written(dry_run=False) == [] and result["changed"] is False
    assert result["timeline"]["incoming_admitted"] > 0


def test_when_kueue_does_not_admit_outgoing_comes_back_first_and_incoming_goes_off(cluster: FakeCluster) -> None:
    kserve_and_kueue(cluster, admits=False)
    with pytest.raises(ho.HandoverError) as err:
        ho.hand_over(cluster, params(wait_timeout=1), check_mode=False)
    assert "devstral-2 was not admitted in time, so mistral-3-bf16 was turned back on and devstral-2 off" in err.value.msg
    restored = err.value.result["restored"]
    assert [(s["model"], s["action"], s["ok"]) for s in restored["steps"]] == [(OUT, "start", True), (INC, "stop", True)]
    assert stop_of(cluster, OUT) == "false" and stop_of(cluster, INC) == "true"
    patches = [(w["name"], w["body"]["metadata"]["annotations"]["serving.kserve.io/stop"])
               for w in cluster.written("patch", dry_run=False)]
    assert patches == [(OUT, "true"), (OUT, "false"), (INC, "true")]
    assert err.value.result["board"][0] == "Step 3 FAILED, mistral-3-bf16 turned back on"


def test_every_restore_step_is_attempted_even_when_the_first_fails(cluster: FakeCluster) -> None:
    kserve_and_kueue(cluster, admits=False)
    real_patch = cluster.patch
    calls = []

    def flaky(api_version, kind, name, namespace, body, content_type="application/merge-patch+json", dry_run=False):
        calls.append(name)
        if len(calls) == 2:
            raise FakeApiError(503, "the server is currently unable to handle the request")
        return real_patch(api_version, kind, name, namespace, body, content_type, dry_run)
    cluster.patch = flaky
    with pytest.raises(ho.HandoverError) as err:
        ho.hand_over(cluster, params(wait_timeout=1), check_mode=False)
    steps = err.value.result["restored"]["steps"]
    assert steps[0]["ok"] is False and "HTTP 503" in steps[0]["error"] and steps[1]["ok"] is True
    assert calls == [OUT, OUT, INC]


def test_restore_false_leaves_things_as_they_are(cluster: FakeCluster) -> None:
    kserve_and_kueue(cluster, admits=False)
    with pytest.raises(ho.HandoverError, match="nothing was restored"):
        ho.hand_over(cluster, params(wait_timeout=1, restore=False), check_mode=False)
    assert stop_of(cluster, OUT) == "true"


def test_a_crash_looping_incoming_model_fails_ready_at_once_and_is_restored(cluster: FakeCluster) -> None:
    def crash(c: FakeCluster, verb: str, obj: Dict[str, Any]) -> None:
        if obj["kind"] == "InferenceService" and obj["metadata"]["name"] == OUT and \
                obj["metadata"]["annotations"]["serving.kserve.io/stop"] == "true":
            c.remove("v1", "Pod", OUT + "-predictor-abc12", o.NS)
            c.remove(o.KUEUE, "Workload", "pod-{0}-predictor-abc12-1a2b3".format(OUT), o.NS)
            dev = o.pod(INC, ready=False, waiting="CrashLoopBackOff", restarts=2,
                        last_words="torch.OutOfMemoryError: CUDA out of memory.")
            c.update(dev)
            c.update(o.workload(dev, admitted_to="nvidia-l4-4gpu"))
            c.update(o.cluster_queue(used={"nvidia-l4-4gpu": 4, "nvidia-l4-1gpu": 1}))
    cluster.on_write.append(crash)
    with pytest.raises(ho.HandoverError, match="CUDA out of memory") as err:
        ho.hand_over(cluster, params(wait_for="ready", ready_timeout=30), check_mode=False)
    assert stop_of(cluster, OUT) == "false" and stop_of(cluster, INC) == "true"


@pytest.mark.parametrize("change, message", [
    ({"incoming": OUT}, "outgoing and incoming are both"),
    ({"wait_timeout": 0}, "wait_timeout must be > 0, got 0"),
    ({"lock_wait": -1}, "lock_wait must be >= 0, got -1"),
])
def test_bad_input_fails_before_anything(cluster: FakeCluster, change, message) -> None:
    with pytest.raises(GpuaasError, match=message):
        ho.hand_over(cluster, params(**change), check_mode=False)
    assert cluster.writes == []


def test_a_held_lease_refuses_a_second_run_with_the_holders_name(cluster: FakeCluster) -> None:
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.lease import Lease
    other = Lease(cluster, o.NS, "rhoai-gpuaas-handover", "aap-job-41@pod/1", duration=30)
    other.acquire()
    try:
        with pytest.raises(GpuaasError, match="held by aap-job-41@pod/1"):
            ho.hand_over(cluster, params(lock="rhoai-gpuaas-handover", lock_identity="me"), check_mode=False)
    finally:
        other.release()
    assert stop_of(cluster, OUT) == "false"


def test_a_frozen_kueue_is_named_before_the_verdict_it_never_gave(cluster: FakeCluster) -> None:
    dev = cluster.find("v1", "Pod", INC + "-predictor-abc12", o.NS)
    cluster.update(o.workload(dev))  # queued, but Kueue has not looked at it
    cluster.refuse[("Workload", "*")] = "failed calling webhook: context deadline exceeded"
    with pytest.raises(ho.HandoverError, match=r"refused before any change \(Kueue is acting\)") as err:
        ho.hand_over(cluster, params(), check_mode=False)
    assert [c["check"] for c in err.value.result["preflight"] if not c["ok"]] == ["Kueue is acting", "incoming is queued"]
    assert stop_of(cluster, OUT) == "false"
