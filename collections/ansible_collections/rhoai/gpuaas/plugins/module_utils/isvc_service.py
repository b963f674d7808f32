# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""isvc_replicas' work: read, plan, preflight, write (or dry-run), wait.

Every write goes to the API server; in check mode with ``dryRun=All``, so admission
webhooks (KServe's validation, Kueue's, RHOAI's) answer as they would for real and the diff
shows what the server would store, not a local guess.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import api_source, wait_for
from ansible_collections.rhoai.gpuaas.plugins.module_utils.tracking import Tracker, model_sources

DEPLOYMENT_API = "apps/v1"
WAIT_GOALS = ("stopped", "queued", "pending", "admitted", "ready")


def kueue_version(client: Any, requested: str) -> Optional[str]:
    """Kueue API version, or None when auto-detection finds no Kueue."""
    try:
        return kueue.detect_api_version(client, requested)
    except kueue.KueueError:
        if requested and requested != "auto":
            raise
        return None


def check_coverage(client: Any, kueue_api: str, isvc: Dict[str, Any], pods: List[Dict[str, Any]],
                   deployment: Optional[Dict[str, Any]]) -> None:
    """Fail unless the ClusterQueue behind the ISVC's LocalQueue covers every requested resource."""
    meta = isvc.get("metadata") or {}
    namespace = meta.get("namespace")
    queue_name = (meta.get("labels") or {}).get(kueue.QUEUE_LABEL) or "default"
    cq_name = kueue.cluster_queue_of_local_queue(client, kueue_api, namespace, queue_name)
    if cq_name is None:
        raise GpuaasError(
            "Kueue cannot admit InferenceService {0}: LocalQueue {1!r} does not exist in namespace {2} "
            "(from label {3}, or Kueue's default). Create the LocalQueue or fix the label.".format(
                meta.get("name"), queue_name, namespace, kueue.QUEUE_LABEL))
    cluster_queue = client.get(kueue_api, "ClusterQueue", cq_name)
    if cluster_queue is None:
        raise GpuaasError("ClusterQueue {0} (behind LocalQueue {1}/{2}) does not exist.".format(cq_name, namespace, queue_name))
    missing = kueue.uncovered_resources(kserve.predictor_pod_spec(isvc, pods, deployment), cluster_queue)
    if missing:
        raise GpuaasError(
            "InferenceService {0} requests {1} which ClusterQueue {2} does not cover "
            "(coveredResources: {3}); Kueue would never admit it (\"resource {4} unavailable in "
            "ClusterQueue\"). Fix: remove the request from the predictor, or add {1} to the "
            "ClusterQueue's coveredResources with a nominalQuota in every flavor.".format(
                meta.get("name"), ", ".join(missing), cq_name,
                ", ".join(kueue.covered_resources(cluster_queue)) or "none", missing[0]))


def _picked(template: Any, obj: Any) -> Any:
    """The values of ``obj`` at the paths of ``template`` (a nested dict of changed fields)."""
    if not isinstance(template, dict):
        return obj
    return {key: _picked(value, (obj or {}).get(key) if isinstance(obj, dict) else None)
            for key, value in template.items()}


def _wait_for_deployment(client: Any, namespace: str, name: str, deadline: float) -> None:
    """After a stop is lifted KServe recreates the Deployment; it must exist before scaling."""
    dep_name = kserve.deployment_name(name)
    wait_for(
        [api_source(client, "deployment", DEPLOYMENT_API, "Deployment", namespace,
                    field_selector="metadata.name=" + dep_name)],
        lambda s: bool(s["deployment"]),
        timeout=max(1.0, deadline - time.monotonic()),
        description="Deployment {0}/{1} to exist".format(namespace, dep_name),
    )


def write_plan(client: Any, plan: kserve.Plan, namespace: str, name: str, dry_run: bool,
               deadline: float) -> Dict[str, Any]:
    """Apply the plan (server-side dry run when asked); returns the diff's ``after`` as the server answered."""
    after: Dict[str, Any] = {}
    if plan.isvc_patch:
        answer = client.patch(kserve.API_VERSION, kserve.KIND, name, namespace, plan.isvc_patch, dry_run=dry_run)
        after.update(_picked({k: v for k, v in plan.after.items() if k != "deployment"}, answer))
    if plan.deployment_replicas is not None:
        deployment = plan.after["deployment"]
        if dry_run and plan.isvc_patch and plan.before["deployment"]["replicas"] is None:
            # The Deployment comes only once KServe saw the real start: nothing to dry-run yet.
            after["deployment"] = dict(deployment)
        else:
            if not dry_run:
                _wait_for_deployment(client, namespace, name, deadline)
            scale = client.patch_scale(DEPLOYMENT_API, "Deployment", deployment["name"], namespace,
                                       plan.deployment_replicas, dry_run=dry_run)
            # Scale's spec.replicas is omitempty: absent is 0
            after["deployment"] = {"name": deployment["name"], "replicas": (scale.get("spec") or {}).get("replicas", 0)}
    return after


def current_state(client: Any, namespace: str, name: str, kueue_api: Optional[str]) -> Dict[str, List[Dict[str, Any]]]:
    """One-shot read of the state the waiter builds (check mode, wait=false)."""
    isvc = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    deployment = client.get(DEPLOYMENT_API, "Deployment", kserve.deployment_name(name), namespace)
    pods = client.list("v1", "Pod", namespace, label_selector=kserve.predictor_selector(name))[0]
    workloads = client.list(kueue_api, "Workload", namespace)[0] if kueue_api else []
    return {"isvc": [isvc] if isvc else [], "deployment": [deployment] if deployment else [],
            "pods": pods, "workloads": workloads}


def apply_replicas(client: Any, params: Dict[str, Any], check_mode: bool, want_diff: bool,
                   warn: Callable[[str], None]) -> Dict[str, Any]:
    """The whole of isvc_replicas; raises GpuaasError with the partial result on failure."""
    started = time.monotonic()
    name, namespace = params["name"], params["namespace"]
    if params["replicas"] is not None and params["replicas"] < 0:
        raise GpuaasError("replicas must be >= 0, got {0}; use 0 or state=stopped to stop the model.".format(params["replicas"]))
    if params["wait_timeout"] <= 0:
        raise GpuaasError("wait_timeout must be > 0, got {0}".format(params["wait_timeout"]))
    on = params["state"] == "started" if params["state"] else params["replicas"] > 0
    replicas = params["replicas"] if on else None
    goal = params["wait_for"] or ("admitted" if on else "stopped")
    if on and goal == "stopped" or not on and goal != "stopped":
        raise GpuaasError("wait_for={0} contradicts {1}: a model being {2} can only be waited for as {3}.".format(
            goal, "state=" + params["state"] if params["state"] else "replicas={0}".format(params["replicas"]),
            "started" if on else "stopped", "queued, admitted or ready" if on else "stopped"))

    isvc = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    if isvc is None:
        raise GpuaasError("InferenceService {0} not found in namespace {1}.".format(name, namespace))
    kueue_api = kueue_version(client, params["kueue_api_version"])
    if kueue_api is None and goal in ("pending", "admitted"):
        raise GpuaasError("wait_for={0} needs Kueue, but the API group {1} is not served.".format(goal, kueue.GROUP))
    deployment = client.get(DEPLOYMENT_API, "Deployment", kserve.deployment_name(name), namespace)
    plan = kserve.plan_change(isvc, params["strategy"], on, replicas, deployment)
    if on and goal in ("admitted", "ready") and kueue_api:
        pods = client.list("v1", "Pod", namespace, label_selector=kserve.predictor_selector(name))[0]
        check_coverage(client, kueue_api, isvc, pods, deployment)
    for warning in plan.warnings:
        warn(warning)

    result: Dict[str, Any] = {"changed": plan.changed, "strategy": params["strategy"], "wait_for": goal}
    deadline = started + params["wait_timeout"]
    if plan.changed:
        after = write_plan(client, plan, namespace, name, check_mode, deadline)
        if want_diff:
            result["diff"] = {"before": plan.before, "after": after}
    expected = plan.deployment_replicas if plan.deployment_replicas is not None else kserve.expected_replicas(isvc, replicas)
    tracker = Tracker.for_isvc(name, expected, kueue_api is not None)
    if check_mode or not params["wait"]:
        result.update(tracker.summary(current_state(client, namespace, name, kueue_api)))
        return result
    try:
        done = wait_for(
            model_sources(client, namespace, kueue_api, isvc=name),
            lambda s: tracker.reached(goal, s), lambda s: tracker.dead_end(goal, s), tracker.summary,
            timeout=max(1.0, deadline - time.monotonic()),
            description="InferenceService {0}/{1} to be {2}".format(namespace, name, goal),
        )
    except GpuaasError as exc:
        exc.result = dict(result, **exc.result)
        raise
    result.update(tracker.summary(done.state))
    return result


# ---------------------------------------------------------------- create or merge-patch


def _desired_part(obj: Dict[str, Any]) -> Dict[str, Any]:
    """What a user writes: labels, annotations and spec (never status, which KServe rewrites)."""
    meta = obj.get("metadata") or {}
    return {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}, "spec": obj.get("spec") or {}}


def merge_definition(client: Any, definition: Dict[str, Any], check_mode: bool, want_diff: bool) -> Dict[str, Any]:
    """Create the InferenceService, or merge-patch it only when the server says the patch would change it.

    A merge patch leaves what it does not mention alone (the stop annotation the handover set
    stays); the server's dry run of the same patch - admission webhooks included - decides
    whether anything would change, so a second run reports no change while KServe keeps
    writing the status.
    """
    meta = definition.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name or not namespace:
        raise GpuaasError("definition needs metadata.name and metadata.namespace")
    current = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    if current is None:
        try:
            created = client.create(dict(definition, apiVersion=kserve.API_VERSION, kind=kserve.KIND), dry_run=check_mode)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:  # the kind is served (discovery found it): the namespace is missing
                raise
            raise GpuaasError("Namespace {0} (definition's metadata.namespace) does not exist: create it first (the "
                              "serving role applies it), or fix the definition".format(namespace)) from None
        result: Dict[str, Any] = {"changed": True, "method": "create", "isvc": kserve.isvc_summary(created)}
        if want_diff:
            result["diff"] = {"before": {}, "after": _desired_part(created)}
        return result
    patch = {"metadata": {k: v for k, v in meta.items() if k in ("labels", "annotations")},
             "spec": definition.get("spec") or {}}
    would = client.patch(kserve.API_VERSION, kserve.KIND, name, namespace, patch, dry_run=True)
    before, after = _desired_part(current), _desired_part(would)
    result = {"changed": before != after, "method": "patch" if before != after else "none"}
    if before != after and not check_mode:
        would = client.patch(kserve.API_VERSION, kserve.KIND, name, namespace, patch)
        after = _desired_part(would)
    result["isvc"] = kserve.isvc_summary(would)
    if want_diff and result["changed"]:
        result["diff"] = {"before": before, "after": after}
    return result
