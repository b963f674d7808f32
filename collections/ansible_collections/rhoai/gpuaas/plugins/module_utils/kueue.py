# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kueue knowledge: API version choice, Workload state, pending reasons, quota and coverage.

Everything except ``detect_api_version`` and ``cluster_queue_of_local_queue`` is a pure
function over object dicts, so it is unit-tested with literal objects. Field names are the
same in ``v1beta1`` and ``v1beta2`` for everything read here (``spec.resourceGroups``,
``status.flavorsUsage``, ``status.admission``); only ``spec.cohort`` was renamed, and it
is not read.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError

GROUP = "kueue.x-k8s.io"
# Preferred first: v1beta2 is the storage version from Kueue 0.16; Kueue 0.14 (Red Hat
# build of Kueue 1.2, shipped with RHOAI 3.0) serves only v1beta1.
KNOWN_VERSIONS = ("v1beta2", "v1beta1")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
ADMISSION_GATE = "kueue.x-k8s.io/admission"

STATES = ("pending", "quota_reserved", "admitted", "evicted", "finished")


class KueueError(GpuaasError):
    """Kueue is missing or misconfigured; the message says what to fix."""


# ---------------------------------------------------------------- API version


def choose_api_version(served: Sequence[str], requested: str = "auto") -> str:
    """``kueue.x-k8s.io/<version>``: the requested one, else the best served one.

    An explicit request is honoured even if discovery did not list it (discovery may be
    forbidden to the user); ``auto`` needs Kueue to be served.
    """
    if requested and requested != "auto":
        version = requested.split("/")[-1]
        return "{0}/{1}".format(GROUP, version)
    for version in KNOWN_VERSIONS:
        if version in served:
            return "{0}/{1}".format(GROUP, version)
    raise KueueError(
        "The API group {0} is not served (served versions: {1}); is Kueue installed? "
        "Set the API version explicitly to skip discovery.".format(GROUP, list(served) or "none")
    )


def detect_api_version(client: Any, requested: str = "auto") -> str:
    """Discovery-based ``choose_api_version`` (``client`` is a k8s_client.Client)."""
    if requested and requested != "auto":
        return choose_api_version((), requested)
    return choose_api_version(client.served_versions(GROUP), requested)


def cluster_queue_of_local_queue(client: Any, api_version: str, namespace: str, name: str) -> Optional[str]:
    """``spec.clusterQueue`` of the LocalQueue, or None if the LocalQueue does not exist."""
    local_queue = client.get(api_version, "LocalQueue", name, namespace)
    if local_queue is None:
        return None
    return (local_queue.get("spec") or {}).get("clusterQueue")


# ---------------------------------------------------------------- Workloads


def _conditions(obj: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _is_true(conds: Dict[str, Dict[str, Any]], cond_type: str) -> bool:
    return (conds.get(cond_type) or {}).get("status") == "True"


def workload_state(workload: Dict[str, Any]) -> str:
    """One of STATES, from the Workload's conditions.

    Conditions are read as they are, without an observedGeneration check: Kueue refreshes a
    condition's observedGeneration only when it rewrites that condition, and the spec of a
    pod's Workload does not change after creation. Order matters: a re-admitted workload
    keeps an old ``Evicted`` condition (set to False), and ``QuotaReserved`` without
    ``Admitted`` means admission checks are still running. A workload that was never
    admitted has no ``Admitted`` condition at all.
    """
    conds = _conditions(workload)
    if _is_true(conds, "Finished"):
        return "finished"
    if _is_true(conds, "Admitted"):
        return "admitted"
    if _is_true(conds, "Evicted"):
        return "evicted"
    if _is_true(conds, "QuotaReserved"):
        return "quota_reserved"
    return "pending"


def workload_message(workload: Dict[str, Any]) -> str:
    """The human message that explains the current state (pending reason, eviction, ...)."""
    conds = _conditions(workload)
    state = workload_state(workload)
    order = {
        "finished": ("Finished",),
        "admitted": ("Admitted", "QuotaReserved"),
        "evicted": ("Evicted", "Preempted"),
        "quota_reserved": ("QuotaReserved", "Admitted"),
        "pending": ("QuotaReserved", "Admitted", "Evicted"),
    }[state]
    for cond_type in order:
        message = (conds.get(cond_type) or {}).get("message")
        if message:
            return message
    return ""


# Kueue joins the reasons of one pod set with ", " (sorted), but a single reason may itself
# contain ", " (", 4 more needed"). So split only before a word that starts a reason.
_REASON_SPLIT = re.compile(
    r", (?=(?:flavor |Flavor |insufficient |untolerated |resource |could not |no |topology |"
    r"required |preferred |workload ))"
)
_POD_SET_PREFIX = re.compile(r"^(?:couldn't|failed to) assign flavors to pod set [^:]+: ")
_FLAVOR = r"(?P<flavor>[^\s,]+)"
_UNUSED = re.compile(
    r"^insufficient unused quota for (?P<resource>\S+) in flavor " + _FLAVOR + r", (?P<more>\S+) more needed"
)
_NO_FIT = re.compile(r"^insufficient quota for (?P<resource>\S+) in flavor " + _FLAVOR + r", (?P<rest>.*)$")
_TAINT = re.compile(r"^untolerated taint (?P<taint>.+) in flavor " + _FLAVOR + r"$")
_FLAVOR_REASON = re.compile(r"^[Ff]lavor \"?" + r"(?P<flavor>[^\s,\"]+)\"? (?P<rest>.+)$")
_UNAVAILABLE = re.compile(r"^resource (?P<resource>\S+) unavailable in ClusterQueue")


def parse_pending_message(message: Optional[str]) -> Dict[str, Any]:
    """Split Kueue's "why not admitted" message into its parts.

    Returns ``{"flavors": [{"name", "reason"}], "resource", "more_needed", "reasons"}``:
    ``resource`` is the first resource short of quota (or not covered by the ClusterQueue),
    ``more_needed`` Kueue's "N more needed" for it (None in the "maximum capacity" wording,
    where waiting cannot help), ``reasons`` every reason as Kueue wrote it.
    """
    result: Dict[str, Any] = {"flavors": [], "resource": None, "more_needed": None, "reasons": []}
    if not message:
        return result
    for pod_set_msg in re.split(r"; (?=(?:couldn't|failed to) assign flavors)", message.strip()):
        body = _POD_SET_PREFIX.sub("", pod_set_msg)
        for reason in _REASON_SPLIT.split(body):
            reason = reason.strip()
            if reason:
                result["reasons"].append(reason)
                _parse_reason(reason, result)
    return result


def _parse_reason(reason: str, result: Dict[str, Any]) -> None:
    match = _UNUSED.match(reason)
    if match:
        _set_resource(result, match.group("resource"), match.group("more"))
        result["flavors"].append({
            "name": match.group("flavor"),
            "reason": "insufficient unused quota for {0}, {1} more needed".format(
                match.group("resource"), match.group("more")),
        })
        return
    match = _NO_FIT.match(reason)
    if match:
        _set_resource(result, match.group("resource"), None)
        result["flavors"].append({
            "name": match.group("flavor"),
            "reason": "insufficient quota for {0}, {1}".format(match.group("resource"), match.group("rest")),
        })
        return
    match = _TAINT.match(reason)
    if match:
        result["flavors"].append({"name": match.group("flavor"), "reason": "untolerated taint " + match.group("taint")})
        return
    match = _UNAVAILABLE.match(reason)
    if match:
        _set_resource(result, match.group("resource"), None)
        return
    match = _FLAVOR_REASON.match(reason)
    if match:
        result["flavors"].append({"name": match.group("flavor"), "reason": match.group("rest")})


def _set_resource(result: Dict[str, Any], resource: str, more_needed: Optional[str]) -> None:
    if result["resource"] is None:
        result["resource"] = resource
        result["more_needed"] = more_needed
    elif result["resource"] == resource and result["more_needed"] is None:
        result["more_needed"] = more_needed


def admission(workload: Dict[str, Any]) -> Dict[str, Any]:
    """``{"cluster_queue", "flavors": {resource: flavor}}`` from ``status.admission``."""
    adm = (workload.get("status") or {}).get("admission") or {}
    flavors: Dict[str, str] = {}
    for assignment in adm.get("podSetAssignments") or []:
        flavors.update(assignment.get("flavors") or {})
    return {"cluster_queue": adm.get("clusterQueue"), "flavors": flavors}


def workload_summary(workload: Dict[str, Any]) -> Dict[str, Any]:
    """The per-workload result of kueue_wait / isvc_replicas."""
    meta = workload.get("metadata") or {}
    state = workload_state(workload)
    message = workload_message(workload)
    adm = admission(workload)
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "state": state,
        "message": message,
        "pending": parse_pending_message(message) if state == "pending" else None,
        "queue_name": (workload.get("spec") or {}).get("queueName"),
        "cluster_queue": adm["cluster_queue"],
        "flavors": adm["flavors"],
        "pod": owner_pod(workload),
    }


def owner_pod(workload: Dict[str, Any]) -> Optional[str]:
    """Name of the Pod owning the workload (pod integration), if any."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Pod" and ref.get("apiVersion", "v1") == "v1":
            return ref.get("name")
    return None


def workloads_of_pods(workloads: Iterable[Dict[str, Any]], pods: Iterable[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """``{pod name: [workloads]}`` matched by owner reference uid or the job-uid label.

    Kueue's pod integration creates one Workload per pod, owned by the Pod and labelled
    ``kueue.x-k8s.io/job-uid=<pod uid>``; either link is enough.
    """
    by_uid = {(p.get("metadata") or {}).get("uid"): (p.get("metadata") or {}).get("name") for p in pods}
    result: Dict[str, List[Dict[str, Any]]] = {name: [] for name in by_uid.values()}
    for workload in workloads:
        meta = workload.get("metadata") or {}
        uids = {ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "Pod"}
        uids.add((meta.get("labels") or {}).get(JOB_UID_LABEL))
        for uid in uids:
            if uid in by_uid:
                result[by_uid[uid]].append(workload)
                break
    return result


def assessed_pending(workload: Dict[str, Any]) -> bool:
    """Kueue has tried and failed to admit it (QuotaReserved=False), so a reason exists.

    A just-created Workload is also "pending" but carries no verdict yet.
    """
    conds = _conditions(workload)
    return workload_state(workload) == "pending" and (conds.get("QuotaReserved") or {}).get("status") == "False"


_TERMINAL = (
    re.compile(r"resource \S+ unavailable in ClusterQueue"),
    re.compile(r"LocalQueue \S+ doesn't exist"),
    re.compile(r"ClusterQueue \S+ doesn't exist"),
)


def is_terminal_message(message: Optional[str]) -> bool:
    """Kueue's pending message says waiting cannot help (uncovered resource, missing queue)."""
    return any(p.search(message or "") for p in _TERMINAL)


def terminal_reason(workload: Dict[str, Any]) -> Optional[str]:
    """Message of a pending workload that waiting cannot fix (uncovered resource, missing
    queue), else None. Lack of quota is not terminal: quota comes back when others stop.
    """
    if workload_state(workload) != "pending":
        return None
    message = workload_message(workload)
    if is_terminal_message(message):
        return "Workload {0} cannot be admitted: {1}".format((workload.get("metadata") or {}).get("name"), message)
    return None


class PodWorkloads:
    """Links Workloads to a group of pods for the whole of a wait.

    A deleted pod's Workload can outlive it for a moment (Kueue removes it after the pod's
    finalizer), and then only the remembered pod uid, or the owner's name prefix, still
    ties it to the group.
    """

    def __init__(self, pod_name_prefix: Optional[str] = None) -> None:
        self.prefix = pod_name_prefix
        self.uids: set = set()

    def observe(self, pods: Iterable[Dict[str, Any]]) -> None:
        for pod in pods:
            uid = (pod.get("metadata") or {}).get("uid")
            if uid:
                self.uids.add(uid)

    def select(self, workloads: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
        selected = []
        for workload in workloads:
            meta = workload.get("metadata") or {}
            refs = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Pod"]
            uids = {r.get("uid") for r in refs} | {(meta.get("labels") or {}).get(JOB_UID_LABEL)}
            by_prefix = self.prefix and any((r.get("name") or "").startswith(self.prefix) for r in refs)
            if uids & self.uids or by_prefix:
                selected.append(workload)
        return selected


# ---------------------------------------------------------------- Pods


def pod_summary(pod: Dict[str, Any]) -> Dict[str, Any]:
    """``{name, phase, gated, node, ready, terminating}`` for results."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return {
        "name": meta.get("name"),
        "phase": status.get("phase"),
        "gated": pod_gated(pod),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "ready": ready,
        "terminating": bool(meta.get("deletionTimestamp")),
    }


def pod_gated(pod: Dict[str, Any]) -> bool:
    """The pod still carries Kueue's admission scheduling gate."""
    return any(g.get("name") == ADMISSION_GATE for g in (pod.get("spec") or {}).get("schedulingGates") or [])


def pod_requested_resources(pod_spec: Dict[str, Any]) -> List[str]:
    """Every resource name in requests or limits of containers, initContainers and the pod.

    Limits count because Kueue (like the scheduler) defaults a missing request to the limit.
    """
    names = set()
    holders = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
    resource_blocks = [c.get("resources") or {} for c in holders]
    resource_blocks.append(pod_spec.get("resources") or {})  # pod-level resources (k8s 1.32+)
    for block in resource_blocks:
        for section in ("requests", "limits"):
            names.update((block.get(section) or {}).keys())
    return sorted(names)


# ---------------------------------------------------------------- ClusterQueues


def covered_resources(cluster_queue: Dict[str, Any]) -> List[str]:
    """Union of ``spec.resourceGroups[].coveredResources``."""
    names = set()
    for group in (cluster_queue.get("spec") or {}).get("resourceGroups") or []:
        names.update(group.get("coveredResources") or [])
    return sorted(names)


def uncovered_resources(pod_spec: Dict[str, Any], cluster_queue: Dict[str, Any]) -> List[str]:
    """Resources the pod requests that the ClusterQueue does not cover.

    Any such resource makes Kueue answer "resource X unavailable in ClusterQueue" and the
    pod is never admitted (e.g. ``ephemeral-storage``).
    """
    covered = set(covered_resources(cluster_queue))
    return [name for name in pod_requested_resources(pod_spec) if name not in covered]


def cluster_queue_usage(cluster_queue: Dict[str, Any]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{flavor: {resource: {"used", "nominal"}}}`` (quantities as the API writes them).

    ``nominal`` from ``spec.resourceGroups[].flavors[].resources[].nominalQuota``, ``used``
    from ``status.flavorsUsage[].resources[].total`` (absent means "0": the API omits zero).
    """
    usage: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for group in (cluster_queue.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            per_resource = usage.setdefault(flavor.get("name"), {})
            for res in flavor.get("resources") or []:
                per_resource[res.get("name")] = {"used": "0", "nominal": str(res.get("nominalQuota", "0"))}
    for flavor in (cluster_queue.get("status") or {}).get("flavorsUsage") or []:
        per_resource = usage.setdefault(flavor.get("name"), {})
        for res in flavor.get("resources") or []:
            entry = per_resource.setdefault(res.get("name"), {"used": "0", "nominal": "0"})
            entry["used"] = str(res.get("total", "0"))
    return usage


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def parse_quantity(quantity: Any) -> float:
    """A Kubernetes quantity ("2100m", "8Gi", "4") as a number, to compare usages."""
    text = str(quantity).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


def usage_reflects(cluster_queue: Dict[str, Any], workloads: Iterable[Dict[str, Any]]) -> bool:
    """True when the ClusterQueue's reported usage already counts these admitted workloads.

    Kueue writes a workload's admission first and the ClusterQueue's ``flavorsUsage`` a moment
    later; a caller that reports usage right after an admission must wait for both.
    """
    name = (cluster_queue.get("metadata") or {}).get("name")
    needed: Dict[Tuple[str, str], float] = {}
    for workload in workloads:
        adm = (workload.get("status") or {}).get("admission") or {}
        if adm.get("clusterQueue") != name:
            continue
        for assignment in adm.get("podSetAssignments") or []:
            flavors = assignment.get("flavors") or {}
            for resource, amount in (assignment.get("resourceUsage") or {}).items():
                key = (flavors.get(resource, ""), resource)
                needed[key] = needed.get(key, 0.0) + parse_quantity(amount)
    usage = cluster_queue_usage(cluster_queue)
    return all(parse_quantity(usage.get(flavor, {}).get(resource, {}).get("used", "0")) >= amount
               for (flavor, resource), amount in needed.items())
