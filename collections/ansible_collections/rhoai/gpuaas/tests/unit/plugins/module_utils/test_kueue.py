# -*- coding: utf-8 -*-
"""Kueue helpers: message parsing with the real strings, states, usage, coverage."""

from __future__ import annotations

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.kueue import (
    KueueError,
    PodWorkloads,
    admission,
    assessed_pending,
    choose_api_version,
    cluster_queue_of_local_queue,
    cluster_queue_usage,
    covered_resources,
    detect_api_version,
    owner_pod,
    parse_quantity,
    parse_pending_message,
    pod_gated,
    pod_requested_resources,
    pod_summary,
    terminal_reason,
    uncovered_resources,
    usage_reflects,
    workload_message,
    workload_state,
    workload_summary,
    workloads_of_pods,
)

CURRENT = (
    "couldn't assign flavors to pod set main: flavor nvidia-l4-1gpu doesn't match node affinity, "
    "insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed"
)
OLDER = (
    "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
    "nvidia-l4-1gpu, request > maximum capacity (4 > 1), insufficient unused quota for "
    "nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed"
)
NEWER_NO_FIT = (
    "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
    "nvidia-l4-1gpu, previously considered podsets requests (0) + current podset request (4) > "
    "maximum capacity (1), insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed"
)


def cond(cond_type, status, reason="", message=""):
    return {"type": cond_type, "status": status, "reason": reason, "message": message}


def workload(name="pod-x-1a2b3", conditions=(), **status):
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": "w-" + name,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": "pod-uid-x"}]},
        "spec": {"queueName": "default"},
        "status": dict(status, conditions=list(conditions)),
    }


class TestParsePending:
    def test_current_wording(self):
        parsed = parse_pending_message(CURRENT)
        assert parsed["flavors"] == [
            {"name": "nvidia-l4-1gpu", "reason": "doesn't match node affinity"},
            {"name": "nvidia-l4-4gpu", "reason": "insufficient unused quota for nvidia.com/gpu, 4 more needed"},
        ]
        assert parsed["resource"] == "nvidia.com/gpu"
        assert parsed["more_needed"] == "4"
        assert len(parsed["reasons"]) == 2

    def test_older_maximum_capacity_wording(self):
        parsed = parse_pending_message(OLDER)
        assert parsed["flavors"][0] == {
            "name": "nvidia-l4-1gpu",
            "reason": "insufficient quota for nvidia.com/gpu, request > maximum capacity (4 > 1)",
        }
        assert parsed["flavors"][1]["name"] == "nvidia-l4-4gpu"
        assert parsed["resource"] == "nvidia.com/gpu"
        assert parsed["more_needed"] == "4"  # from the flavor where waiting helps

    def test_kueue_017_maximum_capacity_wording(self):
        parsed = parse_pending_message(NEWER_NO_FIT)
        assert [f["name"] for f in parsed["flavors"]] == ["nvidia-l4-1gpu", "nvidia-l4-4gpu"]
        assert "maximum capacity (1)" in parsed["flavors"][0]["reason"]
        assert parsed["more_needed"] == "4"

    def test_only_maximum_capacity_has_no_more_needed(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
            "nvidia-l4-1gpu, request > maximum capacity (4 > 1)")
        assert parsed["resource"] == "nvidia.com/gpu"
        assert parsed["more_needed"] is None

    def test_uncovered_resource(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: resource ephemeral-storage unavailable in ClusterQueue")
        assert parsed == {"flavors": [], "resource": "ephemeral-storage", "more_needed": None,
                          "reasons": ["resource ephemeral-storage unavailable in ClusterQueue"]}

    def test_missing_local_queue(self):
        parsed = parse_pending_message("LocalQueue default doesn't exist")
        assert parsed["flavors"] == [] and parsed["resource"] is None
        assert parsed["reasons"] == ["LocalQueue default doesn't exist"]

    def test_untolerated_taint_and_memory(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: untolerated taint {nvidia.com/gpu true NoSchedule <nil>} "
            "in flavor nvidia-l4-1gpu, insufficient unused quota for memory in flavor nvidia-l4-4gpu, 8Gi more needed")
        assert parsed["flavors"][0] == {"name": "nvidia-l4-1gpu",
                                        "reason": "untolerated taint {nvidia.com/gpu true NoSchedule <nil>}"}
        assert parsed["resource"] == "memory" and parsed["more_needed"] == "8Gi"

    def test_several_pod_sets(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: flavor a doesn't match node affinity; "
            "couldn't assign flavors to pod set workers: insufficient unused quota for cpu in flavor b, 2 more needed")
        assert [f["name"] for f in parsed["flavors"]] == ["a", "b"]
        assert parsed["resource"] == "cpu"

    @pytest.mark.parametrize("message", [None, ""])
    def test_empty(self, message):
        assert parse_pending_message(message) == {"flavors": [], "resource": None, "more_needed": None, "reasons": []}

    def test_failed_to_assign_wording(self):
        # Kueue's Assignment.Message() when the flavor assigner returns an error (e.g. TAS).
        parsed = parse_pending_message("failed to assign flavors to pod set main: no TAS flavor assigned")
        assert parsed["reasons"] == ["no TAS flavor assigned"]
        parsed = parse_pending_message(
            "failed to assign flavors to pod set main: flavor nvidia-l4-4gpu doesn't match node affinity")
        assert parsed["flavors"] == [{"name": "nvidia-l4-4gpu", "reason": "doesn't match node affinity"}]

    def test_untolerated_taint_after_another_reason(self):
        # Kueue sorts the reasons, so "insufficient ..." comes before "untolerated ...".
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
            "nvidia-l4-4gpu, 4 more needed, untolerated taint {nvidia.com/gpu true NoSchedule <nil>} in flavor "
            "nvidia-l4-1gpu")
        assert parsed["flavors"] == [
            {"name": "nvidia-l4-4gpu", "reason": "insufficient unused quota for nvidia.com/gpu, 4 more needed"},
            {"name": "nvidia-l4-1gpu", "reason": "untolerated taint {nvidia.com/gpu true NoSchedule <nil>}"},
        ]
        assert (parsed["resource"], parsed["more_needed"]) == ("nvidia.com/gpu", "4")

    @pytest.mark.parametrize("second", [
        "flavor b doesn't match node affinity",
        'Flavor "b" supports only TopologyAwareScheduling',
        "insufficient unused quota for cpu in flavor b, 2 more needed",
        "untolerated taint {k v NoSchedule <nil>} in flavor b",
        "resource example.com/fpga unavailable in ClusterQueue",
        "could not assign a flavor for memory",
        "no TAS flavor assigned",
        'topology "rack" doesn\'t allow to fit any of 2 pod(s)',
        "required topology level rack is not supported",
        "preferred topology level rack is not supported",
        "workload requires more than the ClusterQueue's capacity",
    ])
    def test_every_reason_after_the_first_is_split_off(self, second):
        first = "insufficient unused quota for nvidia.com/gpu in flavor a, 4 more needed"
        parsed = parse_pending_message("couldn't assign flavors to pod set main: {0}, {1}".format(first, second))
        assert parsed["reasons"] == [first, second]
        # the first reason's quantity is not swallowed by the next reason
        assert (parsed["resource"], parsed["more_needed"]) == ("nvidia.com/gpu", "4")

    def test_a_comma_inside_a_reason_does_not_split_it(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: insufficient quota for cpu in flavor a, "
            "request > maximum capacity (4 > 1), flavor b doesn't match node affinity")
        assert parsed["reasons"] == ["insufficient quota for cpu in flavor a, request > maximum capacity (4 > 1)",
                                     "flavor b doesn't match node affinity"]

    def test_first_short_resource_wins(self):
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor a, 2 more needed, "
            "insufficient unused quota for nvidia.com/gpu in flavor b, 4 more needed")
        assert (parsed["resource"], parsed["more_needed"]) == ("cpu", "2")
        # an uncovered resource is the answer even when a quota reason follows
        parsed = parse_pending_message(
            "couldn't assign flavors to pod set main: resource ephemeral-storage unavailable in ClusterQueue, "
            "insufficient unused quota for cpu in flavor b, 2 more needed")
        assert (parsed["resource"], parsed["more_needed"]) == ("ephemeral-storage", None)

    def test_unknown_reason_is_kept_but_not_parsed(self):
        parsed = parse_pending_message("couldn't assign flavors to pod set main: something new happened")
        assert parsed == {"flavors": [], "resource": None, "more_needed": None, "reasons": ["something new happened"]}

    def test_quoted_flavor_name(self):
        parsed = parse_pending_message('couldn\'t assign flavors to pod set main: flavor "nvidia-l4-1gpu" is inactive')
        assert parsed["flavors"] == [{"name": "nvidia-l4-1gpu", "reason": "is inactive"}]


class TestWorkloadState:
    def test_never_admitted_has_no_admitted_condition(self):
        wl = workload(conditions=[cond("QuotaReserved", "False", "Pending", CURRENT)])
        assert workload_state(wl) == "pending"
        assert assessed_pending(wl)
        summary = workload_summary(wl)
        assert summary["pending"]["more_needed"] == "4"
        assert summary["message"] == CURRENT
        assert summary["pod"] == "x"

    def test_fresh_workload_is_pending_but_not_assessed(self):
        wl = workload()
        assert workload_state(wl) == "pending"
        assert not assessed_pending(wl)

    def test_admitted_with_flavors(self):
        wl = workload(
            conditions=[cond("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue rhoai-main-queue"),
                        cond("Admitted", "True", "Admitted", "The workload is admitted")],
            admission={"clusterQueue": "rhoai-main-queue",
                       "podSetAssignments": [{"name": "main", "flavors": {"nvidia.com/gpu": "nvidia-l4-4gpu", "cpu": "nvidia-l4-4gpu"}}]},
        )
        assert workload_state(wl) == "admitted"
        assert admission(wl) == {"cluster_queue": "rhoai-main-queue",
                                 "flavors": {"nvidia.com/gpu": "nvidia-l4-4gpu", "cpu": "nvidia-l4-4gpu"}}
        assert workload_summary(wl)["pending"] is None

    def test_quota_reserved_waiting_for_checks(self):
        wl = workload(conditions=[cond("QuotaReserved", "True"), cond("Admitted", "False")])
        assert workload_state(wl) == "quota_reserved"

    def test_readmitted_after_eviction_is_admitted(self):
        wl = workload(conditions=[cond("Evicted", "False", "QuotaReserved"), cond("QuotaReserved", "True"),
                                  cond("Admitted", "True")])
        assert workload_state(wl) == "admitted"

    def test_evicted_while_its_quota_is_still_reserved(self):
        """Kueue sets Evicted first and releases the quota (QuotaReserved False) once the pods stop."""
        wl = workload(conditions=[cond("QuotaReserved", "True", "QuotaReserved"),
                                  cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload"),
                                  cond("Admitted", "False", "NoReservation")])
        assert workload_state(wl) == "evicted"
        assert workload_message(wl) == "Preempted to accommodate a workload"
        assert terminal_reason(wl) is None and not assessed_pending(wl)

    def test_evicted_and_finished(self):
        assert workload_state(workload(conditions=[cond("Evicted", "True", "Preempted"), cond("Admitted", "False")])) == "evicted"
        assert workload_state(workload(conditions=[cond("Admitted", "True"), cond("Finished", "True")])) == "finished"

    def test_terminal_reasons(self):
        uncovered = workload(conditions=[cond("QuotaReserved", "False", "Pending",
                                              "couldn't assign flavors to pod set main: resource ephemeral-storage unavailable in ClusterQueue")])
        missing = workload(conditions=[cond("QuotaReserved", "False", "Inadmissible", "LocalQueue default doesn't exist")])
        short = workload(conditions=[cond("QuotaReserved", "False", "Pending", CURRENT)])
        missing_cq = workload(conditions=[cond("QuotaReserved", "False", "Inadmissible",
                                               "ClusterQueue cq-gone doesn't exist")])
        assert terminal_reason(uncovered) == (
            "Workload pod-x-1a2b3 cannot be admitted: couldn't assign flavors to pod set main: "
            "resource ephemeral-storage unavailable in ClusterQueue")
        assert terminal_reason(missing) == "Workload pod-x-1a2b3 cannot be admitted: LocalQueue default doesn't exist"
        assert terminal_reason(missing_cq) == (
            "Workload pod-x-1a2b3 cannot be admitted: ClusterQueue cq-gone doesn't exist")
        assert terminal_reason(short) is None

    def test_an_admitted_workload_is_never_terminal(self):
        """The message of an old QuotaReserved=False lingers in another condition; only pending counts."""
        wl = workload(conditions=[cond("QuotaReserved", "True", "QuotaReserved", "LocalQueue default doesn't exist"),
                                  cond("Admitted", "True")])
        assert terminal_reason(wl) is None


class TestPodsAndWorkloads:
    pods = [
        {"metadata": {"name": "x", "uid": "pod-uid-x"}, "spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]}},
        {"metadata": {"name": "y", "uid": "pod-uid-y"}, "spec": {}},
    ]

    def test_match_by_owner_and_by_label(self):
        by_owner = workload("pod-x-aaaaa")
        by_label = {"metadata": {"name": "pod-y-bbbbb", "labels": {"kueue.x-k8s.io/job-uid": "pod-uid-y"}}}
        other = {"metadata": {"name": "pod-z", "labels": {"kueue.x-k8s.io/job-uid": "nope"}}}
        result = workloads_of_pods([by_owner, by_label, other], self.pods)
        assert [w["metadata"]["name"] for w in result["x"]] == ["pod-x-aaaaa"]
        assert [w["metadata"]["name"] for w in result["y"]] == ["pod-y-bbbbb"]

    def test_gated(self):
        assert pod_gated(self.pods[0]) and not pod_gated(self.pods[1])

    def test_links_remember_deleted_pods_and_prefix(self):
        links = PodWorkloads("llm-predictor-")
        links.observe(self.pods)
        gone_pod_wl = workload("pod-x-aaaaa")
        by_prefix = {"metadata": {"name": "pod-llm-predictor-abc-1", "ownerReferences": [
            {"kind": "Pod", "name": "llm-predictor-abc-1", "uid": "never-seen"}]}}
        unrelated = {"metadata": {"name": "pod-other", "ownerReferences": [{"kind": "Pod", "name": "other", "uid": "u"}]}}
        assert [w["metadata"]["name"] for w in links.select([gone_pod_wl, by_prefix, unrelated])] == [
            "pod-x-aaaaa", "pod-llm-predictor-abc-1"]


CLUSTER_QUEUE = {
    "metadata": {"name": "rhoai-main-queue"},
    "spec": {"resourceGroups": [{
        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
        "flavors": [
            {"name": "nvidia-l4-1gpu", "resources": [{"name": "cpu", "nominalQuota": "16"},
                                                     {"name": "memory", "nominalQuota": "64Gi"},
                                                     {"name": "nvidia.com/gpu", "nominalQuota": 1}]},
            {"name": "nvidia-l4-4gpu", "resources": [{"name": "cpu", "nominalQuota": "48"},
                                                     {"name": "memory", "nominalQuota": "192Gi"},
                                                     {"name": "nvidia.com/gpu", "nominalQuota": "4"}]},
        ]}]},
    "status": {"flavorsUsage": [
        {"name": "nvidia-l4-4gpu", "resources": [{"name": "cpu", "total": "8"}, {"name": "nvidia.com/gpu", "total": "4"},
                                                 {"name": "memory", "total": "32Gi"}]},
        {"name": "nvidia-l4-1gpu", "resources": [{"name": "cpu"}, {"name": "nvidia.com/gpu", "total": "1"}]},
    ]},
}


class TestClusterQueue:
    def test_usage_per_flavor(self):
        usage = cluster_queue_usage(CLUSTER_QUEUE)
        assert usage["nvidia-l4-4gpu"]["nvidia.com/gpu"] == {"used": "4", "nominal": "4"}
        assert usage["nvidia-l4-1gpu"]["nvidia.com/gpu"] == {"used": "1", "nominal": "1"}
        assert usage["nvidia-l4-1gpu"]["cpu"] == {"used": "0", "nominal": "16"}
        assert usage["nvidia-l4-1gpu"]["memory"] == {"used": "0", "nominal": "64Gi"}

    def test_usage_without_status(self):
        usage = cluster_queue_usage({"spec": CLUSTER_QUEUE["spec"]})
        assert usage["nvidia-l4-4gpu"]["memory"] == {"used": "0", "nominal": "192Gi"}

    def test_coverage_counts_requests_limits_and_init_containers(self):
        spec = {
            "initContainers": [{"name": "storage-initializer", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}],
            "containers": [{"name": "kserve-container",
                            "resources": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": "4"}}}],
        }
        assert pod_requested_resources(spec) == ["cpu", "ephemeral-storage", "memory", "nvidia.com/gpu"]
        assert uncovered_resources(spec, CLUSTER_QUEUE) == ["ephemeral-storage"]

    def test_fully_covered(self):
        spec = {"containers": [{"resources": {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": 1}}}, {"name": "sidecar"}]}
        assert uncovered_resources(spec, CLUSTER_QUEUE) == []


class FakeClient:
    def __init__(self, served=(), objects=None):
        self.served = list(served)
        self.objects = objects or {}

    def served_versions(self, group):
        assert group == "kueue.x-k8s.io"
        return self.served

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((api_version, kind, namespace, name))


class TestApiVersion:
    def test_prefers_v1beta2(self):
        assert detect_api_version(FakeClient(["v1beta1", "v1beta2"])) == "kueue.x-k8s.io/v1beta2"

    def test_kueue_014_only_v1beta1(self):
        assert detect_api_version(FakeClient(["v1beta1"])) == "kueue.x-k8s.io/v1beta1"

    def test_override_skips_discovery(self):
        assert detect_api_version(FakeClient([]), "v1beta1") == "kueue.x-k8s.io/v1beta1"
        assert choose_api_version([], "kueue.x-k8s.io/v1beta2") == "kueue.x-k8s.io/v1beta2"

    def test_override_names_a_version_this_collection_does_not_know(self):
        # a newer Kueue (its v1 API) can be used by naming it, discovery forbidden or not
        class Forbidden(FakeClient):
            def served_versions(self, group):
                raise AssertionError("discovery must not be asked when the version is given")
        assert detect_api_version(Forbidden(), "v1") == "kueue.x-k8s.io/v1"
        assert detect_api_version(Forbidden(), "kueue.x-k8s.io/v1") == "kueue.x-k8s.io/v1"

    def test_not_installed(self):
        with pytest.raises(KueueError, match="is Kueue installed"):
            detect_api_version(FakeClient([]))

    def test_local_queue_lookup(self):
        client = FakeClient(objects={("kueue.x-k8s.io/v1beta2", "LocalQueue", "private-ai", "default"):
                                     {"spec": {"clusterQueue": "rhoai-main-queue"}}})
        assert cluster_queue_of_local_queue(client, "kueue.x-k8s.io/v1beta2", "private-ai", "default") == "rhoai-main-queue"
        assert cluster_queue_of_local_queue(client, "kueue.x-k8s.io/v1beta2", "private-ai", "other") is None


def test_parse_quantity_reads_the_api_forms() -> None:
    assert parse_quantity("2100m") == pytest.approx(2.1)
    assert parse_quantity("8Gi") == 8 * 2 ** 30
    assert parse_quantity("8292Mi") == 8292 * 2 ** 20
    assert parse_quantity(4) == 4
    assert parse_quantity("1k") == 1000


def _admitted(cq: str, gpus: str) -> dict:
    return {"status": {"admission": {"clusterQueue": cq, "podSetAssignments": [{
        "name": "main", "flavors": {"cpu": "nvidia-l4-4gpu", "nvidia.com/gpu": "nvidia-l4-4gpu"},
        "resourceUsage": {"cpu": "2", "nvidia.com/gpu": gpus}}]}}}


def _cq(name: str, gpus: str, cpu: str = "2") -> dict:
    return {"metadata": {"name": name}, "status": {"flavorsUsage": [{"name": "nvidia-l4-4gpu", "resources": [
        {"name": "cpu", "total": cpu}, {"name": "nvidia.com/gpu", "total": gpus}]}]}}


def test_usage_reflects_waits_for_the_cluster_queue_to_count_the_admission() -> None:
    workload = _admitted("main-queue", "4")
    assert not usage_reflects(_cq("main-queue", "0"), [workload])  # admission written, usage not yet
    assert usage_reflects(_cq("main-queue", "4"), [workload])
    assert not usage_reflects(_cq("main-queue", "4", cpu="1500m"), [workload])
    assert usage_reflects(_cq("other-queue", "0"), [workload])  # not admitted there
    assert usage_reflects({"metadata": {"name": "main-queue"}}, [])


class TestMessagesAndSummaries:
    """The per-workload result users read: every field, and the message that explains the state."""

    @pytest.mark.parametrize("conditions,expected", [
        ([cond("Admitted", "True", message="admitted"), cond("Finished", "True", message="done")], "done"),
        ([cond("QuotaReserved", "True", message="reserved"), cond("Admitted", "True", message="admitted")],
         "admitted"),
        ([cond("QuotaReserved", "True", message="reserved"), cond("Admitted", "True")], "reserved"),
        ([cond("Evicted", "True", message="evicted"), cond("Preempted", "True", message="preempted")], "evicted"),
        ([cond("Evicted", "True"), cond("Preempted", "True", message="preempted")], "preempted"),
        ([cond("QuotaReserved", "True", message="reserved"), cond("Admitted", "False", message="checks")],
         "reserved"),
        ([cond("QuotaReserved", "True"), cond("Admitted", "False", message="checks")], "checks"),
        ([cond("QuotaReserved", "False", message="why"), cond("Admitted", "False", message="no")], "why"),
        ([cond("Admitted", "False", message="no"), cond("Evicted", "False", message="old")], "no"),
        ([cond("Evicted", "False", message="old")], "old"),
        ([cond("Finished", "True")], ""),
        ([], ""),
    ])
    def test_message_explains_the_state(self, conditions, expected):
        assert workload_message(workload(conditions=conditions)) == expected

    def test_summary_of_a_pending_workload(self):
        wl = workload(conditions=[cond("QuotaReserved", "False", "Pending", CURRENT)])
        assert workload_summary(wl) == {
            "name": "pod-x-1a2b3", "namespace": "ns", "state": "pending", "message": CURRENT,
            "pending": parse_pending_message(CURRENT), "queue_name": "default", "cluster_queue": None,
            "flavors": {}, "pod": "x",
        }

    def test_summary_of_an_admitted_workload(self):
        wl = workload(conditions=[cond("QuotaReserved", "True", message="Quota reserved in ClusterQueue cq"),
                                  cond("Admitted", "True", message="The workload is admitted")],
                      admission={"clusterQueue": "cq", "podSetAssignments": [
                          {"name": "main", "flavors": {"nvidia.com/gpu": "nvidia-l4-4gpu"}},
                          {"name": "workers", "flavors": {"cpu": "default"}}]})
        assert workload_summary(wl) == {
            "name": "pod-x-1a2b3", "namespace": "ns", "state": "admitted", "message": "The workload is admitted",
            "pending": None, "queue_name": "default", "cluster_queue": "cq",
            "flavors": {"nvidia.com/gpu": "nvidia-l4-4gpu", "cpu": "default"}, "pod": "x",
        }

    def test_summary_of_a_bare_workload(self):
        assert workload_summary({}) == {
            "name": None, "namespace": None, "state": "pending", "message": "", "pending": parse_pending_message(""),
            "queue_name": None, "cluster_queue": None, "flavors": {}, "pod": None}

    def test_owner_pod_is_a_core_pod(self):
        def owned_by(*refs):
            return {"metadata": {"ownerReferences": list(refs)}}
        assert owner_pod(owned_by({"apiVersion": "v1", "kind": "Pod", "name": "p"})) == "p"
        assert owner_pod(owned_by({"kind": "Pod", "name": "p"})) == "p"  # apiVersion omitted: v1
        assert owner_pod(owned_by({"apiVersion": "example.com/v1", "kind": "Pod", "name": "not-core"},
                                  {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"})) is None
        assert owner_pod(owned_by({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"},
                                  {"apiVersion": "v1", "kind": "Pod", "name": "p"})) == "p"
        assert owner_pod({}) is None

    def test_pod_summary(self):
        pod = {"metadata": {"name": "llm-predictor-abc", "deletionTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"nodeName": "n1", "schedulingGates": [{"name": "other"}]},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        assert pod_summary(pod) == {"name": "llm-predictor-abc", "phase": "Running", "gated": False, "node": "n1",
                                    "ready": True, "terminating": True}
        gated = {"metadata": {"name": "g"}, "spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]},
                 "status": {"phase": "Pending", "conditions": [
                     {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}
        assert pod_summary(gated) == {"name": "g", "phase": "Pending", "gated": True, "node": None, "ready": False,
                                      "terminating": False}
        assert pod_summary({}) == {"name": None, "phase": None, "gated": False, "node": None, "ready": False,
                                   "terminating": False}

    def test_links_by_job_uid_label_only(self):
        links = PodWorkloads()
        links.observe([{"metadata": {"name": "p", "uid": "u-p"}}, {"metadata": {"name": "no-uid"}}])
        by_label = {"metadata": {"name": "w1", "labels": {"kueue.x-k8s.io/job-uid": "u-p"}}}
        other = {"metadata": {"name": "w2", "labels": {"kueue.x-k8s.io/job-uid": "u-q"},
                              "ownerReferences": [{"kind": "Pod", "name": "q", "uid": "u-q"}]}}
        unlabelled = {"metadata": {"name": "w3"}}
        assert [w["metadata"]["name"] for w in links.select([by_label, other, unlabelled])] == ["w1"]
        assert links.uids == {"u-p"}


class TestApiVersionMessages:
    def test_not_served_lists_what_is(self):
        with pytest.raises(KueueError) as err:
            choose_api_version(["v1alpha1"])
        assert str(err.value) == ("The API group kueue.x-k8s.io is not served (served versions: ['v1alpha1']); "
                                  "is Kueue installed? Set the API version explicitly to skip discovery.")
        with pytest.raises(KueueError) as err:
            choose_api_version([])
        assert "(served versions: none)" in str(err.value)

    @pytest.mark.parametrize("requested", ["auto", "", None])
    def test_auto_and_empty_mean_discovery(self, requested):
        assert choose_api_version(["v1beta1"], requested) == "kueue.x-k8s.io/v1beta1"
        assert detect_api_version(FakeClient(["v1beta1"]), requested) == "kueue.x-k8s.io/v1beta1"

    def test_an_explicit_version_wins_over_discovery(self):
        client = FakeClient(["v1beta2"])
        client.served_versions = None  # discovery must not even be asked
        assert detect_api_version(client, "v1beta1") == "kueue.x-k8s.io/v1beta1"
        assert detect_api_version(client, "kueue.x-k8s.io/v1beta1") == "kueue.x-k8s.io/v1beta1"


class TestQuantitiesAndUsage:
    @pytest.mark.parametrize("text,value", [
        ("1m", 1e-3), ("1k", 1e3), ("1M", 1e6), ("1G", 1e9), ("1T", 1e12), ("1P", 1e15), ("1E", 1e18),
        ("1Ki", 2 ** 10), ("1Mi", 2 ** 20), ("1Gi", 2 ** 30), ("1Ti", 2 ** 40), ("1Pi", 2 ** 50), ("1Ei", 2 ** 60),
        (" 2 ", 2), ("1.5", 1.5), (0, 0),
    ])
    def test_every_suffix(self, text, value):
        assert parse_quantity(text) == pytest.approx(value)

    def test_usage_sums_pod_sets_and_needs_every_resource(self):
        workload = {"status": {"admission": {"clusterQueue": "cq", "podSetAssignments": [
            {"name": "a", "flavors": {"cpu": "f"}, "resourceUsage": {"cpu": "1", "memory": "1Gi"}},
            {"name": "b", "flavors": {"cpu": "f"}, "resourceUsage": {"cpu": "500m"}}]}}}
        # memory has no flavor in the assignment: it is looked up under the flavor ""
        full = {"metadata": {"name": "cq"}, "status": {"flavorsUsage": [
            {"name": "f", "resources": [{"name": "cpu", "total": "1500m"}]},
            {"name": "", "resources": [{"name": "memory", "total": "1Gi"}]}]}}
        assert usage_reflects(full, [workload])
        short = {"metadata": {"name": "cq"}, "status": {"flavorsUsage": [
            {"name": "f", "resources": [{"name": "cpu", "total": "1"}]},
            {"name": "", "resources": [{"name": "memory", "total": "1Gi"}]}]}}
        assert not usage_reflects(short, [workload])  # only the first pod set counted yet

    def test_usage_of_resources_only_in_status_or_without_quota(self):
        cq = {"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": [{"name": "cpu"}]}]}]},
              "status": {"flavorsUsage": [{"name": "f", "resources": [{"name": "memory", "total": "2Gi"}]},
                                          {"name": "gone", "resources": [{"name": "cpu", "total": "1"}]}]}}
        assert cluster_queue_usage(cq) == {"f": {"cpu": {"used": "0", "nominal": "0"},
                                                 "memory": {"used": "2Gi", "nominal": "0"}},
                                           "gone": {"cpu": {"used": "1", "nominal": "0"}}}

    def test_covered_resources_union(self):
        cq = {"spec": {"resourceGroups": [{"coveredResources": ["cpu", "memory"]}, {"coveredResources": ["nvidia.com/gpu"]},
                                          {}]}}
        assert covered_resources(cq) == ["cpu", "memory", "nvidia.com/gpu"]
        assert covered_resources({}) == []

    def test_requested_resources_include_pod_level_resources(self):
        spec = {"containers": [{"resources": {"requests": {"cpu": "1"}}}],
                "resources": {"limits": {"hugepages-2Mi": "1Gi"}}}
        assert pod_requested_resources(spec) == ["cpu", "hugepages-2Mi"]
        assert pod_requested_resources({}) == []


def test_usage_reflects_every_workload_of_the_queue_not_only_the_first() -> None:
    elsewhere, here = _admitted("other-queue", "4"), _admitted("main-queue", "4")
    assert not usage_reflects(_cq("main-queue", "0"), [elsewhere, here])
    assert usage_reflects(_cq("main-queue", "4"), [elsewhere, here])


def test_usage_of_a_flavor_or_resource_the_queue_never_reported_is_zero() -> None:
    workload = _admitted("main-queue", "1")
    assert not usage_reflects({"metadata": {"name": "main-queue"}}, [workload])  # no flavor at all
    only_cpu = {"metadata": {"name": "main-queue"}, "status": {"flavorsUsage": [
        {"name": "nvidia-l4-4gpu", "resources": [{"name": "cpu", "total": "2"}]}]}}
    assert not usage_reflects(only_cpu, [workload])  # the flavor, but not nvidia.com/gpu
