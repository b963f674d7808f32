#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: isvc_replicas
short_description: Start, stop or resize a KServe InferenceService so that its GPUs really come and go
version_added: 0.1.0
description:
  - Turns an InferenceService (raw deployment mode, as in Red Hat OpenShift AI 3.0) on or off,
    or sets its replica count, and waits until the predictor pods and their Kueue Workloads
    reach the requested state.
  - The default strategy V(auto) stops with the annotation C(serving.kserve.io/stop=true) -
    KServe then deletes the predictor Deployment, the pod goes away and Kueue returns its
    GPU quota at once. Patching C(minReplicas) to 0 (strategy V(min_replicas), the approach
    of the original demo) frees no GPU under KServe's default C(hpa) autoscaler class,
    because KServe clamps the HPA minimum to 1.
  - Runs preflight checks before changing anything - the InferenceService exists, the
    replica count is valid and, when waiting for V(admitted) or V(ready), every resource the
    predictor requests is covered by the ClusterQueue behind its LocalQueue (otherwise Kueue
    never admits the pod).
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  name:
    description: Name of the InferenceService.
    type: str
    required: true
  namespace:
    description: Namespace of the InferenceService.
    type: str
    required: true
  replicas:
    description:
      - Number of predictor replicas; V(0) stops the model, more than 0 starts it with that
        many replicas (C(minReplicas) and C(maxReplicas) are both set to it, except for
        V(deployment_scale) which scales the Deployment).
      - Exactly one of O(replicas) and O(state) is required.
    type: int
  state:
    description:
      - V(stopped) is O(replicas=0); V(started) starts the model with the replica counts
        already in the InferenceService.
    type: str
    choices: [started, stopped]
  strategy:
    description:
      - How to change the replica count.
      - V(auto) - same as V(stop_annotation); chosen because it is the one mechanism that
        frees the GPU whatever the autoscaler class, and what the RHOAI dashboard does.
      - V(stop_annotation) - off sets C(serving.kserve.io/stop=true); on sets it to C(false)
        and, with O(replicas), sets C(minReplicas)=C(maxReplicas)=O(replicas).
      - V(autoscaler_none) - sets C(serving.kserve.io/autoscalerClass=none) and
        C(minReplicas)=C(maxReplicas)=N; KServe then sets the Deployment's replicas to N.
      - V(deployment_scale) - scales Deployment C(<name>-predictor) through its scale
        subresource (the HPA reports C(ScalingDisabled) at 0).
      - V(min_replicas) - patches C(spec.predictor.minReplicas) only. Warns, because under the
        default C(hpa) class C(minReplicas=0) keeps one pod and its GPUs.
      - Starting always lifts a C(serving.kserve.io/stop=true) annotation.
    type: str
    choices: [auto, stop_annotation, autoscaler_none, deployment_scale, min_replicas]
    default: auto
  wait:
    description:
      - V(none) - return after the change.
      - V(stopped) - no predictor pod and none of their Kueue Workloads is left (GPUs freed).
      - V(queued) - the predictor pods exist and Kueue has a Workload for each (admitted or not).
      - V(admitted) - every predictor pod's Workload is admitted (the GPUs are granted; the
        model may still be loading). Fails at once when Kueue can never admit it.
      - V(ready) - the InferenceService is C(Ready=True), not C(Stopped), and the expected
        number of predictor pods is Ready.
      - Default - V(stopped) when turning off, V(admitted) when turning on (the GPU handover
        is settled then; model loading can take much longer, use V(ready) for it).
    type: str
    choices: [none, stopped, queued, admitted, ready]
  wait_timeout:
    description:
      - Seconds to wait in total; on timeout the task fails and reports the last state seen
        (InferenceService conditions, pods, Workloads and Kueue's pending reason).
    type: int
    default: 600
  kueue_api_version:
    description:
      - Kueue API version, V(v1beta1), V(v1beta2) or V(auto) (v1beta2 when served).
      - When V(auto) and Kueue is not installed, Workloads are ignored (V(queued) and
        V(admitted) then fail).
    type: str
    default: auto
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
notes:
  - Supports check mode (nothing is written and nothing is waited for; C(changed) and the
    diff tell what would change) and diff mode (the changed annotations, replica fields or
    Deployment replicas).
  - Use C(spec.predictor.deploymentStrategy.type=Recreate) on Kueue-managed InferenceServices,
    otherwise a rollout's new pod is gated while the old one holds the quota.
  - Part of the action group C(rhoai.gpuaas.k8s).
seealso:
  - module: rhoai.gpuaas.kueue_wait
"""

EXAMPLES = r"""
- name: Stop mistral-3-bf16 and wait until its 4 GPUs are back in the quota
  rhoai.gpuaas.isvc_replicas:
    name: mistral-3-bf16
    namespace: private-ai
    state: stopped

- name: Start devstral-2 and wait until Kueue admits it
  rhoai.gpuaas.isvc_replicas:
    name: devstral-2
    namespace: private-ai
    state: started
    wait: admitted
    wait_timeout: 300
  register: devstral

- name: Start it without waiting; Kueue may keep it pending
  rhoai.gpuaas.isvc_replicas:
    name: devstral-2
    namespace: private-ai
    replicas: 1
    wait: queued

- name: Scale the predictor Deployment directly
  rhoai.gpuaas.isvc_replicas:
    name: mistral-3-int4
    namespace: private-ai
    replicas: 0
    strategy: deployment_scale
"""

RETURN = r"""
isvc:
  description: The InferenceService after the change.
  returned: success or when the InferenceService exists
  type: dict
  contains:
    name:
      description: Name.
      type: str
    conditions:
      description: Conditions (type, status, reason, message), e.g. Ready, PredictorReady, Stopped.
      type: list
      elements: dict
    stopped:
      description: Whether the stop annotation is C(true).
      type: bool
    min_replicas:
      description: C(spec.predictor.minReplicas).
      type: int
    max_replicas:
      description: C(spec.predictor.maxReplicas).
      type: int
    autoscaler_class:
      description: Autoscaler class (C(hpa) when not annotated).
      type: str
pods:
  description: Predictor pods C({name, phase, gated, node, ready, terminating}).
  returned: always
  type: list
  elements: dict
workloads:
  description: Kueue Workloads of the predictor pods, as returned by M(rhoai.gpuaas.kueue_wait).
  returned: always
  type: list
  elements: dict
pending_reason:
  description: Kueue's message for a pending Workload of the predictor, else null.
  returned: always
  type: str
  sample: "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed"
pending:
  description: RV(pending_reason) parsed (flavors, resource, more_needed, reasons), else null.
  returned: always
  type: dict
strategy:
  description: Strategy applied.
  returned: always
  type: str
wait:
  description: Wait condition used.
  returned: always
  type: str
elapsed:
  description: Seconds spent, including the wait.
  returned: always
  type: float
"""

import time
from typing import Any, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import (
    K8sError,
    auth_argument_spec,
    error_message,
    connect,
    new_module,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import (
    WaitError,
    api_source,
    wait_for,
)

DEPLOYMENT_API = "apps/v1"


class Failure(Exception):
    """Ends the module with ``fail_json`` and the results gathered so far."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Observer:
    """Turns the waiter's raw state (isvc, pods, workloads) into results and predicates."""

    def __init__(self, name: str, expected: int, with_kueue: bool) -> None:
        self.name = name
        self.expected = expected
        self.with_kueue = with_kueue
        self.links = kueue.PodWorkloads(kserve.deployment_name(name) + "-")

    def view(self, state: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
        pods = state.get("pods") or []
        self.links.observe(pods)
        live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        workloads = self.links.select(state.get("workloads") or [])
        isvc = (state.get("isvc") or [None])[0]
        return {"isvc": isvc, "all_pods": pods, "pods": live, "workloads": workloads}

    def done(self, wait: str, state: Dict[str, List[Dict[str, Any]]]) -> bool:
        view = self.view(state)
        pods, workloads = view["pods"], view["workloads"]
        if wait == "stopped":
            return not view["all_pods"] and not workloads
        if len(pods) < self.expected:
            return False
        per_pod = kueue.workloads_of_pods(workloads, pods)
        if wait == "queued":
            return not self.with_kueue or all(per_pod.values())
        if wait == "admitted":
            return all(ws and all(kueue.workload_state(w) == "admitted" for w in ws) for ws in per_pod.values())
        isvc = view["isvc"]
        return (
            isvc is not None
            and kserve.isvc_condition(isvc, "Ready") == "True"
            and kserve.isvc_condition(isvc, "Stopped") != "True"
            and sum(1 for p in pods if kserve.pod_ready(p)) >= self.expected
        )

    def failed(self, state: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
        for workload in self.view(state)["workloads"]:
            reason = kueue.terminal_reason(workload)
            if reason:
                return reason
        if not state.get("isvc"):
            return "InferenceService {0} was deleted".format(self.name)
        return None

    def summary(self, state: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
        view = self.view(state)
        workloads = [kueue.workload_summary(w) for w in view["workloads"]]
        pending = next((w for w in workloads if w["state"] == "pending" and w["message"]), None)
        return {
            "isvc": kserve.isvc_summary(view["isvc"]) if view["isvc"] else None,
            "pods": [kueue.pod_summary(p) for p in view["all_pods"]],
            "workloads": workloads,
            "pending_reason": pending["message"] if pending else None,
            "pending": pending["pending"] if pending else None,
        }


def current_state(client: Any, params: Dict[str, Any], kueue_api: Optional[str]) -> Dict[str, List[Dict[str, Any]]]:
    """One-shot read of the same state the waiter builds (for check mode and wait=none)."""
    name, namespace = params["name"], params["namespace"]
    isvc = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    pods, _rv = client.list("v1", "Pod", namespace, label_selector=kserve.predictor_selector(name))
    workloads = client.list(kueue_api, "Workload", namespace)[0] if kueue_api else []
    return {"isvc": [isvc] if isvc else [], "pods": pods, "workloads": workloads}


def kueue_version(client: Any, requested: str) -> Optional[str]:
    """Kueue API version, or None when auto-detection finds no Kueue."""
    try:
        return kueue.detect_api_version(client, requested)
    except kueue.KueueError:
        return None


def preflight_coverage(
    client: Any, kueue_api: str, isvc: Dict[str, Any], pods: List[Dict[str, Any]], deployment: Optional[Dict[str, Any]]
) -> None:
    """Fail unless the ClusterQueue behind the ISVC's LocalQueue covers every requested resource."""
    meta = isvc.get("metadata") or {}
    namespace = meta.get("namespace")
    queue_name = (meta.get("labels") or {}).get(kueue.QUEUE_LABEL) or "default"
    cq_name = kueue.cluster_queue_of_local_queue(client, kueue_api, namespace, queue_name)
    if cq_name is None:
        raise Failure(
            "Kueue cannot admit InferenceService {0}: LocalQueue {1!r} does not exist in namespace {2} "
            "(from label {3}, or Kueue's default). Create the LocalQueue or fix the label.".format(
                meta.get("name"), queue_name, namespace, kueue.QUEUE_LABEL)
        )
    cluster_queue = client.get(kueue_api, "ClusterQueue", cq_name)
    if cluster_queue is None:
        raise Failure("ClusterQueue {0} (behind LocalQueue {1}/{2}) does not exist.".format(cq_name, namespace, queue_name))
    pod_spec = kserve.predictor_pod_spec(isvc, pods, deployment)
    missing = kueue.uncovered_resources(pod_spec, cluster_queue)
    if missing:
        raise Failure(
            "InferenceService {0} requests {1} which ClusterQueue {2} does not cover "
            "(coveredResources: {3}); Kueue would never admit it (\"resource {4} unavailable in "
            "ClusterQueue\"). Fix: remove the request from the predictor, or add {1} to the "
            "ClusterQueue's coveredResources with a nominalQuota in every flavor.".format(
                meta.get("name"), ", ".join(missing), cq_name,
                ", ".join(kueue.covered_resources(cluster_queue)) or "none", missing[0])
        )


def run(module: Any) -> Dict[str, Any]:
    params = module.params
    started = time.monotonic()
    name, namespace = params["name"], params["namespace"]
    if params["replicas"] is not None and params["replicas"] < 0:
        raise Failure("replicas must be >= 0, got {0}; use 0 or state=stopped to stop the model.".format(params["replicas"]))
    if params["wait_timeout"] <= 0:
        raise Failure("wait_timeout must be > 0, got {0}".format(params["wait_timeout"]))
    on = params["state"] == "started" if params["state"] else params["replicas"] > 0
    replicas = params["replicas"] if on else None
    wait = params["wait"] or ("admitted" if on else "stopped")

    client = connect(module)
    isvc = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    if isvc is None:
        raise Failure("InferenceService {0} not found in namespace {1}.".format(name, namespace))
    kueue_api = kueue_version(client, params["kueue_api_version"])
    if kueue_api is None and wait in ("queued", "admitted"):
        raise Failure("wait={0} needs Kueue, but the API group {1} is not served.".format(wait, kueue.GROUP))
    deployment = client.get(DEPLOYMENT_API, "Deployment", kserve.deployment_name(name), namespace)
    plan = kserve.plan_change(isvc, params["strategy"], on, replicas, deployment)
    if on and wait in ("admitted", "ready") and kueue_api:
        pods = client.list("v1", "Pod", namespace, label_selector=kserve.predictor_selector(name))[0]
        preflight_coverage(client, kueue_api, isvc, pods, deployment)
    for warning in plan.warnings:
        module.warn(warning)

    result: Dict[str, Any] = {"changed": plan.changed, "strategy": params["strategy"], "wait": wait}
    if module._diff:
        result["diff"] = {"before": plan.before, "after": plan.after}
    deadline = started + params["wait_timeout"]
    if plan.changed and not module.check_mode:
        if plan.isvc_patch:
            isvc = client.patch(kserve.API_VERSION, kserve.KIND, name, namespace, plan.isvc_patch)
        if plan.deployment_replicas is not None:
            scale_deployment(client, namespace, name, plan.deployment_replicas, deadline, result)

    expected = plan.deployment_replicas if plan.deployment_replicas is not None else kserve.expected_replicas(isvc, replicas)
    observer = Observer(name, expected, kueue_api is not None)
    if module.check_mode or wait == "none":
        result.update(observer.summary(current_state(client, params, kueue_api)))
    else:
        sources = [
            api_source(client, "isvc", kserve.API_VERSION, kserve.KIND, namespace, field_selector="metadata.name=" + name),
            api_source(client, "pods", "v1", "Pod", namespace, label_selector=kserve.predictor_selector(name)),
        ]
        if kueue_api:
            sources.append(api_source(client, "workloads", kueue_api, "Workload", namespace))
        try:
            done = wait_for(
                sources, lambda s: observer.done(wait, s), observer.failed, observer.summary,
                timeout=max(1.0, deadline - time.monotonic()),
                description="InferenceService {0}/{1} to be {2}".format(namespace, name, wait),
            )
        except WaitError as exc:
            result.update(exc.last_state or {})
            result["elapsed"] = round(time.monotonic() - started, 3)
            raise Failure(exc.message, **result)
        result.update(observer.summary(done.state))
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def scale_deployment(client: Any, namespace: str, name: str, replicas: int, deadline: float, result: Dict[str, Any]) -> None:
    """Scale ``<name>-predictor``, first waiting for KServe to (re)create it after a stop."""
    dep_name = kserve.deployment_name(name)
    try:
        wait_for(
            [api_source(client, "deployment", DEPLOYMENT_API, "Deployment", namespace, field_selector="metadata.name=" + dep_name)],
            lambda s: bool(s["deployment"]),
            timeout=max(1.0, deadline - time.monotonic()),
            description="Deployment {0}/{1} to exist".format(namespace, dep_name),
        )
    except WaitError as exc:
        raise Failure(exc.message, **result)
    client.patch_scale(DEPLOYMENT_API, "Deployment", dep_name, namespace, replicas)


def main() -> None:
    argument_spec = auth_argument_spec(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        replicas=dict(type="int"),
        state=dict(type="str", choices=["started", "stopped"]),
        strategy=dict(type="str", default="auto", choices=list(kserve.STRATEGIES)),
        wait=dict(type="str", choices=["none", "stopped", "queued", "admitted", "ready"]),
        wait_timeout=dict(type="int", default=600),
        kueue_api_version=dict(type="str", default="auto"),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("replicas", "state")],
        required_one_of=[("replicas", "state")],
    )
    try:
        module.exit_json(**run(module))
    except Failure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    except (K8sError, kserve.PlanError, kueue.KueueError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # API answers (403, 422, ...) become a one-line message
        if getattr(exc, "status", None) is None:
            raise
        module.fail_json(msg="Kubernetes API error: {0}".format(error_message(exc)))


if __name__ == "__main__":
    main()
