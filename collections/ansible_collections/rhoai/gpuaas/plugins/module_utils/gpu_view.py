# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one view of the GPUs: quota per ClusterQueue and flavor, and where each model stands.

Built from live objects (ClusterQueues, InferenceServices, predictor pods, their Workloads)
by pure functions, so the gpu_board module, the handover and the GPU Switchboard notebook
all read the same truth. ``read_view`` does the reading with narrow lists (one list per
kind, Workloads selected by their pods' uids), so a namespace full of unrelated Workloads
costs nothing.

Model states:
- ``OFF``: the stop annotation is set (KServe keeps no predictor).
- ``ON``: Ready, and none of its Workloads is waiting for quota.
- ``PENDING``: Kueue holds it back (a Workload refused, or a pod still gated).
- ``FAILING``: admitted, but a container cannot start or keeps crashing (e.g. vLLM out of memory).
- ``STARTING``: admitted, not Ready yet (pulling the image, loading the weights).
- ``ABSENT``: no such InferenceService.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc as kserve
from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import WaitTimeout, api_source, wait_for
from ansible_collections.rhoai.gpuaas.plugins.module_utils.tracking import container_trouble, pod_summary

Obj = Dict[str, Any]
GPU = "nvidia.com/gpu"
STATES = ("ON", "STARTING", "PENDING", "FAILING", "OFF", "ABSENT")


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def requested_gpus(pod_spec: Obj, gpu_resource: str = GPU) -> int:
    """GPUs a pod spec asks for (requests, else limits, summed over containers)."""
    total = 0
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(gpu_resource, (resources.get("limits") or {}).get(gpu_resource))
        if value is not None:
            total += int(kueue.parse_quantity(value))
    return total


def model_view(name: str, isvc: Optional[Obj], pods: Sequence[Obj], workloads: Sequence[Obj],
               gpu_resource: str = GPU) -> Obj:
    """Where one model stands; ``pods`` and ``workloads`` may include other models' (filtered here)."""
    mine = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get(kserve.ISVC_LABEL) == name]
    live = [p for p in mine if not (p.get("metadata") or {}).get("deletionTimestamp")]
    own = [w for ws in kueue.workloads_of_pods(workloads, mine).values() for w in ws]
    summaries = [kueue.workload_summary(w) for w in own]
    admitted = [s for s in summaries if s["state"] == "admitted"]
    waiting = any(s["state"] == "pending" for s in summaries)
    # Kueue's verdict (QuotaReserved=False) - a Workload it has not looked at yet has no reason to show
    pending = next((s for w, s in zip(own, summaries) if kueue.assessed_pending(w)), None)
    gated = any(kueue.pod_gated(p) for p in live)
    trouble = next((t for t in (container_trouble(p) for p in live) if t), None)
    ready = isvc is not None and kserve.isvc_condition(isvc, "Ready") == "True"
    spec = kserve.predictor_pod_spec(isvc, live, None) if isvc is not None else {}

    if isvc is None:
        state = "ABSENT"
    elif kserve.is_stopped(isvc):
        state = "OFF"
    elif waiting or (gated and not admitted):
        state = "PENDING"
    elif trouble:
        state = "FAILING"
    elif ready:
        state = "ON"
    else:
        state = "STARTING"
    message = ""
    if state == "PENDING":
        message = (pending or {}).get("message") or ""
    elif state == "FAILING":
        message = trouble or ""
    flavor = next((s["flavors"].get(gpu_resource) for s in admitted if s["flavors"].get(gpu_resource)), None)
    return {
        "name": name,
        "namespace": (isvc or {}).get("metadata", {}).get("namespace"),
        "state": state,
        "gpus": requested_gpus(spec, gpu_resource),
        "flavor": flavor if state != "OFF" else None,
        "ready": ready,
        "admitted": bool(admitted) and len(admitted) == len(summaries),
        "message": message,
        "pending": (pending or {}).get("pending") if state == "PENDING" else None,
        "queue_name": ((isvc or {}).get("metadata", {}).get("labels") or {}).get(kueue.QUEUE_LABEL),
        "url": ((isvc or {}).get("status") or {}).get("url"),
        "workloads": summaries,
        "pods": [pod_summary(p) for p in mine],
    }


def cluster_queue_view(cluster_queue: Obj, models: Sequence[Obj], gpu_resource: str = GPU) -> Obj:
    """Nominal and used GPUs per flavor of one ClusterQueue, from its spec and status only."""
    usage = kueue.cluster_queue_usage(cluster_queue)
    flavors = []
    for flavor, resources in usage.items():
        if gpu_resource not in resources:
            continue
        flavors.append({
            "name": flavor,
            "nominal": int(kueue.parse_quantity(resources[gpu_resource]["nominal"])),
            "used": int(kueue.parse_quantity(resources[gpu_resource]["used"])),
            "models": [m["name"] for m in models if m["flavor"] == flavor and m["state"] in ("ON", "STARTING", "FAILING")],
        })
    flavors.sort(key=lambda f: f["name"])
    status = cluster_queue.get("status") or {}
    return {
        "name": _name(cluster_queue),
        "flavors": flavors,
        "used": sum(f["used"] for f in flavors),
        "nominal": sum(f["nominal"] for f in flavors),
        "pending_workloads": int(status.get("pendingWorkloads") or 0),
        "admitted_workloads": int(status.get("admittedWorkloads") or 0),
    }


def build_view(cluster_queues: Sequence[Obj], isvcs: Sequence[Obj], pods: Sequence[Obj], workloads: Sequence[Obj],
               models: Optional[Sequence[str]] = None, gpu_resource: str = GPU) -> Obj:
    """The whole board as data. ``models`` orders and limits the models (default: every ISVC)."""
    by_name = {_name(i): i for i in isvcs}
    names = list(models) if models else sorted(by_name)
    model_views = [model_view(n, by_name.get(n), pods, workloads, gpu_resource) for n in names]
    queues = [cluster_queue_view(cq, model_views, gpu_resource) for cq in cluster_queues]
    return {
        "cluster_queues": queues,
        "flavors": [dict(f, cluster_queue=q["name"]) for q in queues for f in q["flavors"]],
        "used": sum(q["used"] for q in queues),
        "nominal": sum(q["nominal"] for q in queues),
        "models": model_views,
        "gpu_resource": gpu_resource,
    }


def find_model(view: Obj, name: str) -> Obj:
    """The model's entry (an ABSENT entry when the view does not list it)."""
    return next((m for m in view["models"] if m["name"] == name), {"name": name, "state": "ABSENT", "gpus": 0})


# ---------------------------------------------------------------- rendering


def render(view: Obj, title: Optional[str] = None) -> List[str]:
    """The board as readable lines: a bar per flavor, then a line per model."""
    lines = [title] if title else []
    width = max([len(f["name"]) for f in view["flavors"]] or [10])
    bar_width = max([f["nominal"] for f in view["flavors"]] or [1])
    for queue in view["cluster_queues"]:
        lines.append("ClusterQueue {0} (live usage of {1})".format(queue["name"], view["gpu_resource"]))
        for flavor in queue["flavors"]:
            free = max(flavor["nominal"] - flavor["used"], 0)
            lines.append("  {0}  {1}  {2}/{3}  {4}".format(
                flavor["name"].ljust(width), ("█" * flavor["used"] + "░" * free).ljust(bar_width),
                flavor["used"], flavor["nominal"], ", ".join(flavor["models"])).rstrip())
    lines.append("  GPUs in use: {0}/{1}".format(view["used"], view["nominal"]))
    mwidth = max([len(m["name"]) for m in view["models"]] or [10])
    for model in view["models"]:
        where = model.get("flavor") or ""
        text = "  {0}  {1}  {2}".format(model["name"].ljust(mwidth), "{0} GPU".format(model["gpus"]).ljust(6),
                                        (model["state"].ljust(9) + where).rstrip())
        if model.get("message"):
            text += "  " + model["message"]
        lines.append(text)
    return lines


def explain_pending(view: Obj, name: str) -> List[str]:
    """Why ``name`` waits, in numbers: the GPUs of the models on plus its own against the quota."""
    model = find_model(view, name)
    on = [m for m in view["models"] if m["state"] in ("ON", "STARTING", "FAILING") and m["name"] != name]
    terms = [m["gpus"] for m in on] + [model["gpus"]]
    total = sum(terms)
    lines = []
    if model.get("message"):
        lines.append("{0} is {1}. Kueue says: {2}".format(name, model["state"], model["message"]))
    lines.append("GPUs: {0} = {1} {2} {3} ({4} vs. the quota)".format(
        " + ".join(str(t) for t in terms), total, ">" if total > view["nominal"] else "<=", view["nominal"],
        " + ".join([m["name"] for m in on] + [name])))
    per_flavor = "; ".join("{0} {1}/{2} in use{3}".format(
        f["name"], f["used"], f["nominal"], " (" + ", ".join(f["models"]) + ")" if f["models"] else "")
        for f in view["flavors"])
    more = (model.get("pending") or {}).get("more_needed")
    resource = (model.get("pending") or {}).get("resource")
    lines.append("Per flavor: {0}; {1} needs {2} in one flavor{3}".format(
        per_flavor, name, model["gpus"],
        " (Kueue: {0} more needed for {1})".format(more, resource) if more is not None else ""))
    return lines


def settled(view: Obj, name: str) -> bool:
    """Whether ``name`` has arrived where a start or stop leads, so a one-shot switch can stop watching.

    ON, FAILING and ABSENT are where it stays; PENDING once Kueue gave its verdict (a message);
    OFF once its pods are gone, since only then has Kueue given its GPUs back to the ClusterQueue.
    STARTING, and PENDING without a verdict yet, are on the way.
    """
    model = find_model(view, name)
    state = model["state"]
    if state == "OFF":
        return not model.get("pods")
    if state == "PENDING":
        return bool(model.get("message"))
    return state != "STARTING"


# ---------------------------------------------------------------- switching


def switch(client: Any, namespace: str, name: str, on: Optional[bool] = None, dry_run: bool = False) -> Obj:
    """Turn a model on or off with the stop annotation, as the RHOAI dashboard does; ``on=None`` flips it.

    Only the annotation is written (never replicas): KServe then deletes or recreates the
    predictor and Kueue admits or queues it; ``follow`` shows where that leads. Returns
    ``name``, ``namespace``, ``was_on``, ``on`` and ``changed`` (nothing is written when the
    model already is as asked). ``dry_run`` asks the API server without storing.
    """
    isvc = client.get(kserve.API_VERSION, kserve.KIND, name, namespace)
    if isvc is None:
        raise GpuaasError("InferenceService {0} does not exist in namespace {1}; check the model name "
                          "(and the namespace) you asked to switch.".format(name, namespace))
    was_on = not kserve.is_stopped(isvc)
    want_on = (not was_on) if on is None else bool(on)
    changed = want_on != was_on
    if changed:
        client.patch(kserve.API_VERSION, kserve.KIND, name, namespace, kserve.stop_patch(not want_on), dry_run=dry_run)
    return {"name": name, "namespace": namespace, "was_on": was_on, "on": want_on, "changed": changed}


# ---------------------------------------------------------------- reading


def _cluster_queue_names(client: Any, kueue_api: str, namespace: str, isvcs: Iterable[Obj]) -> List[str]:
    """The ClusterQueues behind the models' LocalQueues (label, else Kueue's default ``default``)."""
    local_queues = {_name(lq): (lq.get("spec") or {}).get("clusterQueue")
                    for lq in client.list(kueue_api, "LocalQueue", namespace)[0]}
    names = []
    for isvc in isvcs:
        queue = ((isvc.get("metadata") or {}).get("labels") or {}).get(kueue.QUEUE_LABEL) or "default"
        cq = local_queues.get(queue)
        if cq and cq not in names:
            names.append(cq)
    return names


def read_view(client: Any, kueue_api: str, namespace: str, cluster_queues: Optional[Sequence[str]] = None,
              models: Optional[Sequence[str]] = None, gpu_resource: str = GPU) -> Obj:
    """Read the objects and build the view: one list per kind, Workloads by their pods' uids."""
    isvcs = client.list(kserve.API_VERSION, kserve.KIND, namespace)[0]
    if models:
        isvcs = [i for i in isvcs if _name(i) in models]
        selector = "{0} in ({1})".format(kserve.ISVC_LABEL, ",".join(models))
    else:
        selector = kserve.ISVC_LABEL
    pods = client.list("v1", "Pod", namespace, label_selector=selector)[0]
    uids = [(p.get("metadata") or {}).get("uid") for p in pods if (p.get("metadata") or {}).get("uid")]
    workloads = []
    if uids:
        workloads = client.list(kueue_api, "Workload", namespace,
                                label_selector="{0} in ({1})".format(kueue.JOB_UID_LABEL, ",".join(uids)))[0]
    names = list(cluster_queues or []) or _cluster_queue_names(client, kueue_api, namespace, isvcs)
    queues = []
    for name in names:
        cq = client.get(kueue_api, "ClusterQueue", name)
        if cq is None:
            raise GpuaasError("ClusterQueue {0} does not exist; deploy the quota first (deploy.yml), or fix "
                              "the cluster_queue option.".format(name))
        queues.append(cq)
    return build_view(queues, isvcs, pods, workloads, models, gpu_resource)


# ---------------------------------------------------------------- expectations


def unmet(view: Obj, expect: Dict[str, str]) -> List[str]:
    """The expectations ``{model: state}`` the view does not meet, as sentences."""
    return ["{0} is {1} (expected {2})".format(name, find_model(view, name)["state"], want)
            for name, want in expect.items() if find_model(view, name)["state"] != want]


def hopeless(view: Obj, expect: Dict[str, str]) -> Optional[str]:
    """Why an expectation can never be met by waiting, else None.

    A model only changes between OFF and on when someone sets the stop annotation, so
    waiting for an OFF model to be ON (or the reverse) is pointless; so is waiting for a
    model Kueue can never admit or whose container keeps crashing.
    """
    for name, want in expect.items():
        model = find_model(view, name)
        state = model["state"]
        if state == want:
            continue
        if state == "ABSENT" or want == "ABSENT":
            return "{0} is {1}, expected {2}".format(name, state, want)
        if (state == "OFF") != (want == "OFF"):
            return "{0} is {1}, expected {2}: only a start or stop changes that (stop annotation {3})".format(
                name, state, want, "set" if state == "OFF" else "not set")
        if state == "FAILING":
            return "{0} is FAILING: {1}".format(name, model["message"])
        if state == "PENDING" and kueue.is_terminal_message(model["message"]):
            return "{0} can never be admitted: {1}".format(name, model["message"])
    return None


def _view_sources(client: Any, kueue_api: str, namespace: str, cluster_queues: Sequence[str],
                  models: Optional[Sequence[str]]) -> List[Any]:
    selector = "{0} in ({1})".format(kserve.ISVC_LABEL, ",".join(models)) if models else kserve.ISVC_LABEL
    sources = [api_source(client, "isvcs", kserve.API_VERSION, kserve.KIND, namespace),
               api_source(client, "pods", "v1", "Pod", namespace, label_selector=selector),
               api_source(client, "workloads", kueue_api, "Workload", namespace)]
    sources += [api_source(client, "cq." + name, kueue_api, "ClusterQueue", field_selector="metadata.name=" + name)
                for name in cluster_queues]
    return sources


def _state_view(cluster_queues: Sequence[str], models: Optional[Sequence[str]],
                gpu_resource: str) -> Callable[[Dict[str, List[Obj]]], Obj]:
    """The view of a waiter's state (the sources of ``_view_sources``)."""
    def view_of(state: Dict[str, List[Obj]]) -> Obj:
        queues = [q for name in cluster_queues for q in state["cq." + name]]
        return build_view(queues, state["isvcs"], state["pods"], state["workloads"], models, gpu_resource)
    return view_of


def await_states(client: Any, kueue_api: str, namespace: str, cluster_queues: Sequence[str],
                 models: Optional[Sequence[str]], expect: Dict[str, str], timeout: float,
                 gpu_resource: str = GPU) -> Obj:
    """Watch until every model of ``expect`` is in its state; fail at once when one cannot get there."""
    view_of = _state_view(cluster_queues, models, gpu_resource)
    done = wait_for(_view_sources(client, kueue_api, namespace, cluster_queues, models),
                    lambda s: not unmet(view_of(s), expect), lambda s: hopeless(view_of(s), expect),
                    lambda s: {"unmet": unmet(view_of(s), expect), "board": render(view_of(s))},
                    timeout=timeout, description="models to be " + ", ".join(
                        "{0} {1}".format(n, w) for n, w in expect.items()))
    return view_of(done.state)


def follow(client: Any, kueue_api: str, namespace: str, cluster_queues: Sequence[str],
           models: Optional[Sequence[str]], on_change: Callable[[Obj], None], seconds: float,
           gpu_resource: str = GPU, until: Optional[Callable[[Obj], bool]] = None) -> Optional[Obj]:
    """Call ``on_change(view)`` after every change the watches see, for ``seconds``; the last view.

    What a live board (the GPU Switchboard) refreshes from: no polling, one list then watches.
    ``until(view)``, asked after each ``on_change``, ends the following early when it is true
    (e.g. ``settled`` after a switch, or a stop request of the board).
    """
    view_of = _state_view(cluster_queues, models, gpu_resource)
    last: Dict[str, Obj] = {}

    def changed(state: Dict[str, List[Obj]]) -> bool:
        last["view"] = view_of(state)
        on_change(last["view"])
        return bool(until and until(last["view"]))
    try:
        wait_for(_view_sources(client, kueue_api, namespace, cluster_queues, models), changed,
                 timeout=seconds, description="the board to change")
    except WaitTimeout:
        pass
    return last.get("view")


def board(client: Any, params: Dict[str, Any]) -> Obj:
    """gpu_board's whole run: the view (awaited when ``expect`` is given), rendered and explained."""
    if params["wait_timeout"] <= 0:
        # Otherwise an unmet ``expect`` would end as a timeout "after -1s", naming no option.
        raise GpuaasError("wait_timeout must be > 0, got {0}".format(params["wait_timeout"]))
    kueue_api = kueue.detect_api_version(client, params["kueue_api_version"])
    expect = {name: str(state).upper() for name, state in (params["expect"] or {}).items()}
    bad = [s for s in expect.values() if s not in STATES]
    if bad:
        raise GpuaasError("expect: {0} is not a model state; use one of {1}".format(bad[0], ", ".join(STATES)))
    models = params["models"] or (list(expect) if expect else None)
    view = read_view(client, kueue_api, params["namespace"], params["cluster_queues"], models, params["gpu_resource"])
    if expect and unmet(view, expect):
        why = hopeless(view, expect)
        if why or not params["wait"]:
            raise GpuaasError("Not as expected: {0}".format(why or "; ".join(unmet(view, expect))),
                              board=render(view, params["title"]), models=view["models"])
        queues = [q["name"] for q in view["cluster_queues"]]
        view = await_states(client, kueue_api, params["namespace"], queues, models, expect,
                            params["wait_timeout"], params["gpu_resource"])
    result = dict(view, changed=False, board=render(view, params["title"]))
    if params["explain"]:
        result["explanation"] = explain_pending(view, params["explain"])
    return result
