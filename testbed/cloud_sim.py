"""Cloud simulator for the local testbed: plays AWS, machine-api and the NVIDIA GPU operator.

It is the only simulated part of the testbed. For every MachineSet
(machine.openshift.io/v1beta1) it keeps spec.replicas Machines, boots each into a kwok
Node after `boot_delay_seconds`, and reports status the way OpenShift's machine-api
does, so our modules can be tested against the same fields they read on a real cluster.

Design: watches on MachineSets, Machines and Nodes only say "something changed"; each
reconcile then lists all three fresh and acts on what it sees (level-triggered), so a
missed event, a 410 or a kube-apiserver restart costs one re-list, never a wrong count.

Lifecycle of a Machine: created with finalizer -> phase Provisioning (instance id,
private IP) -> after the boot delay a Node is created -> phase Provisioned -> once kwok
marks the Node Ready: nodeRef set, phase Running. Instance types listed in
`unavailable_instance_types` fail instead (phase Failed, errorReason CreateError, AWS's
InsufficientInstanceCapacity message), and so do Machines whose AWS providerSpec the
actuator would refuse (no cluster ID label, no AMI, no security group: errorReason
InvalidConfiguration, machine-api-provider-aws's message). The Node's ephemeral storage is the
root volume's size. Deleting a Machine (scale down, or by hand) sets
phase Deleting, force-deletes the pods bound to its Node (there is no kubelet to stop
them), deletes the Node and drops the finalizer.

Nodes are named like AWS private DNS names (ip-10-0-130-7.ec2.internal), not like the
Machine, as on OpenShift on AWS; the Node carries annotation
machine.openshift.io/machine=<namespace>/<machine> and Machine.status.nodeRef names it.

Run: .venv/bin/python testbed/cloud_sim.py --kubeconfig .testbed/kubeconfig --config .testbed/cloud.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

sys.path.insert(0, str(Path(__file__).resolve().parent))
import instance_types_sim as it  # noqa: E402  (sibling module, not an installed package)

GROUP, VERSION = "machine.openshift.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
RESYNC_SECONDS = 30.0
POLL_SECONDS = 0.5
WATCH_SECONDS = 60
REQUEST_TIMEOUT = (5, WATCH_SECONDS + 15)

log = logging.getLogger("cloud_sim")

Obj = dict[str, Any]


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
    """Call the API and return plain JSON, so every object is handled as a dict."""
    resp = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    return json.loads(resp.data or b"{}")


class Watcher(threading.Thread):
    """List+watch one resource forever and call `changed` on every event.

    Reconnects with backoff on any error (apiserver restart, network), re-lists on 410
    Gone, and ends its watch every WATCH_SECONDS so a silently dead connection is noticed.
    """

    def __init__(self, name: str, list_call: Callable[..., Any], changed: threading.Event,
                 stop: threading.Event) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.kind, self.list_call, self.changed, self.stop_event = name, list_call, changed, stop

    def run(self) -> None:
        rv: str | None = None
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    rv = raw(self.list_call)["metadata"]["resourceVersion"]
                    self.changed.set()
                rv = self._watch(rv)
                backoff = 1.0
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch %s: resourceVersion expired, re-listing", self.kind)
                    rv = None
                    continue
                log.warning("watch %s: API error %s %s; retrying in %.0fs",
                            self.kind, exc.status, exc.reason, backoff)
                rv = None
            except Exception as exc:  # a daemon thread must outlive any single failure
                log.warning("watch %s: %s: %s; retrying in %.0fs", self.kind,
                            type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", backoff)
                rv = None
            self.stop_event.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _watch(self, rv: str) -> str | None:
        """Stream events from `rv`; return the last resourceVersion seen, None to re-list.

        Reads the raw event lines itself: kubernetes.watch.Watch cannot report an ERROR
        event when asked not to deserialize, and Node models are not needed here.
        """
        resp = self.list_call(watch=True, resource_version=rv, allow_watch_bookmarks=True,
                              timeout_seconds=WATCH_SECONDS, _preload_content=False,
                              _request_timeout=REQUEST_TIMEOUT)
        try:
            for line in iter_resp_lines(resp):
                if self.stop_event.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        log.info("watch %s: resourceVersion expired, re-listing", self.kind)
                        return None
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if event.get("type") != "BOOKMARK":
                    self.changed.set()
        finally:
            resp.release_conn()
        return rv


class Simulator:
    """Reconciles MachineSets, Machines and Nodes towards what machine-api would do."""

    def __init__(self, api: client.ApiClient, config_path: Path) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.config_path = config_path
        self.rng = random.SystemRandom()
        self.cfg = it.SimConfig()
        self._config_text: str | None = None

    # ---- configuration -------------------------------------------------------------
    def load_config(self) -> bool:
        """Re-read the knobs; return True when they changed. A bad file keeps the old ones."""
        try:
            text = self.config_path.read_text()
        except FileNotFoundError:
            text = ""
        if text == self._config_text:
            return False
        self._config_text = text
        try:
            cfg = it.parse_config(text)
        except ValueError as exc:
            log.warning("config %s invalid (%s); keeping %s", self.config_path, exc, self.cfg)
            return False
        if cfg != self.cfg:
            log.info("config: boot_delay_seconds=%s unavailable_instance_types=%s",
                     cfg.boot_delay_seconds, sorted(cfg.unavailable_instance_types))
        self.cfg = cfg
        return True

    # ---- API shortcuts -------------------------------------------------------------
    def list_machinesets(self, **kw: Any) -> Any:
        return self.custom.list_cluster_custom_object(GROUP, VERSION, "machinesets", **kw)

    def list_machines(self, **kw: Any) -> Any:
        return self.custom.list_cluster_custom_object(GROUP, VERSION, "machines", **kw)

    def list_nodes(self, **kw: Any) -> Any:
        return self.core.list_node(**kw)

    def patch_machine(self, m: Obj, body: Obj, status: bool = False) -> None:
        md = m["metadata"]
        call = (self.custom.patch_namespaced_custom_object_status if status
                else self.custom.patch_namespaced_custom_object)
        call(GROUP, VERSION, md["namespace"], "machines", md["name"], body,
             _request_timeout=REQUEST_TIMEOUT)

    # ---- reconcile -----------------------------------------------------------------
    def reconcile(self) -> float | None:
        """One pass over everything; returns seconds until a boot is due (None: nothing due)."""
        self.load_config()
        machinesets = raw(self.list_machinesets)["items"]
        machines = raw(self.list_machines)["items"]
        nodes = raw(self.list_nodes)["items"]
        node_of = {}
        for node in nodes:
            ref = (node["metadata"].get("annotations") or {}).get(it.MACHINE_ANNOTATION)
            if ref:
                node_of[ref] = node
        by_owner: dict[str, list[Obj]] = {}
        for m in machines:
            for ref in m["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "MachineSet" and ref.get("controller"):
                    by_owner.setdefault(ref["uid"], []).append(m)

        due: list[float] = []
        for m in machines:
            try:
                wait = self.advance_machine(m, node_of, nodes)
                if wait is not None:
                    due.append(wait)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for ms in machinesets:
            if it.is_deleting(ms):
                continue
            owned = self.sync_replicas(ms, by_owner.get(ms["metadata"]["uid"], []))
            nodes_by_machine = {
                m["metadata"]["name"]: node_of.get(f"{m['metadata']['namespace']}/{m['metadata']['name']}")
                for m in owned}
            self.update_machineset_status(ms, owned, nodes_by_machine)
        return min(due) if due else None

    def sync_replicas(self, ms: Obj, owned: list[Obj]) -> list[Obj]:
        """Create or delete Machines to match spec.replicas; return the Machines it now owns."""
        spec = ms.get("spec") or {}
        want = int(spec.get("replicas") or 0)
        live = [m for m in owned if not it.is_deleting(m)]
        result = list(owned)
        for _ in range(want - len(live)):
            result.append(self.create_machine(ms))
        if len(live) > want:
            for m in it.deletion_order(live, spec.get("deletePolicy"), self.rng)[:len(live) - want]:
                self.delete_machine(m, "scale down of MachineSet " + ms["metadata"]["name"])
                result.remove(m)
        return result

    def create_machine(self, ms: Obj) -> Obj:
        md, spec = ms["metadata"], ms.get("spec") or {}
        template = spec.get("template") or {}
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        machine_spec = copy.deepcopy(template.get("spec") or {})
        itype = (((machine_spec.get("providerSpec") or {}).get("value") or {})
                 .get("instanceType", ""))
        probe = {"spec": machine_spec}
        region, zone = it.placement(probe)
        labels.update({"machine.openshift.io/instance-type": itype,
                       "machine.openshift.io/region": region,
                       "machine.openshift.io/zone": zone})
        while True:
            body = {
                "apiVersion": API_VERSION, "kind": "Machine",
                "metadata": {
                    "name": it.machine_name(md["name"], self.rng),
                    "namespace": md["namespace"],
                    "labels": labels,
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                    "finalizers": [it.MACHINE_FINALIZER],
                    "ownerReferences": [{
                        "apiVersion": API_VERSION, "kind": "MachineSet", "name": md["name"],
                        "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}],
                },
                "spec": machine_spec,
            }
            try:
                created = raw(self.custom.create_namespaced_custom_object, GROUP, VERSION,
                              md["namespace"], "machines", body)
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise
        log.info("machine %s/%s: created for MachineSet %s (%s)", md["namespace"],
                 created["metadata"]["name"], md["name"], itype or "no instanceType")
        return created

    def delete_machine(self, m: Obj, why: str) -> None:
        md = m["metadata"]
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, md["namespace"], "machines", md["name"],
                _request_timeout=REQUEST_TIMEOUT)
            log.info("machine %s/%s: delete requested (%s)", md["namespace"], md["name"], why)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def advance_machine(self, m: Obj, node_of: dict[str, Obj], nodes: list[Obj]) -> float | None:
        """Move one Machine a step along its lifecycle; return seconds until its boot is due."""
        md = m["metadata"]
        key = f"{md['namespace']}/{md['name']}"
        status = m.get("status") or {}
        phase = status.get("phase")
        node = node_of.get(key)
        if it.is_deleting(m):
            if it.MACHINE_FINALIZER in (md.get("finalizers") or []):
                self.finish_deletion(m, node)
            return None
        if phase == "Failed":
            return None
        type_name = it.provider_value(m).get("instanceType", "")
        region, zone = it.placement(m)
        if phase in (None, "", "Provisioning") and node is None:
            failure = it.launch_error(m)
            if failure is None and type_name not in it.INSTANCE_TYPES:
                failure = it.unknown_type_error(type_name)
            elif failure is None and type_name in self.cfg.unavailable_instance_types:
                failure = it.capacity_error(type_name, zone)
            if failure:
                self.patch_machine(m, {"status": {
                    "phase": "Failed", "errorReason": failure[0], "errorMessage": failure[1],
                    "lastUpdated": now_iso()}}, status=True)
                log.info("machine %s: Failed %s: %s", key, *failure)
                return None
        if not phase:
            ip = it.pick_ip(self.rng, (a.get("address") for n in nodes
                                       for a in (n.get("status") or {}).get("addresses") or []))
            iid = it.instance_id(self.rng)
            self.patch_machine(m, {"spec": {"providerID": f"aws:///{zone}/{iid}"}})
            self.patch_machine(m, {"status": {
                "phase": "Provisioning", "lastUpdated": now_iso(),
                "providerStatus": {"instanceId": iid, "instanceState": "pending"},
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "InternalDNS", "address": it.node_name(ip, region)},
                    {"type": "Hostname", "address": it.node_name(ip, region)}]}}, status=True)
            log.info("machine %s: Provisioning %s %s in %s, ip %s", key, type_name, iid, zone, ip)
            return self.cfg.boot_delay_seconds
        if phase == "Provisioning":
            age = (datetime.now(timezone.utc) - it.parse_time(md["creationTimestamp"])).total_seconds()
            wait = self.cfg.boot_delay_seconds - age
            if wait > 0:
                return wait
            if node is None:
                node = self.create_node(m, type_name, region, zone)
            self.patch_machine(m, {"status": {
                "phase": "Provisioned", "lastUpdated": now_iso(),
                "providerStatus": {"instanceState": "running"}}}, status=True)
            log.info("machine %s: Provisioned, node %s joining", key, node["metadata"]["name"])
            return None
        if phase == "Provisioned" and node is not None and it.is_node_ready(node):
            self.patch_machine(m, {"status": {
                "phase": "Running", "lastUpdated": now_iso(),
                "nodeRef": {"kind": "Node", "name": node["metadata"]["name"],
                            "uid": node["metadata"]["uid"]}}}, status=True)
            log.info("machine %s: Running on Ready node %s", key, node["metadata"]["name"])
        return None

    def create_node(self, m: Obj, type_name: str, region: str, zone: str) -> Obj:
        md = m["metadata"]
        addresses = (m.get("status") or {}).get("addresses") or []
        ip = next(a["address"] for a in addresses if a["type"] == "InternalIP")
        name = it.node_name(ip, region)
        itype = it.INSTANCE_TYPES[type_name]
        capacity, allocatable = it.node_resources(itype, it.root_volume_gib(m))
        meta = (m.get("spec") or {}).get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        annotations.update({it.KWOK_ANNOTATION: "fake",
                            it.MACHINE_ANNOTATION: f"{md['namespace']}/{md['name']}"})
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name, "annotations": annotations,
                "labels": it.node_labels(type_name, itype, name, region, zone,
                                         meta.get("labels") or {}),
            },
            "spec": {"providerID": (m.get("spec") or {}).get("providerID", ""),
                     "taints": copy.deepcopy((m.get("spec") or {}).get("taints") or [])},
            "status": {
                "capacity": capacity, "allocatable": allocatable,
                "addresses": [{"type": "InternalIP", "address": ip},
                              {"type": "Hostname", "address": name},
                              {"type": "InternalDNS", "address": name}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                             "kubeletVersion": "kwok", "kubeProxyVersion": "kwok",
                             "osImage": "Red Hat Enterprise Linux CoreOS (simulated)",
                             "containerRuntimeVersion": "cri-o://simulated",
                             "machineID": "", "systemUUID": "", "bootID": "",
                             "kernelVersion": ""},
            },
        }
        try:
            node = raw(self.core.create_node, body)
            log.info("node %s: created for machine %s/%s (%s, %s GPU)", name, md["namespace"],
                     md["name"], type_name, itype.gpus)
        except ApiException as exc:
            if exc.status != 409:
                raise
            node = raw(self.core.read_node, name)
        return node

    def finish_deletion(self, m: Obj, node: Obj | None) -> None:
        """Terminate the instance: evict its pods, delete its Node, release the finalizer."""
        md = m["metadata"]
        key = f"{md['namespace']}/{md['name']}"
        if (m.get("status") or {}).get("phase") != "Deleting":
            self.patch_machine(m, {"status": {"phase": "Deleting", "lastUpdated": now_iso()}},
                               status=True)
            log.info("machine %s: Deleting", key)
        if node is not None:
            name = node["metadata"]["name"]
            pods = raw(self.core.list_pod_for_all_namespaces,
                       field_selector=f"spec.nodeName={name}")["items"]
            for pod in pods:
                pmd = pod["metadata"]
                try:
                    self.core.delete_namespaced_pod(pmd["name"], pmd["namespace"],
                                                    grace_period_seconds=0,
                                                    _request_timeout=REQUEST_TIMEOUT)
                    log.info("pod %s/%s: deleted with node %s", pmd["namespace"], pmd["name"], name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            try:
                self.core.delete_node(name, _request_timeout=REQUEST_TIMEOUT)
                log.info("node %s: deleted (machine %s)", name, key)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        finalizers = [f for f in md.get("finalizers") or [] if f != it.MACHINE_FINALIZER]
        self.patch_machine(m, {"metadata": {"finalizers": finalizers}})
        log.info("machine %s: instance terminated, finalizer removed", key)

    def update_machineset_status(self, ms: Obj, machines: list[Obj],
                                 nodes_by_machine: dict[str, Obj | None]) -> None:
        md = ms["metadata"]
        wanted = it.machineset_status(ms, machines, {k: v for k, v in nodes_by_machine.items() if v})
        patch = it.status_patch(ms.get("status"), wanted, it.MACHINESET_STATUS_KEYS)
        if not patch:
            return
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, md["namespace"], "machinesets", md["name"], {"status": patch},
            _request_timeout=REQUEST_TIMEOUT)
        log.info("machineset %s/%s: status replicas=%s ready=%s available=%s observedGeneration=%s",
                 md["namespace"], md["name"], wanted.get("replicas", 0),
                 wanted.get("readyReplicas", 0), wanted.get("availableReplicas", 0),
                 wanted["observedGeneration"])


def run(sim: Simulator, stop: threading.Event) -> None:
    """Main loop: reconcile on watch events, config changes, due boots and every RESYNC_SECONDS."""
    changed = threading.Event()
    for name, call in (("machinesets", sim.list_machinesets), ("machines", sim.list_machines),
                       ("nodes", sim.list_nodes)):
        Watcher(name, call, changed, stop).start()
    next_resync = 0.0
    due_at: float | None = None
    backoff = 1.0
    while not stop.is_set():
        changed.wait(POLL_SECONDS)
        now = time.monotonic()
        if sim.load_config():
            changed.set()
        if not (changed.is_set() or now >= next_resync or (due_at is not None and now >= due_at)):
            continue
        changed.clear()
        try:
            wait = sim.reconcile()
            backoff = 1.0
        except ApiException as exc:
            log.warning("reconcile: API error %s %s; retrying in %.0fs", exc.status, exc.reason, backoff)
            wait = backoff
            backoff = min(backoff * 2, 10.0)
        except Exception as exc:  # the daemon must survive apiserver restarts and odd objects
            log.warning("reconcile: %s: %s; retrying in %.0fs", type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", backoff)
            wait = backoff
            backoff = min(backoff * 2, 10.0)
        due_at = None if wait is None else time.monotonic() + max(wait, 0.05)
        next_resync = time.monotonic() + RESYNC_SECONDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path,
                        help="JSON knobs: boot_delay_seconds, unavailable_instance_types")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s cloud_sim %(message)s")
    # urllib3 logs every connection retry; our own warning per failed call is enough.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    sim = Simulator(api, args.config)
    sim.load_config()
    log.info("started (kubeconfig %s, config %s)", args.kubeconfig, args.config)
    run(sim, stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
