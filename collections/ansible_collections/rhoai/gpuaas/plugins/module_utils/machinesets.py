# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenShift MachineSet logic for machineset_scale: selection, scaling, readiness.

Readiness is judged by pure functions over plain dicts (MachineSet, its Machines, Nodes)
so the rules can be unit-tested without a cluster. They encode what the platform really
reports: status counters are omitempty (absent means 0, so scaling to 0 is not a wait for
``readyReplicas == 0`` to appear), a Node is only useful for GPU work once the device
plugin publishes the GPUs in ``status.allocatable``, and a Failed Machine is never
replaced by the MachineSet, so waiting for it is pointless.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import Client, K8sError, error_message
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import Source, WaitError, api_source, wait_for

API_VERSION = "machine.openshift.io/v1beta1"
MACHINE_ANNOTATION = "machine.openshift.io/machine"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
# Set by OpenShift on GPU MachineSets; used when the Node has no GPU feature discovery label yet.
GPU_ANNOTATION = "machine.openshift.io/GPU"

Obj = Dict[str, Any]


class MachineSetError(K8sError):
    """Selection or scaling cannot proceed; the message names what to fix."""


# ---------------------------------------------------------------- selection and scaling


def join_selectors(selectors: Optional[Iterable[str]]) -> Optional[str]:
    """Several label selectors mean all of them (AND), as in kubernetes.core.k8s_info."""
    parts = [s.strip() for s in selectors or [] if s and s.strip()]
    return ",".join(parts) or None


def select(client: Client, namespace: str, name: Optional[str] = None,
           label_selectors: Optional[List[str]] = None) -> List[Obj]:
    """The MachineSets to act on; raises MachineSetError when there are none."""
    if name:
        obj = client.get(API_VERSION, "MachineSet", name, namespace)
        if obj is None:
            raise MachineSetError("MachineSet '{0}' not found in namespace '{1}'".format(name, namespace))
        return [obj]
    selector = join_selectors(label_selectors)
    items = client.list(API_VERSION, "MachineSet", namespace, label_selector=selector)[0]
    if not items:
        raise MachineSetError("No MachineSet in namespace '{0}' matches label selector '{1}'".format(namespace, selector))
    return sorted(items, key=lambda o: o["metadata"]["name"])


def scale(client: Client, machineset: Obj, replicas: int, dry_run: bool = False) -> Obj:
    """Set spec.replicas through the scale subresource (what `oc scale` and autoscalers use)."""
    meta = machineset["metadata"]
    return client.patch_scale(API_VERSION, "MachineSet", meta["name"], meta["namespace"], replicas, dry_run=dry_run)


# ---------------------------------------------------------------- pure readiness rules


def spec_replicas(machineset: Obj) -> int:
    """spec.replicas; the API defaults an unset value to 1."""
    value = (machineset.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(machineset: Obj, field: str) -> int:
    """A status counter; absent means 0 (the fields are omitempty)."""
    return int((machineset.get("status") or {}).get(field) or 0)


def generation_current(machineset: Obj) -> bool:
    """The controller has seen the latest spec; an absent observedGeneration means it has not."""
    observed = (machineset.get("status") or {}).get("observedGeneration")
    generation = (machineset.get("metadata") or {}).get("generation")
    if generation is None:
        return True
    return observed is not None and int(observed) >= int(generation)


def owned_machines(machineset: Obj, machines: Iterable[Obj]) -> List[Obj]:
    """Machines whose controller owner is this MachineSet (by uid, so renames cannot confuse)."""
    uid = machineset["metadata"].get("uid")
    return [
        m for m in machines
        if any(ref.get("controller") and ref.get("uid") == uid for ref in m["metadata"].get("ownerReferences") or [])
    ]


def node_index(nodes: Iterable[Obj]) -> Tuple[Dict[str, Obj], Dict[str, Obj]]:
    """Nodes by name and by their ``machine.openshift.io/machine`` annotation."""
    by_name: Dict[str, Obj] = {}
    by_machine: Dict[str, Obj] = {}
    for node in nodes:
        by_name[node["metadata"]["name"]] = node
        ref = (node["metadata"].get("annotations") or {}).get(MACHINE_ANNOTATION)
        if ref:
            by_machine[ref] = node
    return by_name, by_machine


def machine_node(machine: Obj, by_name: Dict[str, Obj], by_machine: Dict[str, Obj]) -> Optional[Obj]:
    """The Node of a Machine: status.nodeRef, else the Node's machine annotation."""
    ref = ((machine.get("status") or {}).get("nodeRef") or {}).get("name")
    if ref and ref in by_name:
        return by_name[ref]
    meta = machine["metadata"]
    return by_machine.get("{0}/{1}".format(meta.get("namespace"), meta["name"]))


def node_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _int_quantity(value: Any) -> int:
    """Integer resource quantity ("4"); anything unparsable counts as 0."""
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return 0


def node_gpus(node: Obj, gpu_resource: str) -> int:
    """GPUs the device plugin published as allocatable."""
    return _int_quantity(((node.get("status") or {}).get("allocatable") or {}).get(gpu_resource))


def expected_gpus(node: Obj, machineset: Obj, min_gpus_per_node: Optional[int]) -> int:
    """GPUs a Node must offer: the option, else GPU feature discovery's count, else the MachineSet's GPU annotation."""
    if min_gpus_per_node is not None:
        return int(min_gpus_per_node)
    label = (node["metadata"].get("labels") or {}).get(GPU_COUNT_LABEL)
    if label is not None:
        return _int_quantity(label)
    return _int_quantity((machineset["metadata"].get("annotations") or {}).get(GPU_ANNOTATION))


def machine_failure(machine: Obj) -> Optional[str]:
    """`errorReason: errorMessage` of a Failed Machine, else None."""
    status = machine.get("status") or {}
    if status.get("phase") != "Failed" and not status.get("errorReason"):
        return None
    return "{0}: {1}".format(status.get("errorReason") or "Failed", status.get("errorMessage") or "no message")


def is_deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def evaluate(machineset: Obj, machines: Iterable[Obj], nodes: Iterable[Obj], gpu_resource: str = "nvidia.com/gpu",
             min_gpus_per_node: Optional[int] = None, previous_nodes: FrozenSet[str] = frozenset()) -> Obj:
    """Where one MachineSet stands against its spec.replicas.

    ``nodes`` are the Nodes eligible for readiness (already filtered by the node selector).
    ``previous_nodes`` are Nodes the MachineSet had before scaling; on scale to 0 they must
    be gone too. Returns ``{name, namespace, replicas, ready, waiting_for: [...],
    failure, machines: [{name, phase}], nodes: [{name, ready, gpus}]}``.
    """
    meta = machineset["metadata"]
    want = spec_replicas(machineset)
    node_list = list(nodes)
    by_name, by_machine = node_index(node_list)
    mine = owned_machines(machineset, machines)
    waiting: List[str] = []
    report_nodes: List[Obj] = []

    if not generation_current(machineset):
        waiting.append("the controller to observe generation {0}".format(meta.get("generation")))
    for field in ("readyReplicas", "availableReplicas"):
        if status_count(machineset, field) != want:
            waiting.append("status.{0} {1} to become {2}".format(field, status_count(machineset, field), want))
    if len(mine) != want:
        waiting.append("{0} Machines to become {1}".format(len(mine), want))

    for machine in mine:
        mname = machine["metadata"]["name"]
        phase = (machine.get("status") or {}).get("phase") or "Pending"
        if is_deleting(machine):
            phase = "Deleting"
        if phase != "Running":
            waiting.append("Machine {0} to be Running (phase {1})".format(mname, phase))
        node = machine_node(machine, by_name, by_machine)
        if node is None:
            if phase == "Running":
                waiting.append("the Node of Machine {0} (not found or not matching node_selector)".format(mname))
            continue
        nname = node["metadata"]["name"]
        ready, gpus = node_ready(node), node_gpus(node, gpu_resource)
        report_nodes.append({"name": nname, "ready": ready, "gpus": gpus})
        if not ready:
            waiting.append("Node {0} to be Ready".format(nname))
        need = expected_gpus(node, machineset, min_gpus_per_node)
        if gpus < need:
            waiting.append("Node {0} to publish {1} {2} (allocatable {3})".format(nname, need, gpu_resource, gpus))
    if want == 0:
        reported = {n["name"] for n in report_nodes}  # a Node whose Machine is still there is listed once
        for nname in sorted(previous_nodes & set(by_name)):
            waiting.append("Node {0} to be deleted".format(nname))
            if nname not in reported:
                report_nodes.append({"name": nname, "ready": node_ready(by_name[nname]),
                                     "gpus": node_gpus(by_name[nname], gpu_resource)})

    return {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "replicas": want,
        "ready": not waiting,
        "waiting_for": waiting,
        "failure": failure(machineset, mine),
        "machines": [{"name": m["metadata"]["name"],
                      "phase": "Deleting" if is_deleting(m) else (m.get("status") or {}).get("phase")} for m in mine],
        "nodes": report_nodes,
    }


def failure(machineset: Obj, mine: List[Obj]) -> Optional[str]:
    """Why the MachineSet cannot reach spec.replicas, or None while it still can.

    A Failed Machine is terminal only when the healthy Machines left are too few: on a
    scale down the controller deletes failed Machines first, so they must not abort it.
    """
    status = machineset.get("status") or {}
    if status.get("errorReason"):
        return "MachineSet {0} reports {1}: {2}".format(
            machineset["metadata"]["name"], status["errorReason"], status.get("errorMessage") or "no message")
    live = [m for m in mine if not is_deleting(m)]
    failed = [(m["metadata"]["name"], machine_failure(m)) for m in live if machine_failure(m)]
    if failed and len(live) - len(failed) < spec_replicas(machineset):
        name, reason = failed[0]
        return ("Machine {0} of MachineSet {1} failed: {2}. A failed Machine is not replaced: delete it or scale "
                "the MachineSet down to retry".format(name, machineset["metadata"]["name"], reason.rstrip(". ")))
    return None


def nodes_of(machineset: Obj, machines: Iterable[Obj], nodes: Iterable[Obj]) -> FrozenSet[str]:
    """Names of the Nodes currently backing the MachineSet's Machines."""
    by_name, by_machine = node_index(nodes)
    found = (machine_node(m, by_name, by_machine) for m in owned_machines(machineset, machines))
    return frozenset(n["metadata"]["name"] for n in found if n is not None)


# ---------------------------------------------------------------- the module's run


class Scaler:
    """One run of machineset_scale: validate, scale (or dry-run), wait, report."""

    def __init__(self, client: Client, params: Dict[str, Any]) -> None:
        self.client = client
        self.params = params
        self.selected: List[Obj] = []
        self.before: Dict[str, int] = {}
        self.after: Dict[str, int] = {}
        self.previous_nodes: Dict[str, FrozenSet[str]] = {}

    @staticmethod
    def validate(params: Dict[str, Any]) -> None:
        """Bad input fails before anything is read or changed."""
        if params["replicas"] < 0:
            raise MachineSetError("replicas must be 0 or more, got {0}".format(params["replicas"]))
        if (params["min_gpus_per_node"] or 0) < 0:
            # A negative minimum would count a Node without any GPU as ready.
            raise MachineSetError("min_gpus_per_node must be 0 or more, got {0}".format(params["min_gpus_per_node"]))
        if params["label_selectors"] is not None and not join_selectors(params["label_selectors"]):
            raise MachineSetError("label_selectors is empty: it would select every MachineSet in namespace '{0}'; "
                                  "give at least one selector".format(params["namespace"]))
        if params["wait"] and params["wait_timeout"] < 1:
            raise MachineSetError("wait_timeout must be at least 1 second, got {0}".format(params["wait_timeout"]))

    def entries(self, state: Dict[str, List[Obj]]) -> List[Obj]:
        """The result entry of each selected MachineSet in this state."""
        by_uid = {m["metadata"]["uid"]: m for m in state["machinesets"]}
        out = []
        for ms in self.selected:
            name = ms["metadata"]["name"]
            current = by_uid.get(ms["metadata"]["uid"])
            entry = evaluate(current or ms, state["machines"], state["nodes"], self.params["gpu_resource"],
                             self.params["min_gpus_per_node"], self.previous_nodes[name])
            if current is None:
                entry.update(ready=False, failure="MachineSet {0} was deleted".format(name))
            out.append(dict(entry, replicas_before=self.before[name], replicas_after=self.after[name]))
        return out

    def sources(self) -> List[Source]:
        p = self.params
        ns = p["namespace"]
        if p["name"]:
            ms_source = api_source(self.client, "machinesets", API_VERSION, "MachineSet", ns,
                                   field_selector="metadata.name={0}".format(p["name"]))
        else:
            ms_source = api_source(self.client, "machinesets", API_VERSION, "MachineSet", ns,
                                   label_selector=join_selectors(p["label_selectors"]))
        node_selector = join_selectors(p["node_selector"]) if p["replicas"] > 0 else None
        return [
            ms_source,
            api_source(self.client, "machines", API_VERSION, "Machine", ns),
            api_source(self.client, "nodes", "v1", "Node", label_selector=node_selector),
        ]

    def read(self) -> Dict[str, List[Obj]]:
        return {s.name: s.list_fn()[0] for s in self.sources()}

    def run(self, check_mode: bool, want_diff: bool) -> Dict[str, Any]:
        p = self.params
        self.validate(p)
        # A cluster without the Machine API fails here with k8s_client.NotServed, which says so.
        self.selected = select(self.client, p["namespace"], p["name"], p["label_selectors"])
        machines = self.client.list(API_VERSION, "Machine", p["namespace"])[0]
        nodes = self.client.list("v1", "Node")[0]
        for ms in self.selected:
            name = ms["metadata"]["name"]
            self.before[name] = self.after[name] = spec_replicas(ms)
            self.previous_nodes[name] = nodes_of(ms, machines, nodes)
        changed = False
        for ms in self.selected:
            name = ms["metadata"]["name"]
            if self.before[name] == p["replicas"]:
                continue
            try:
                answer = scale(self.client, ms, p["replicas"], dry_run=check_mode)
            except Exception as exc:
                raise MachineSetError("Scaling MachineSet '{0}' failed: {1}".format(name, error_message(exc)),
                                      changed=changed) from exc
            self.after[name] = int((answer.get("spec") or {}).get("replicas", 0))  # omitempty: absent is 0
            changed = True
        result: Dict[str, Any] = {"changed": changed}
        if want_diff:
            result["diff"] = {
                "before": {"machinesets": {n: {"replicas": r} for n, r in self.before.items()}},
                "after": {"machinesets": {n: {"replicas": r} for n, r in self.after.items()}},
            }
        if check_mode or not p["wait"]:
            result["machinesets"] = self.entries(self.read())
            return result
        try:
            outcome = wait_for(
                self.sources(),
                done=lambda s: all(e["ready"] for e in self.entries(s)),
                failed=lambda s: next((e["failure"] for e in self.entries(s) if e["failure"]), None),
                summary=lambda s: {"machinesets": self.entries(s)},
                timeout=p["wait_timeout"],
                description="{0} MachineSet(s) to have {1} ready replicas".format(len(self.selected), p["replicas"]),
            )
        except WaitError as exc:
            exc.result["changed"] = changed
            raise
        result["machinesets"] = self.entries(outcome.state)
        return result


def scale_machinesets(client: Client, params: Dict[str, Any], check_mode: bool, want_diff: bool) -> Dict[str, Any]:
    """machineset_scale's whole run (see Scaler)."""
    return Scaler(client, params).run(check_mode, want_diff)
