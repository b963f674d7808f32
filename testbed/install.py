"""What `up` installs into the cluster: CRDs, webhooks and configuration, nothing of the demo.

Upstream manifests point webhooks at in-cluster Services; here the controllers run as host
processes, so each reference becomes `url: https://127.0.0.1:<port>/<path>` with our CA, the
way controller-runtime's envtest registers webhooks.
"""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import time
from pathlib import Path

import yaml
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import NotFoundError

import rhoai_sim

HERE = Path(__file__).resolve().parent
FIELD_MANAGER = "rhoai-gpuaas-testbed"
NAMESPACES = ("kueue-system", "kserve", "openshift-machine-api", rhoai_sim.APPLICATIONS_NAMESPACE)
# Kueue's CRDs that are served in two versions and convert through its webhook.
KUEUE_CONVERTED = {"localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters"}
# Kueue webhooks we keep: its own kinds and the two integrations the Red Hat build enables.
KUEUE_WEBHOOK_PATHS = ("kueue-x-k8s-io", "--v1-pod", "apps-v1-deployment")
MANAGED_NAMESPACES = {"matchLabels": {"kueue.openshift.io/managed": "true"}}
KSERVE_RAW_DEPLOY = {"defaultDeploymentMode": "RawDeployment"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _url_config(port: int, path: str, ca_bundle: str) -> dict:
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}


def kueue_crds(manifests: Path, port: int, ca_bundle: str) -> list[dict]:
    out = []
    for f in sorted((manifests / "bases").glob("*.yaml")):
        for crd in _docs(f):
            if crd["spec"]["names"]["plural"] in KUEUE_CONVERTED:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": _url_config(port, "/convert", ca_bundle), "conversionReviewVersions": ["v1"]}}
            out.append(crd)
    return out


def kueue_webhooks(manifests: Path, port: int, ca_bundle: str) -> list[dict]:
    out = []
    for cfg in _docs(manifests / "manifests.yaml"):
        prefix = "kueue-mutating" if cfg["kind"].startswith("Mutating") else "kueue-validating"
        cfg["metadata"] = {"name": f"{prefix}-webhook-configuration"}
        hooks = []
        for hook in cfg["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            if not any(p in path for p in KUEUE_WEBHOOK_PATHS):
                continue
            hook["clientConfig"] = _url_config(port, path, ca_bundle)
            if "kueue-x-k8s-io" not in path:
                hook["namespaceSelector"] = MANAGED_NAMESPACES
            hooks.append(hook)
        cfg["webhooks"] = hooks
        out.append(cfg)
    return out


def kserve_crds(manifests: Path) -> list[dict]:
    return [d for f in sorted((manifests / "full").glob("serving.kserve.io_*.yaml")) for d in _docs(f)
            if d.get("kind") == "CustomResourceDefinition"]


def kserve_webhooks(manifests: Path, port: int, ca_bundle: str) -> list[dict]:
    out = []
    for cfg in _docs(manifests / "manifests.yaml"):
        for hook in cfg["webhooks"]:
            hook["clientConfig"] = _url_config(port, hook["clientConfig"]["service"]["path"], ca_bundle)
        out.append(cfg)
    return out


def kserve_configmap(manifests: Path) -> dict:
    """KServe's own defaults, with raw deployment as the default mode (as RHOAI 3.0 runs it)."""
    cm = next(d for d in _docs(manifests / "inferenceservice.yaml") if d.get("kind") == "ConfigMap")
    cm["metadata"] = {"name": "inferenceservice-config", "namespace": "kserve"}
    deploy = json.loads(cm["data"]["deploy"])
    deploy.update(KSERVE_RAW_DEPLOY)
    cm["data"]["deploy"] = json.dumps(deploy)
    return cm


def apply(dyn: dynamic.DynamicClient, obj: dict) -> None:
    """Server-side apply `obj` as the testbed (creates it, or makes it so)."""
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    res.server_side_apply(body=obj, name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"),
                          field_manager=FIELD_MANAGER, force_conflicts=True)


def _wait_established(api: client.ApiextensionsV1Api, names: list[str], deadline: float) -> None:
    for name in names:
        while True:
            crd = api.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not established in time")
            time.sleep(0.2)


def install_cluster_objects(api_client: client.ApiClient, state: Path, binaries: dict[str, Path],
                            ports: dict[str, int]) -> bool:
    """Apply everything (server-side apply, so repeating it is harmless).

    Skipped when the same objects were applied before and are still there, which keeps a warm
    `up` fast: the KServe CRDs alone are over a megabyte. Returns whether it applied anything.
    """
    dyn = dynamic.DynamicClient(api_client)
    ca_bundle = base64.b64encode((state / "pki" / "ca.crt").read_bytes()).decode()
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES]
    crds = (_docs(HERE / "manifests" / "machine-api-crds.yaml") + _docs(HERE / "manifests" / "openshift-config-crds.yaml")
            + kueue_crds(binaries["kueue-manifests"], ports["kueue_webhook"], ca_bundle)
            + kserve_crds(binaries["kserve-manifests"])
            + rhoai_sim.crds())
    rest = (kueue_webhooks(binaries["kueue-manifests"], ports["kueue_webhook"], ca_bundle)
            + kserve_webhooks(binaries["kserve-manifests"], ports["kserve_webhook"], ca_bundle)
            + rhoai_sim.webhook_configurations(ports["rhoai_webhook"], ca_bundle)
            + [kserve_configmap(binaries["kserve-manifests"])])
    digest = hashlib.sha256(json.dumps([namespaces, crds, rest], sort_keys=True).encode()).hexdigest()
    stamp = state / "installed.sha256"
    if stamp.exists() and stamp.read_text() == digest and _all_present(api_client, crds):
        return False
    for obj in namespaces + crds:
        apply(dyn, obj)
    _wait_established(client.ApiextensionsV1Api(api_client), [c["metadata"]["name"] for c in crds],
                      time.monotonic() + 60)
    for obj in rest:
        apply(dyn, obj)
    stamp.write_text(digest)
    return True


def ensure_openshift_objects(api_client: client.ApiClient, api_url: str) -> list[str]:
    """Create what the OpenShift installer leaves behind (Infrastructure `cluster`, a worker MachineSet)
    when absent; never overwrite them, as a real cluster's would not be. Returns what it created."""
    dyn = dynamic.DynamicClient(api_client)
    created = []
    for obj in _docs(HERE / "manifests" / "openshift-cluster.yaml"):
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        try:
            res.get(name=meta["name"], namespace=meta.get("namespace"))
            continue
        except NotFoundError:
            pass
        status = obj.pop("status", None)
        res.create(body=obj, namespace=meta.get("namespace"))
        if status is not None:
            status.update({"apiServerURL": api_url, "apiServerInternalURI": api_url})
            res.status.patch(body={"status": status}, name=meta["name"], content_type="application/merge-patch+json")
        created.append(f"{obj['kind']} {meta['name']}")
    return created


def _all_present(api_client: client.ApiClient, crds: list[dict]) -> bool:
    """True when every CRD exists: the stamp alone would lie after etcd's data was removed."""
    names = {c.metadata.name for c in client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items}
    return all(c["metadata"]["name"] in names for c in crds)


def _tls_serving(port: int, ca: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock, \
                ctx.wrap_socket(sock, server_hostname="127.0.0.1"):
            return True
    except OSError:
        return False


def wait_webhooks_serving(state: Path, ports: dict[str, int], deadline: float) -> None:
    """Webhooks use failurePolicy Fail: report `up` only once every server answers TLS."""
    for name in ("kueue_webhook", "kserve_webhook", "rhoai_webhook"):
        while not _tls_serving(ports[name], state / "pki" / "ca.crt"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} on 127.0.0.1:{ports[name]} does not answer TLS")
            time.sleep(0.2)


def ensure_default_dsc(api_client: client.ApiClient) -> bool:
    """Create DataScienceCluster `default-dsc` when there is none; never change an existing one,
    so a test (or a user) may set its Kueue fields as on a real cluster. Returns whether it created it."""
    res = dynamic.DynamicClient(api_client).resources.get(
        api_version=f"{rhoai_sim.DSC_GROUP}/{rhoai_sim.DSC_VERSION}", kind="DataScienceCluster")
    if res.get().items:
        return False
    res.create(body=rhoai_sim.default_dsc())
    return True


def ensure_default_dsci(api_client: client.ApiClient, custom_ca: str) -> bool:
    """Create DSCInitialization `default-dsci` when there is none, as the operator does once, with the
    testbed CA (which signs S3's HTTPS port) in its trusted CA bundle, as an admin adds an in-cluster
    MinIO's CA; never change an existing one (a test changes it as an admin would)."""
    res = dynamic.DynamicClient(api_client).resources.get(
        api_version=f"{rhoai_sim.DSCI_GROUP}/{rhoai_sim.DSCI_VERSION}", kind="DSCInitialization")
    if res.get().items:
        return False
    res.create(body=rhoai_sim.default_dsci(custom_ca))
    return True


def release_kwok_leases(api_client: client.ApiClient) -> int:
    """Delete the node Leases a stopped kwok held, so the one starting now takes its nodes at once.

    kwok names itself `<host>_<random uuid>` and does not release its Leases on exit; a new
    kwok would wait for them to expire (40 s) before it made the nodes' pods Running again.
    """
    core, coord = client.CoreV1Api(api_client), client.CoordinationV1Api(api_client)
    fake = {n.metadata.name for n in core.list_node().items
            if (n.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"}
    released = 0
    for lease in coord.list_namespaced_lease("kube-node-lease").items:
        if lease.metadata.name in fake:
            try:
                coord.delete_namespaced_lease(lease.metadata.name, "kube-node-lease")
                released += 1
            except client.ApiException as err:
                if err.status != 404:
                    raise
    return released
