# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KServe InferenceService on/off logic, as pure functions over object dicts.

Why ``auto`` means the stop annotation: with KServe's default autoscaler class (``hpa``)
the HPA minimum is clamped to 1 and KServe does not manage ``Deployment.spec.replicas``,
so ``minReplicas: 0`` keeps one pod and its GPUs (the original demo's bug). The annotation
``serving.kserve.io/stop: "true"`` (raw mode since KServe 0.16, backported to RHOAI 3.0)
makes KServe delete the Deployment and HPA; the pod goes, Kueue drops its Workload and the
quota returns to the ClusterQueue. It is also what the RHOAI dashboard's stop/start does,
it keeps ``minReplicas``/``maxReplicas`` untouched for the next start, and it needs no
knowledge of the autoscaler class.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import conditions_summary

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
STOP_ANNOTATION = "serving.kserve.io/stop"
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RAW_MODES = ("RawDeployment", "Standard")
ISVC_LABEL = "serving.kserve.io/inferenceservice"
STRATEGIES = ("auto", "stop_annotation", "autoscaler_none", "deployment_scale", "min_replicas")


class PlanError(GpuaasError):
    """The request cannot be planned (message says why and what to do)."""


class Plan:
    """What to change on the cluster to reach the desired state.

    ``isvc_patch``: JSON merge patch for the ISVC, or None. ``deployment_replicas``: scale
    of Deployment ``<isvc>-predictor`` (deployment_scale), or None. ``before``/``after``:
    only the fields that change (for ``--diff``). ``warnings``: shown to the user.
    """

    def __init__(self) -> None:
        self.isvc_patch: Optional[Dict[str, Any]] = None
        self.deployment_replicas: Optional[int] = None
        self.before: Dict[str, Any] = {}
        self.after: Dict[str, Any] = {}
        self.warnings: List[str] = []

    @property
    def changed(self) -> bool:
        return self.isvc_patch is not None or self.deployment_replicas is not None


def stop_patch(stopped: bool) -> Dict[str, Any]:
    """The merge patch that stops (or starts) a model, as the RHOAI dashboard does."""
    return {"metadata": {"annotations": {STOP_ANNOTATION: "true" if stopped else "false"}}}


def deployment_name(name: str) -> str:
    """Raw-mode predictor Deployment (and HPA) name."""
    return name + "-predictor"


def predictor_selector(name: str) -> str:
    """Label selector of the predictor pods of ISVC ``name``."""
    return "{0}={1},component=predictor".format(ISVC_LABEL, name)


def _annotations(isvc: Dict[str, Any]) -> Dict[str, str]:
    return (isvc.get("metadata") or {}).get("annotations") or {}


def _predictor(isvc: Dict[str, Any]) -> Dict[str, Any]:
    return (isvc.get("spec") or {}).get("predictor") or {}


def is_stopped(isvc: Dict[str, Any]) -> bool:
    """The stop annotation asks KServe to keep the predictor deleted."""
    return str(_annotations(isvc).get(STOP_ANNOTATION, "false")).lower() == "true"


def autoscaler_class(isvc: Dict[str, Any]) -> str:
    """The ISVC's autoscaler class; KServe's default in raw mode is ``hpa``."""
    return _annotations(isvc).get(AUTOSCALER_CLASS_ANNOTATION) or "hpa"


def expected_replicas(isvc: Dict[str, Any], replicas: Optional[int] = None) -> int:
    """Predictor pods a started ISVC runs: ``replicas``, else minReplicas, at least 1.

    At least 1 because under the hpa class KServe clamps the minimum to 1.
    """
    if replicas is not None:
        return replicas
    min_replicas = _predictor(isvc).get("minReplicas")
    return max(1, int(min_replicas)) if min_replicas is not None else 1


class _Builder:
    """Accumulates a merge patch and the before/after diff of one ISVC."""

    def __init__(self, isvc: Dict[str, Any], plan: Plan) -> None:
        self.isvc = isvc
        self.plan = plan

    def annotation(self, key: str, value: str) -> None:
        current = _annotations(self.isvc).get(key)
        if current == value:
            return
        self._record(("metadata", "annotations", key), current, value)

    def predictor_field(self, key: str, value: int) -> None:
        current = _predictor(self.isvc).get(key)
        # maxReplicas is a plain int with omitempty: the API drops 0, so absent means 0.
        if current == value or (key == "maxReplicas" and current is None and value == 0):
            return
        self._record(("spec", "predictor", key), current, value)

    def _record(self, path: tuple, before: Any, after: Any) -> None:
        if self.plan.isvc_patch is None:
            self.plan.isvc_patch = {}
        for target, value in ((self.plan.isvc_patch, after), (self.plan.before, before), (self.plan.after, after)):
            node = target
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value


def plan_change(
    isvc: Dict[str, Any],
    strategy: str,
    on: bool,
    replicas: Optional[int] = None,
    deployment: Optional[Dict[str, Any]] = None,
) -> Plan:
    """Pure planning: current ISVC (+ predictor Deployment) and the wish -> Plan.

    ``on`` False stops the model (``replicas`` 0); ``on`` True starts it, with ``replicas``
    pods when given (None keeps the ISVC's own minReplicas/maxReplicas).
    """
    if strategy not in STRATEGIES:
        raise PlanError("unknown strategy {0!r}; use one of {1}".format(strategy, ", ".join(STRATEGIES)))
    if replicas is not None and replicas < 0:
        raise PlanError("replicas must be >= 0, got {0}".format(replicas))
    plan = Plan()
    build = _Builder(isvc, plan)
    mode = _annotations(isvc).get(DEPLOYMENT_MODE_ANNOTATION)
    if mode is not None and mode not in RAW_MODES:
        plan.warnings.append(
            "InferenceService deploymentMode is {0!r}; these strategies are designed for raw "
            "deployments (RawDeployment/Standard) as used by RHOAI 3.0.".format(mode)
        )
    if on and is_stopped(isvc):
        # Every strategy must lift a stop, or nothing would ever run.
        build.annotation(STOP_ANNOTATION, "false")

    if strategy in ("auto", "stop_annotation"):
        if not on:
            if not is_stopped(isvc):  # KServe reads the value case-insensitively: "True" stops too
                build.annotation(STOP_ANNOTATION, "true")
        elif replicas is not None:
            _set_replicas(build, isvc, replicas, fixed=True)
    elif strategy == "autoscaler_none":
        count = 0 if not on else expected_replicas(isvc, replicas)
        build.annotation(AUTOSCALER_CLASS_ANNOTATION, "none")
        _set_replicas(build, isvc, count, fixed=True)
    elif strategy == "deployment_scale":
        _plan_deployment_scale(isvc, plan, on, replicas, deployment)
    elif strategy == "min_replicas":
        count = 0 if not on else expected_replicas(isvc, replicas)
        _set_replicas(build, isvc, count, fixed=False)
        if count == 0 and autoscaler_class(isvc) != "none":
            plan.warnings.append(
                "strategy min_replicas: under the autoscaler class {0!r} KServe clamps the HPA "
                "minimum to 1 and does not manage Deployment replicas, so minReplicas 0 frees "
                "NO GPU (the pod keeps running). Use strategy auto (stop annotation).".format(autoscaler_class(isvc))
            )
    return plan


def _set_replicas(build: _Builder, isvc: Dict[str, Any], count: int, fixed: bool) -> None:
    """minReplicas = count; maxReplicas = count when ``fixed``, else only raised to fit.

    KServe rejects minReplicas > maxReplicas unless maxReplicas is 0 (unbounded).
    """
    build.predictor_field("minReplicas", count)
    current_max = _predictor(isvc).get("maxReplicas")
    if fixed:
        build.predictor_field("maxReplicas", count)
    elif current_max and int(current_max) < count:
        build.predictor_field("maxReplicas", count)


def _plan_deployment_scale(
    isvc: Dict[str, Any], plan: Plan, on: bool, replicas: Optional[int], deployment: Optional[Dict[str, Any]]
) -> None:
    name = (isvc.get("metadata") or {}).get("name", "")
    target = 0 if not on else expected_replicas(isvc, replicas)
    if deployment is None:
        if not on:
            return  # nothing runs: already off
        if not is_stopped(isvc):
            raise PlanError(
                "Deployment {0} does not exist (is the InferenceService in raw deployment mode "
                "and reconciled by KServe?)".format(deployment_name(name))
            )
        # The stop annotation is lifted above; KServe recreates the Deployment, which the
        # module then scales.
        current = None
    else:
        current = (deployment.get("spec") or {}).get("replicas", 1)
    if current != target:
        plan.deployment_replicas = target
        plan.before["deployment"] = {"name": deployment_name(name), "replicas": current}
        plan.after["deployment"] = {"name": deployment_name(name), "replicas": target}
    if autoscaler_class(isvc) == "none":
        plan.warnings.append(
            "strategy deployment_scale: the InferenceService has autoscalerClass none, so KServe "
            "resets the Deployment to minReplicas on its next reconcile; use strategy autoscaler_none."
        )
    elif target > 0:
        plan.warnings.append(
            "strategy deployment_scale: the HPA {0} may change the replica count between "
            "minReplicas and maxReplicas.".format(deployment_name(name))
        )


# ---------------------------------------------------------------- state


def isvc_summary(isvc: Dict[str, Any]) -> Dict[str, Any]:
    """The ``isvc`` result: name, conditions, stopped, min/max replicas, autoscaler class."""
    meta = isvc.get("metadata") or {}
    predictor = _predictor(isvc)
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "conditions": conditions_summary(isvc),
        "stopped": is_stopped(isvc),
        "min_replicas": predictor.get("minReplicas"),
        "max_replicas": predictor.get("maxReplicas"),
        "autoscaler_class": autoscaler_class(isvc),
        "generation": meta.get("generation"),
        "observed_generation": (isvc.get("status") or {}).get("observedGeneration"),
    }


def isvc_condition(isvc: Dict[str, Any], cond_type: str) -> Optional[str]:
    """Status of a KServe condition (Ready, PredictorReady, Stopped) or None.

    No observedGeneration check here: in raw mode KServe copies the *Deployment's*
    ``status.observedGeneration`` into the ISVC status, so comparing it with the ISVC's
    ``metadata.generation`` is meaningless. Readiness is confirmed with the pods instead
    (see ``pod_ready``).
    """
    for cond in (isvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond.get("status")
    return None


def pod_ready(pod: Dict[str, Any]) -> bool:
    """The pod runs and its Ready condition is True."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def predictor_pod_spec(isvc: Dict[str, Any], pods: List[Dict[str, Any]], deployment: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Best known pod spec of the predictor: a real pod, else the Deployment template,
    else one assembled from the ISVC predictor (model, containers, framework specs).

    The ISVC fallback cannot see containers KServe adds from the ServingRuntime or the
    storage initializer unless they are declared on the ISVC.
    """
    if pods:
        return (pods[0].get("spec") or {})
    if deployment:
        return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    predictor = _predictor(isvc)
    containers = [copy.deepcopy(c) for c in predictor.get("containers") or []]
    for value in predictor.values():
        if isinstance(value, dict) and "resources" in value:
            containers.append({"resources": value.get("resources") or {}})
    init_containers = [copy.deepcopy(c) for c in predictor.get("initContainers") or []]
    return {"containers": containers, "initContainers": init_containers}
