# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving role's decisions, as pure functions behind filters (no KServe or Kueue logic in Jinja).

- ``plan_states``: which models are on, and whether their state is (re)written this run.
- ``problems``: the preflight - everything that would make Kueue never admit a model, found
  before anything is applied.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc import STOP_ANNOTATION
from ansible_collections.rhoai.gpuaas.plugins.module_utils.kueue import parse_quantity

Obj = Dict[str, Any]
ON_WORDS = ("on", "true")
STATE_WORDS = ("on", "off", "true", "false")


def wanted_on(model: Obj) -> bool:
    """The inventory's state of a model (``on``/``off``; YAML booleans too)."""
    return str(model.get("state")).lower() in ON_WORDS


def plan_states(live: Sequence[Obj], models: Sequence[Obj], enforce: bool, restore_after_teardown: bool) -> List[Obj]:
    """``[{name, exists, on, set_state}]`` in the models' order.

    The inventory's state applies to a new InferenceService, or to all of them when
    ``enforce``; otherwise the live stop annotation is kept (the handover owns it). After a
    teardown (every model of the table exists and is stopped) the inventory's states apply
    again when ``restore_after_teardown``, so site.yml runs the demo again.
    """
    stopped = {}
    for isvc in live:
        meta = isvc.get("metadata") or {}
        stopped[meta.get("name")] = str((meta.get("annotations") or {}).get(STOP_ANNOTATION, "false")).lower() == "true"
    names = [m["name"] for m in models]
    after_teardown = restore_after_teardown and bool(names) and all(stopped.get(n) for n in names)
    reset = enforce or after_teardown
    plan = []
    for model in models:
        exists = model["name"] in stopped
        on = wanted_on(model) if (reset or not exists) else not stopped[model["name"]]
        plan.append({"name": model["name"], "exists": exists, "on": on, "set_state": reset or not exists})
    return plan


def model_requests(model: Obj, gpu_resource: str) -> Dict[str, str]:
    """What the model's predictor requests: cpu, memory, GPUs, plus its extra ``requests``."""
    requests = {"cpu": str(model["cpu"]), "memory": str(model["memory"]), gpu_resource: str(model["gpus"])}
    requests.update({k: str(v) for k, v in (model.get("requests") or {}).items()})
    return requests


def problems(models: Sequence[Obj], flavors: Sequence[Obj], covered: Sequence[str], gpu_resource: str,
             cluster_queue: str, plan: Sequence[Obj]) -> List[str]:
    """Every reason Kueue would never admit a model, or the models that will be on do not fit."""
    found: List[str] = []
    by_name = {f["name"]: f for f in flavors}
    on = {p["name"] for p in plan if p["on"]}
    for model in models:
        name = model["name"]
        if str(model.get("state")).lower() not in STATE_WORDS:
            found.append('{0}: state must be "on" or "off", not "{1}"'.format(name, model.get("state")))
        if model["flavor"] not in by_name:
            found.append("{0}: flavor {1} is not one of the ResourceFlavors ({2})".format(
                name, model["flavor"], ", ".join(by_name)))
        for resource in model_requests(model, gpu_resource):
            if resource not in covered:
                found.append(
                    '{0} requests {1}, which ClusterQueue {2} does not cover (coveredResources: {3}): Kueue would '
                    'never admit it ("resource {1} unavailable in ClusterQueue")'.format(
                        name, resource, cluster_queue, ", ".join(covered)))
        uri = str(model.get("storage_uri") or "")
        if not uri.startswith(("s3://", "oci://")):
            found.append("{0}: storage_uri must start with s3:// or oci://, not {1}".format(name, uri))
    for resource in covered:
        for flavor in flavors:
            if resource not in flavor["quota"]:
                found.append("flavor {0} has no quota for covered resource {1}".format(flavor["name"], resource))
    for flavor in flavors:
        mine = [m for m in models if m["flavor"] == flavor["name"] and m["name"] in on]
        for resource, quota in flavor["quota"].items():
            terms = [(model_requests(m, gpu_resource).get(resource), m["name"]) for m in mine]
            terms = [(amount, n) for amount, n in terms if amount is not None]
            if sum(parse_quantity(term[0]) for term in terms) > parse_quantity(quota) + 1e-9:
                found.append("the models that will be on do not fit flavor {0}: {1} {2} > quota {3}".format(
                    flavor["name"], resource, " + ".join("{0} ({1})".format(a, n) for a, n in terms), quota))
    return found


# ---------------------------------------------------------------- manifests

TP_FLAGS = ("--tensor-parallel-size", "-tp")
PROFILE_NAME = "opendatahub.io/hardware-profile-name"
PROFILE_NAMESPACE = "opendatahub.io/hardware-profile-namespace"


def has_flag(args: Sequence[str], flags: Sequence[str]) -> bool:
    """An argument list sets one of ``flags`` (``--flag=value`` or ``--flag value``)."""
    return any(str(a).split("=", 1)[0] in flags for a in args)


def model_args(model: Obj) -> List[str]:
    """The model's vLLM arguments; ``--tensor-parallel-size`` follows its GPUs unless given.

    48 GB of BF16 weights do not fit one 24 GB L4: a 4-GPU model must shard them (vLLM's
    tensor parallelism), or vLLM loads everything onto GPU 0 and runs out of memory.
    """
    args = [str(a) for a in model.get("args") or []]
    if int(model["gpus"]) > 1 and not has_flag(args, TP_FLAGS):
        args.append("--tensor-parallel-size={0}".format(int(model["gpus"])))
    return args


def model_env(model: Obj) -> List[Obj]:
    """``env`` as a dict (sorted) or a list of EnvVar objects, kept as given."""
    env = model.get("env") or []
    if isinstance(env, dict):
        return [{"name": k, "value": str(v)} for k, v in sorted(env.items())]
    return list(env)


def isvc_manifest(model: Obj, settings: Obj, plan_entry: Obj) -> Obj:
    """The InferenceService of one model, as the RHOAI dashboard would write it.

    ``settings``: namespace, local_queue, deployment_mode, runtime, connection, gpu_resource,
    hardware_profile_namespace. ``plan_entry``: this model's ``plan_states`` entry; the stop
    annotation is only written when ``set_state`` (afterwards the handover owns it).
    """
    gpu = settings["gpu_resource"]
    requests = model_requests(model, gpu)
    limits = dict(requests)
    if model.get("cpu_limit") is not None:
        limits["cpu"] = str(model["cpu_limit"])
    if model.get("memory_limit") is not None:
        limits["memory"] = str(model["memory_limit"])
    annotations = {"serving.kserve.io/deploymentMode": settings["deployment_mode"],
                   "openshift.io/display-name": model.get("display_name") or model["name"]}
    if plan_entry["set_state"]:
        annotations[STOP_ANNOTATION] = "false" if plan_entry["on"] else "true"
    if model.get("hardware_profile"):
        annotations[PROFILE_NAME] = model["hardware_profile"]
        annotations[PROFILE_NAMESPACE] = settings["hardware_profile_namespace"]
    spec_model: Obj = {"modelFormat": {"name": "vLLM"}, "runtime": model.get("runtime") or settings["runtime"],
                       "storageUri": model["storage_uri"], "resources": {"requests": requests, "limits": limits}}
    if str(model["storage_uri"]).startswith("s3://"):
        spec_model["storage"] = {"key": settings["connection"]}
    args = model_args(model)
    if args:
        spec_model["args"] = args
    env = model_env(model)
    if env:
        spec_model["env"] = env
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": model["name"], "namespace": settings["namespace"],
                     "labels": {"kueue.x-k8s.io/queue-name": settings["local_queue"], "opendatahub.io/dashboard": "true"},
                     "annotations": annotations},
        "spec": {"predictor": {
            "minReplicas": 1, "maxReplicas": 1,
            # RollingUpdate would start the new pod while the old one holds the quota: a deadlock under Kueue.
            "deploymentStrategy": {"type": "Recreate"},
            "tolerations": [{"key": gpu, "operator": "Exists", "effect": "NoSchedule"}],
            "model": spec_model}},
    }
