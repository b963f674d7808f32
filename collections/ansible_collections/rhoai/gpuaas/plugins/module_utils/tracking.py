# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following one model's pods and Kueue Workloads through a wait: the goals and dead ends.

``Tracker`` is the one reading of "where does this model stand" that isvc_replicas,
kueue_wait and the handover share. It turns the waiter's raw state (``k8s_wait`` sources
named ``isvc``, ``deployment``, ``pods``, ``workloads``, ``clusterqueues``; each optional)
into a view, decides whether a goal is reached (``reached``), whether it can still be
reached (``dead_end``), and summarises what was seen for results and error messages.

Goals:
- ``stopped``: no predictor pod left (terminating ones included) and none of their
  Workloads: the GPUs are back in the quota.
- ``queued``: the expected pods exist and Kueue has a Workload for each.
- ``pending``: ... and Kueue has assessed and refused each (``QuotaReserved=False``).
- ``admitted``: ... and every Workload is admitted.
- ``ready``: the InferenceService is ``Ready`` (not ``Stopped``) and the expected pods are Ready.
- ``finished`` / ``evicted``: every followed Workload is in that state.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import Source, api_source

State = Dict[str, List[Dict[str, Any]]]
GOALS = ("stopped", "queued", "pending", "admitted", "ready", "finished", "evicted")
# Container waiting reasons that no amount of waiting fixes; CrashLoopBackOff only once the
# container has failed more than once (a single restart may be a transient error).
HOPELESS_WAITING = ("InvalidImageName", "ImagePullBackOff", "CreateContainerConfigError")
CRASH_LOOP_RESTARTS = 2


def container_trouble(pod: Dict[str, Any]) -> Optional[str]:
    """Why a pod's container cannot start or keeps crashing, else None.

    The message is the kubelet's reason with the container's own last words (vLLM writes its
    error to the termination message), so a model that does not fit says so at once.
    """
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name")
    for cstatus in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cstatus.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        restarts = int(cstatus.get("restartCount") or 0)
        crash_loop = reason == "CrashLoopBackOff" and restarts >= CRASH_LOOP_RESTARTS
        if not (crash_loop or reason in HOPELESS_WAITING):
            continue
        last = ((cstatus.get("lastState") or {}).get("terminated") or {})
        words = (last.get("message") or waiting.get("message") or "").strip()
        detail = "; last words: {0}".format(_tail(words)) if words else ""
        return "pod {0} container {1}: {2} (restarts {3}){4}".format(name, cstatus.get("name"), reason, restarts, detail)
    return None


def _tail(text: str, limit: int = 600) -> str:
    """The end of a long termination message (the error is at the end of a traceback)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


def deployment_refused(deployment: Optional[Dict[str, Any]]) -> Optional[str]:
    """The ReplicaSet could not create pods (a webhook or quota refused them), else None."""
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return "Deployment {0} cannot create pods: {1}".format(
                (deployment.get("metadata") or {}).get("name"), cond.get("message") or cond.get("reason"))
    return None


class Tracker:
    """One model (an InferenceService, a pod selector or one Workload) across a wait.

    ``pod_prefix`` ties a Workload whose pod is already gone to the model (Kueue removes the
    Workload a moment after the pod), so "stopped" is not declared while it still holds quota.
    """

    def __init__(self, name: Optional[str] = None, pod_prefix: Optional[str] = None, expected: int = 1,
                 with_kueue: bool = True, follows_pods: bool = True) -> None:
        self.name = name
        self.expected = expected
        self.with_kueue = with_kueue
        self.follows_pods = follows_pods
        self.links = kueue.PodWorkloads(pod_prefix)

    @classmethod
    def for_isvc(cls, name: str, expected: int = 1, with_kueue: bool = True) -> "Tracker":
        return cls(name, kserve.deployment_name(name) + "-", expected, with_kueue)

    # ------------------------------------------------------------ view

    def view(self, state: State) -> Dict[str, Any]:
        """``{isvc, deployment, pods (all), live (not terminating), workloads (this model's)}``."""
        pods = state.get("pods") or []
        workloads = state.get("workloads") or []
        if self.follows_pods:
            self.links.observe(pods)
            workloads = self.links.select(workloads)
        return {
            "isvc": (state.get("isvc") or [None])[0],
            "deployment": (state.get("deployment") or [None])[0],
            "pods": pods,
            "live": [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")],
            "workloads": workloads,
        }

    def _per_pod_workloads(self, view: Dict[str, Any]) -> Optional[List[Dict[str, Any]]]:
        """The Workloads of the live pods, or None while a pod has none yet."""
        if not self.follows_pods:
            return view["workloads"]
        if len(view["live"]) < self.expected:
            return None
        per_pod = kueue.workloads_of_pods(view["workloads"], view["live"])
        if not all(per_pod.values()):
            return None
        return [w for ws in per_pod.values() for w in ws]

    # ------------------------------------------------------------ goals

    def reached(self, goal: str, state: State) -> bool:
        """The goal holds in this state (see the module docstring)."""
        view = self.view(state)
        if goal == "stopped":
            return not view["pods"] and not view["workloads"]
        if goal == "ready":
            isvc = view["isvc"]
            return (isvc is not None and kserve.isvc_condition(isvc, "Ready") == "True"
                    and kserve.isvc_condition(isvc, "Stopped") != "True"
                    and sum(1 for p in view["live"] if kserve.pod_ready(p)) >= self.expected)
        if goal == "queued" and not self.with_kueue:
            return len(view["live"]) >= self.expected
        workloads = self._per_pod_workloads(view)
        if not workloads:
            return False
        if goal == "queued":
            return True
        if goal == "pending":
            return all(kueue.assessed_pending(w) for w in workloads)
        if not all(kueue.workload_state(w) == goal for w in workloads):
            return False
        # A usage reported right after an admission must already count it.
        return goal != "admitted" or all(kueue.usage_reflects(cq, workloads) for cq in state.get("clusterqueues") or [])

    def dead_end(self, goal: str, state: State) -> Optional[str]:
        """Why the goal can no longer be reached, else None; the wait then fails at once."""
        if goal in ("stopped", "finished", "evicted"):
            return None
        view = self.view(state)
        if "isvc" in state:
            isvc = view["isvc"]
            if isvc is None:
                return "InferenceService {0} does not exist (deleted?)".format(self.name)
            if kserve.is_stopped(isvc):
                return ("InferenceService {0} is stopped (annotation {1}=true): it runs no pod, so it can never be "
                        "{2}; start it first".format(self.name, kserve.STOP_ANNOTATION, goal))
        refused = deployment_refused(view["deployment"])
        if refused:
            return refused
        for workload in view["workloads"]:
            reason = kueue.terminal_reason(workload)
            if reason:
                return reason
        if goal == "ready":
            for pod in view["live"]:
                trouble = container_trouble(pod)
                if trouble:
                    return "InferenceService {0} cannot become Ready: {1}".format(self.name, trouble)
        return None

    # ------------------------------------------------------------ results

    def summary(self, state: State) -> Dict[str, Any]:
        """What a result or an error reports: the ISVC, its pods and Workloads, Kueue's reason."""
        view = self.view(state)
        workloads = [kueue.workload_summary(w) for w in view["workloads"]]
        pending = next((w for w in workloads if w["state"] == "pending" and w["message"]), None)
        result: Dict[str, Any] = {
            "workloads": workloads,
            "pending_reason": pending["message"] if pending else None,
            "pending": pending["pending"] if pending else None,
        }
        if self.follows_pods:
            result["pods"] = [pod_summary(p) for p in view["pods"]]
        if "isvc" in state:
            result["isvc"] = kserve.isvc_summary(view["isvc"]) if view["isvc"] else None
        return result


def pod_summary(pod: Dict[str, Any]) -> Dict[str, Any]:
    """kueue.pod_summary plus restarts and the container trouble, if any."""
    summary = kueue.pod_summary(pod)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    summary["restarts"] = sum(int(c.get("restartCount") or 0) for c in statuses)
    summary["trouble"] = container_trouble(pod)
    return summary


def model_sources(client: Any, namespace: str, kueue_api: Optional[str], isvc: Optional[str] = None,
                  pod_selector: Optional[str] = None, workload: Optional[str] = None,
                  cluster_queue: Optional[str] = None) -> List[Source]:
    """The watches a Tracker needs, each narrowed by a field or label selector.

    Workloads of pods are watched namespace-wide: a pod's Workload carries no label that
    names the model, only the pod's uid, which is not known before the pod exists.
    """
    sources: List[Source] = []
    if isvc:
        sources += [
            api_source(client, "isvc", kserve.API_VERSION, kserve.KIND, namespace, field_selector="metadata.name=" + isvc),
            api_source(client, "deployment", "apps/v1", "Deployment", namespace,
                       field_selector="metadata.name=" + kserve.deployment_name(isvc)),
        ]
        pod_selector = kserve.predictor_selector(isvc)
    if pod_selector:
        sources.append(api_source(client, "pods", "v1", "Pod", namespace, label_selector=pod_selector))
    if kueue_api:
        sources.append(api_source(client, "workloads", kueue_api, "Workload", namespace,
                                  field_selector="metadata.name=" + workload if workload else None))
    if kueue_api and cluster_queue:
        sources.append(api_source(client, "clusterqueues", kueue_api, "ClusterQueue",
                                  field_selector="metadata.name=" + cluster_queue))
    return sources
