#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kueue_wait
short_description: Wait for Kueue Workloads to be pending, admitted, finished, evicted or gone
version_added: 0.1.0
description:
  - Waits until the Kueue Workloads of an InferenceService's predictor pods, of the pods
    matching a label selector, or one named Workload reach O(state).
  - Uses one list-then-watch loop per kind (pods and Workloads) with a single deadline;
    survives watch expiry (HTTP 410), API server restarts and throttling.
  - Reports each Workload's state, Kueue's pending reason split into flavors and the
    missing resource, the ClusterQueue and flavor per resource once admitted, and the
    usage of the ClusterQueue.
  - Read-only; check mode behaves like a normal run.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  isvc:
    description:
      - Name of an InferenceService; its predictor pods (label
        C(serving.kserve.io/inferenceservice=<isvc>), C(component=predictor)) are followed.
      - Exactly one of O(isvc), O(pod_selector) and O(workload) is required.
    type: str
  pod_selector:
    description:
      - Label selector of the pods whose Workloads are followed, for example C(app=llm).
    type: str
  workload:
    description:
      - Name of one Workload.
    type: str
  namespace:
    description:
      - Namespace of the pods or the Workload.
    type: str
    required: true
  state:
    description:
      - V(pending) - Kueue evaluated every Workload and did not admit it (C(QuotaReserved=False));
        the result then carries the parsed reason.
      - V(admitted) - every Workload is admitted. Fails at once when a Workload can never be
        admitted (a requested resource the ClusterQueue does not cover, a missing queue).
      - V(finished) / V(evicted) - every Workload has that condition.
      - V(absent) - no Workload is left (the pods and their Workloads are gone).
      - For pod targets every pod must have its Workload, and at least one pod must exist
        (except for V(absent)).
    type: str
    choices: [pending, admitted, finished, evicted, absent]
    default: admitted
  timeout:
    description:
      - Seconds to wait in total. On timeout the task fails and the message includes the
        last state seen (Workload states, Kueue's message).
    type: int
    default: 300
  cluster_queue:
    description:
      - ClusterQueue whose usage is returned in RV(cluster_queue_usage). Defaults to the
        one that admitted the Workloads, or the one behind their LocalQueue.
      - When set with O(state=admitted), the wait also lasts until this ClusterQueue's reported
        usage counts the admitted Workloads (Kueue updates it a moment after the admission), so
        the usage returned is never older than the admission.
    type: str
  api_version:
    description:
      - Kueue API version, V(v1beta1) (Kueue 0.14, Red Hat build of Kueue 1.2),
        V(v1beta2) (Kueue 0.15+), or V(auto) to prefer v1beta2 when the API server serves it.
    type: str
    default: auto
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
notes:
  - Part of the action group C(rhoai.gpuaas.k8s), so connection options can be set once
    with C(module_defaults).
seealso:
  - module: rhoai.gpuaas.isvc_replicas
"""

EXAMPLES = r"""
- name: Expect devstral-2 to be held back by Kueue
  rhoai.gpuaas.kueue_wait:
    isvc: devstral-2
    namespace: private-ai
    state: pending
    timeout: 120
  register: queued

- name: Show why
  ansible.builtin.debug:
    msg: "{{ queued.workloads[0].pending.resource }}: {{ queued.workloads[0].pending.more_needed }} more needed"

- name: Wait until Kueue admits it (after another model released its GPUs)
  rhoai.gpuaas.kueue_wait:
    isvc: devstral-2
    namespace: private-ai
    state: admitted
    timeout: 300
    cluster_queue: rhoai-main-queue

- name: Wait for the Workloads of some pods to disappear
  rhoai.gpuaas.kueue_wait:
    pod_selector: app=batch-llm
    namespace: private-ai
    state: absent
    api_version: v1beta1
"""

RETURN = r"""
workloads:
  description: The Workloads followed, in their final (or last seen) state.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workload name (C(pod-<pod>-<hash>) for pods).
      type: str
    namespace:
      description: Namespace.
      type: str
    state:
      description: One of pending, quota_reserved, admitted, evicted, finished.
      type: str
    message:
      description: Kueue's message explaining the state.
      type: str
    pending:
      description:
        - Parsed pending message when the state is pending, else null.
        - C(flavors) lists C({name, reason}) per flavor tried, C(resource) the first
          resource short of quota or not covered, C(more_needed) Kueue's "N more needed"
          (null when the request exceeds the flavor's maximum capacity), C(reasons) every
          reason verbatim.
      type: dict
      sample: {"flavors": [{"name": "nvidia-l4-1gpu", "reason": "doesn't match node affinity"},
               {"name": "nvidia-l4-4gpu", "reason": "insufficient unused quota for nvidia.com/gpu, 4 more needed"}],
               "resource": "nvidia.com/gpu", "more_needed": "4", "reasons": []}
    queue_name:
      description: LocalQueue of the Workload.
      type: str
    cluster_queue:
      description: ClusterQueue that admitted it (null until admitted).
      type: str
    flavors:
      description: Flavor assigned per resource once admitted.
      type: dict
      sample: {"nvidia.com/gpu": "nvidia-l4-4gpu", "cpu": "nvidia-l4-4gpu"}
    pod:
      description: Name of the owning Pod, if any.
      type: str
pods:
  description: Pods followed (pod targets only), C({name, phase, gated, node, ready, terminating}).
  returned: when isvc or pod_selector is used
  type: list
  elements: dict
cluster_queue_usage:
  description: Per flavor and resource, C(used) (status.flavorsUsage) and C(nominal) quota.
  returned: when a ClusterQueue is known
  type: dict
  sample: {"nvidia-l4-4gpu": {"nvidia.com/gpu": {"used": "4", "nominal": "4"}}}
cluster_queue:
  description: Name of the ClusterQueue reported in RV(cluster_queue_usage).
  returned: when a ClusterQueue is known
  type: str
api_version:
  description: Kueue API version used.
  returned: always
  type: str
  sample: kueue.x-k8s.io/v1beta2
elapsed:
  description: Seconds waited.
  returned: always
  type: float
"""

import time
from typing import Any, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.isvc import predictor_selector
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


def matches(workload: Dict[str, Any], state: str) -> bool:
    """The workload is in the requested state (pending means "assessed and refused")."""
    if state == "pending":
        return kueue.assessed_pending(workload)
    return kueue.workload_state(workload) == state


class Target:
    """What the module follows; turns the waiter's raw state into workloads and pods."""

    def __init__(self, params: Dict[str, Any]) -> None:
        self.params = params
        self.state = params["state"]
        self.pod_selector: Optional[str] = None
        prefix = None
        if params["isvc"]:
            self.pod_selector = predictor_selector(params["isvc"])
            prefix = params["isvc"] + "-predictor-"
        elif params["pod_selector"]:
            self.pod_selector = params["pod_selector"]
        self.links = kueue.PodWorkloads(prefix)

    def sources(self, client: Any, api_version: str) -> List[Any]:
        namespace = self.params["namespace"]
        if self.pod_selector is None:
            sources = [api_source(client, "workloads", api_version, "Workload", namespace,
                                  field_selector="metadata.name=" + self.params["workload"])]
        else:
            sources = [
                api_source(client, "pods", "v1", "Pod", namespace, label_selector=self.pod_selector),
                api_source(client, "workloads", api_version, "Workload", namespace),
            ]
        if self.state == "admitted" and self.params["cluster_queue"]:
            # the usage it reports must already count the admitted workloads (see done)
            sources.append(api_source(client, "clusterqueues", api_version, "ClusterQueue",
                                      field_selector="metadata.name=" + self.params["cluster_queue"]))
        return sources

    def view(self, state: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
        """{"pods": live pods, "workloads": the workloads that belong to the target}."""
        if self.pod_selector is None:
            return {"pods": None, "workloads": state["workloads"]}
        self.links.observe(state["pods"])
        live = [p for p in state["pods"] if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return {"pods": live, "workloads": self.links.select(state["workloads"])}

    def done(self, state: Dict[str, List[Dict[str, Any]]]) -> bool:
        view = self.view(state)
        workloads = view["workloads"]
        if self.state == "absent":
            return not workloads
        if view["pods"] is not None:
            if not view["pods"]:
                return False
            per_pod = kueue.workloads_of_pods(workloads, view["pods"])
            if not all(per_pod.values()):
                return False
            workloads = [w for ws in per_pod.values() for w in ws]
        if not workloads or not all(matches(w, self.state) for w in workloads):
            return False
        return all(kueue.usage_reflects(cq, workloads) for cq in state.get("clusterqueues", []))

    def failed(self, state: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
        if self.state != "admitted":
            return None
        for workload in self.view(state)["workloads"]:
            reason = kueue.terminal_reason(workload)
            if reason:
                return reason
        return None

    def summary(self, state: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
        view = self.view(state)
        result: Dict[str, Any] = {"workloads": [kueue.workload_summary(w) for w in view["workloads"]]}
        if view["pods"] is not None:
            result["pods"] = [kueue.pod_summary(p) for p in view["pods"]]
        return result


def usage_of(client: Any, api_version: str, namespace: str, wanted: Optional[str], workloads: List[Dict[str, Any]]) -> Dict[str, Any]:
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


def main() -> None:
    argument_spec = auth_argument_spec(
        isvc=dict(type="str"),
        pod_selector=dict(type="str"),
        workload=dict(type="str"),
        namespace=dict(type="str", required=True),
        state=dict(type="str", default="admitted", choices=["pending", "admitted", "finished", "evicted", "absent"]),
        timeout=dict(type="int", default=300),
        cluster_queue=dict(type="str"),
        api_version=dict(type="str", default="auto"),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("isvc", "pod_selector", "workload")],
        required_one_of=[("isvc", "pod_selector", "workload")],
    )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0, got {0}".format(params["timeout"]))
    started = time.monotonic()
    try:
        client = connect(module)
        api_version = kueue.detect_api_version(client, params["api_version"])
    except (K8sError, kueue.KueueError) as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # an API answer (e.g. 403 on discovery): one line, no headers
        if getattr(exc, "status", None) is None:
            raise
        module.fail_json(msg="Kubernetes API error: {0}".format(error_message(exc)))

    target = Target(params)
    description = "Kueue workloads of {0} in namespace {1} to be {2}".format(
        "isvc " + params["isvc"] if params["isvc"] else
        "pods " + params["pod_selector"] if params["pod_selector"] else
        "workload " + params["workload"],
        params["namespace"], params["state"],
    )
    try:
        result = wait_for(target.sources(client, api_version), target.done, target.failed,
                          target.summary, timeout=params["timeout"], description=description)
        summary = target.summary(result.state)
        error = None
    except WaitError as exc:
        summary = exc.last_state or {"workloads": []}
        error = exc.message
    try:
        summary.update(usage_of(client, api_version, params["namespace"], params["cluster_queue"], summary["workloads"]))
    except Exception as exc:  # usage is a bonus: never hide the wait's own outcome
        module.warn("Could not read ClusterQueue usage: {0}".format(exc))
    summary.update(api_version=api_version, elapsed=round(time.monotonic() - started, 3), changed=False)
    if error:
        module.fail_json(msg=error, **summary)
    module.exit_json(**summary)


if __name__ == "__main__":
    main()
