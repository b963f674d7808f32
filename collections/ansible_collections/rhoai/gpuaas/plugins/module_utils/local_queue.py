# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A namespace's LocalQueue pointing at the right ClusterQueue, the way RHOAI 3.0 makes it.

With the DataScienceCluster's Kueue component ``Unmanaged``, the operator creates LocalQueue
``defaultLocalQueueName`` (default ``default``) in every namespace labelled
``kueue.openshift.io/managed=true``, ONCE, pointing at ``defaultClusterQueueName`` (default
``default``), and never updates it; Kueue refuses a change of ``spec.clusterQueue`` (immutable).
So: set the DataScienceCluster's defaults first (future namespaces get the right queue), and
replace a LocalQueue that points elsewhere - delete and create - only while nothing queues
through it; otherwise stop and say so, because deleting it would strand admitted Workloads.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.rhoai.gpuaas.plugins.module_utils import kueue
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import api_source, wait_for

DSC_GROUP = "datasciencecluster.opendatahub.io"
DSC_VERSIONS = ("v2", "v1")


def dsc_api_version(client: Any) -> Optional[str]:
    """The DataScienceCluster API the cluster serves (v2 is stored in RHOAI 3.0), or None without RHOAI."""
    served = client.served_versions(DSC_GROUP)
    return next(("{0}/{1}".format(DSC_GROUP, v) for v in DSC_VERSIONS if v in served), None)


def kueue_component(dsc: Dict[str, Any]) -> Dict[str, Any]:
    return ((dsc.get("spec") or {}).get("components") or {}).get("kueue") or {}


def dsc_patch(dsc: Dict[str, Any], cluster_queue: str, local_queue: str) -> Optional[Dict[str, Any]]:
    """The merge patch that makes the operator's defaults ours, or None when nothing to do.

    Only with Kueue ``Unmanaged``: ``Removed`` turns the operator's queues off, and the old
    ``Managed`` lets the operator own Kueue itself.
    """
    component = kueue_component(dsc)
    if component.get("managementState") != "Unmanaged":
        return None
    wanted = {"defaultClusterQueueName": cluster_queue, "defaultLocalQueueName": local_queue}
    change = {k: v for k, v in wanted.items() if component.get(k, "default") != v}
    return {"spec": {"components": {"kueue": change}}} if change else None


def local_queue_body(api_version: str, namespace: str, name: str, cluster_queue: str) -> Dict[str, Any]:
    return {"apiVersion": api_version, "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "rhoai.gpuaas"}},
            "spec": {"clusterQueue": cluster_queue}}


def users(workloads: List[Dict[str, Any]], name: str) -> List[str]:
    """Workloads that queue through LocalQueue ``name`` (admitted or waiting)."""
    return sorted((w.get("metadata") or {}).get("name") for w in workloads
                  if (w.get("spec") or {}).get("queueName") == name and kueue.workload_state(w) != "finished")


def _create(client: Any, body: Dict[str, Any], cluster_queue: str, dry_run: bool) -> None:
    """Create the LocalQueue; the operator may have just made it (from the defaults set above): fine if it points right."""
    meta = body["metadata"]
    try:
        client.create(body, dry_run=dry_run)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:  # the kind is served (discovery found it): the namespace is missing
            raise GpuaasError("Namespace {0} does not exist: create it first (the serving role applies it), or fix "
                              "namespace".format(meta["namespace"])) from None
        if getattr(exc, "status", None) != 409:
            raise
        made = client.get(body["apiVersion"], "LocalQueue", meta["name"], meta["namespace"]) or {}
        if (made.get("spec") or {}).get("clusterQueue") != cluster_queue:
            raise GpuaasError("LocalQueue {0}/{1} was created meanwhile by someone else (the RHOAI operator?) for "
                              "ClusterQueue {2}; run again to replace it.".format(
                                  meta["namespace"], meta["name"], (made.get("spec") or {}).get("clusterQueue")))


def _refuse_unless_replaceable(client: Any, api: str, params: Dict[str, Any], current: Dict[str, Any],
                               partial: Dict[str, Any]) -> None:
    """Raise when the LocalQueue points elsewhere and may not be replaced: replace=false, or Workloads use it.

    spec.clusterQueue is immutable: the only way is delete and create, and only while unused.
    """
    namespace, name, cq = params["namespace"], params["name"], params["cluster_queue"]
    points_at = (current.get("spec") or {}).get("clusterQueue")
    if points_at == cq:
        return
    queued = users(client.list(api, "Workload", namespace)[0], name)
    if params["replace"] and not queued:
        return
    raise GpuaasError(
        "LocalQueue {0}/{1} points at ClusterQueue {2}, not {3}, and spec.clusterQueue cannot be changed "
        "(Kueue refuses it). {4}".format(
            namespace, name, points_at, cq,
            "It cannot be replaced while Workloads queue through it ({0}): stop those models, or use another "
            "LocalQueue name.".format(", ".join(queued[:5]) + (" ..." if len(queued) > 5 else ""))
            if queued else "Allow its replacement with replace=true."), **partial)


def ensure(client: Any, params: Dict[str, Any], check_mode: bool, want_diff: bool,
           warn: Callable[[str], None]) -> Dict[str, Any]:
    """local_queue's whole run; see the module docstring."""
    namespace, name, cq = params["namespace"], params["name"], params["cluster_queue"]
    api = kueue.detect_api_version(client, params["kueue_api_version"])
    # Bad input fails here, before the DataScienceCluster's defaults are written: a queue for a ClusterQueue
    # that does not exist admits nothing, a namespace that does not exist cannot hold the queue, and a queue
    # pointing elsewhere that may not be replaced would leave the defaults changed and the queue as it was.
    if client.get(api, "ClusterQueue", cq) is None:
        raise GpuaasError("ClusterQueue {0} does not exist: create it first (the serving role applies it before the "
                          "LocalQueue), or fix cluster_queue".format(cq))
    current = client.get(api, "LocalQueue", name, namespace)
    if current is None:
        _create(client, local_queue_body(api, namespace, name, cq), cq, True)
    else:
        _refuse_unless_replaceable(client, api, params, current, {})
    actions: List[str] = []
    result: Dict[str, Any] = {"changed": False, "actions": actions}
    before: Dict[str, Any] = {}
    after: Dict[str, Any] = {}

    dsc_api = dsc_api_version(client) if params["set_dsc_defaults"] else None
    if dsc_api:
        dscs = client.list(dsc_api, "DataScienceCluster")[0]
        if len(dscs) == 1:
            dsc = dscs[0]
            patch = dsc_patch(dsc, cq, name)
            component = kueue_component(dsc)
            result["dsc"] = {"name": dsc["metadata"]["name"], "management_state": component.get("managementState")}
            if patch:
                client.patch(dsc_api, "DataScienceCluster", dsc["metadata"]["name"], None, patch, dry_run=check_mode)
                changed = patch["spec"]["components"]["kueue"]
                before["dsc"] = {k: component.get(k, "default") for k in changed}
                after["dsc"] = dict(changed)
                actions.append("DataScienceCluster {0}: {1}".format(dsc["metadata"]["name"], ", ".join(
                    "{0} {1} -> {2}".format(k, before["dsc"][k], v) for k, v in changed.items())))
            elif component.get("managementState") != "Unmanaged":
                warn("DataScienceCluster {0} has Kueue {1}; RHOAI's Kueue integration (LocalQueues in managed "
                     "namespaces, hardware profiles with a queue) expects Unmanaged with the Red Hat build of Kueue "
                     "operator.".format(dsc["metadata"]["name"], component.get("managementState")))
        elif len(dscs) > 1:
            warn("{0} DataScienceClusters found; their Kueue defaults were left alone.".format(len(dscs)))

    current = client.get(api, "LocalQueue", name, namespace)
    points_at = (current or {}).get("spec", {}).get("clusterQueue")
    before["local_queue"] = {"name": name, "cluster_queue": points_at}
    after["local_queue"] = {"name": name, "cluster_queue": cq}
    if current is None:
        _create(client, local_queue_body(api, namespace, name, cq), cq, check_mode)
        actions.append("LocalQueue {0}/{1} created for ClusterQueue {2}".format(namespace, name, cq))
    elif points_at != cq:
        # Asked again: a model may have started since the check above.
        _refuse_unless_replaceable(client, api, params, current, {"actions": actions, "local_queue": before["local_queue"]})
        client.delete(api, "LocalQueue", name, namespace, dry_run=check_mode)
        if not check_mode and not _gone_or_remade(client, api, namespace, name, cq):
            _create(client, local_queue_body(api, namespace, name, cq), cq, False)
        actions.append("LocalQueue {0}/{1} replaced: it pointed at ClusterQueue {2} (the operator's default), "
                       "now at {3}".format(namespace, name, points_at, cq))
    result["changed"] = bool(actions)
    result["local_queue"] = after["local_queue"] if result["changed"] else before["local_queue"]
    if want_diff and result["changed"]:
        result["diff"] = {"before": before, "after": after}
    return result


def _gone_or_remade(client: Any, api: str, namespace: str, name: str, cluster_queue: str) -> bool:
    """Wait until the deleted LocalQueue is gone (False) or the operator made it anew for ``cluster_queue`` (True).

    Kueue's finalizer holds a deleted LocalQueue for a moment, and RHOAI's operator puts a
    missing one back at once - for the DataScienceCluster's default set above.
    """
    done = wait_for(
        [api_source(client, "lq", api, "LocalQueue", namespace, field_selector="metadata.name=" + name)],
        lambda s: not s["lq"] or ((s["lq"][0].get("spec") or {}).get("clusterQueue") == cluster_queue
                                  and not s["lq"][0]["metadata"].get("deletionTimestamp")),
        timeout=60, description="LocalQueue {0}/{1} to be deleted".format(namespace, name))
    return bool(done.state["lq"])
