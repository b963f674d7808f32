# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kueue_wait's work: follow a model's (or pods', or one) Workloads to a state, report usage."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc import deployment_name
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import error_message
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import wait_for
from ansible_collections.rhoai.gpuaas.plugins.module_utils.tracking import Tracker, model_sources

STATES = ("pending", "admitted", "finished", "evicted", "absent")


def _goal(state: str) -> str:
    """kueue_wait's ``absent`` is the tracker's ``stopped``: nothing left that holds quota."""
    return "stopped" if state == "absent" else state


def tracker_for(params: Dict[str, Any]) -> Tracker:
    if params["isvc"]:
        return Tracker(params["isvc"], deployment_name(params["isvc"]) + "-")
    if params["pod_selector"]:
        return Tracker(params["pod_selector"])
    return Tracker(params["workload"], follows_pods=False)


def usage_of(client: Any, api_version: str, namespace: str, wanted: Optional[str],
             workloads: List[Dict[str, Any]]) -> Dict[str, Any]:
    """``{"cluster_queue", "cluster_queue_usage"}`` for the named or the workloads' queue."""
    name = wanted
    for workload in workloads:
        if name:
            break
        name = workload.get("cluster_queue")
        if not name and workload.get("queue_name"):
            name = kueue.cluster_queue_of_local_queue(client, api_version, namespace, workload["queue_name"])
    if not name:
        return {}
    cluster_queue = client.get(api_version, "ClusterQueue", name)
    if cluster_queue is None:
        return {"cluster_queue": name, "cluster_queue_usage": {}}
    return {"cluster_queue": name, "cluster_queue_usage": kueue.cluster_queue_usage(cluster_queue)}


def follow(client: Any, params: Dict[str, Any], warn: Callable[[str], None]) -> Dict[str, Any]:
    """The whole of kueue_wait; a failed wait raises with the last state and the usage."""
    if params["wait_timeout"] <= 0:
        raise GpuaasError("wait_timeout must be > 0, got {0}".format(params["wait_timeout"]))
    api_version = kueue.detect_api_version(client, params["kueue_api_version"])
    tracker = tracker_for(params)
    goal = _goal(params["state"])
    target = ("isvc " + params["isvc"] if params["isvc"] else
              "pods " + params["pod_selector"] if params["pod_selector"] else "workload " + params["workload"])
    sources = model_sources(client, params["namespace"], api_version, isvc=params["isvc"],
                            pod_selector=params["pod_selector"], workload=params["workload"],
                            cluster_queue=params["cluster_queue"] if goal == "admitted" else None)
    error: Optional[GpuaasError] = None
    if params["wait"]:
        try:
            done = wait_for(sources, lambda s: tracker.reached(goal, s), lambda s: tracker.dead_end(goal, s),
                            tracker.summary, timeout=params["wait_timeout"],
                            description="Kueue workloads of {0} in namespace {1} to be {2}".format(
                                target, params["namespace"], params["state"]))
            summary, reached = tracker.summary(done.state), True
        except GpuaasError as exc:
            error, summary, reached = exc, dict(exc.result), False
    else:
        state = {s.name: s.list_fn()[0] for s in sources}
        summary, reached = tracker.summary(state), tracker.reached(goal, state)
    summary.setdefault("workloads", [])
    try:
        summary.update(usage_of(client, api_version, params["namespace"], params["cluster_queue"], summary["workloads"]))
    except Exception as exc:  # usage is a bonus: never hide the wait's own outcome
        warn("Could not read ClusterQueue usage: {0}".format(error_message(exc)))
    summary.update(api_version=api_version, reached=reached, changed=False)
    if error is not None:
        raise GpuaasError(error.msg, **summary)
    return summary
