"""The local GPU cluster: `up`, `down`, `status`, `kubeconfig`.

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, Kueue, KServe, a
SeaweedFS S3 server, the Kubeflow Model Registry's REST server on MariaDB, the cloud simulator and the RHOAI
simulator as processes on 127.0.0.1, from the binaries that build.sh caches (MariaDB from the distribution's
package). `up` is idempotent: it starts only what is not already serving, so it also
recovers after a crash or a reboot; it restarts the API's clients when kube-apiserver restarted
after them, and reports up only once a canary has passed through every controller (settle.py).
State lives in `.testbed/` (or $TESTBED_STATE).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mariadb  # noqa: E402
import pki  # noqa: E402
from processes import (Component, http_ok, https_ok, pid_of, runs_as_configured, start, started_ticks,  # noqa: E402
                       stop, wait_healthy)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATE = Path(os.environ.get("TESTBED_STATE", ROOT / ".testbed")).resolve()
PKI, RUN, LOGS = STATE / "pki", STATE / "run", STATE / "logs"
KUBECONFIG = STATE / "kubeconfig"
UP_TIMEOUT = float(os.environ.get("TESTBED_UP_TIMEOUT", "300"))
# Several checkouts can run a testbed each: slot 0 (the default) keeps the documented ports; slot N
# (TESTBED_SLOT=1..99, or the older TESTBED_PORT_OFFSET=N*100) packs every port into a block of its
# own, 20000 + 64*N onwards, which no other slot's ports (nor SeaweedFS's gRPC ports, +10000) reach.
SLOT = int(os.environ.get("TESTBED_SLOT") or int(os.environ.get("TESTBED_PORT_OFFSET") or 0) // 100)

_BASE_PORTS = {
    "etcd": 12379, "etcd_peer": 12380, "apiserver": 16443, "kcm": 17257, "scheduler": 17259,
    "kwok": 17247, "kueue_webhook": 17443, "kueue_metrics": 17444, "kueue_health": 17445,
    "kserve_webhook": 17446, "kserve_metrics": 17449, "kserve_health": 17448,
    "s3": 18333, "s3_https": 18443, "weed_master": 19333, "weed_volume": 18080, "weed_filer": 18888,
    # first of VLLM_ENDPOINT_PORTS ports for vllm_sim's stand-in endpoints
    "vllm_endpoints": 18600,
    "rhoai_webhook": 17460,
    "mariadb": 13306, "model_registry": 18090,
}
VLLM_ENDPOINT_PORTS = 20
_BLOCK = 64  # a slot's ports: the named ones from the start, vllm_sim's endpoint range at the end


def _slot_ports(slot: int) -> dict[str, int]:
    start = 20000 + _BLOCK * slot
    names = [n for n in _BASE_PORTS if n != "vllm_endpoints"]
    assert len(names) <= _BLOCK - VLLM_ENDPOINT_PORTS, "a testbed slot has no room for more ports"
    ports = {name: start + i for i, name in enumerate(names)}
    ports["vllm_endpoints"] = start + _BLOCK - VLLM_ENDPOINT_PORTS
    return ports


PORTS = dict(_BASE_PORTS) if SLOT == 0 else _slot_ports(SLOT)
API = f"https://127.0.0.1:{PORTS['apiserver']}"
# The port each component listens on first: taken without our pid file means a foreign process.
COMPONENT_PORTS = {"etcd": PORTS["etcd"], "kube-apiserver": PORTS["apiserver"], "kube-controller-manager": PORTS["kcm"],
                   "kube-scheduler": PORTS["scheduler"], "kwok": PORTS["kwok"], "kueue": PORTS["kueue_webhook"],
                   "kserve": PORTS["kserve_webhook"], "s3": PORTS["s3"], "rhoai-sim": PORTS["rhoai_webhook"],
                   "mariadb": PORTS["mariadb"], "model-registry": PORTS["model_registry"]}
# Identities: the core components get their RBAC-bootstrapped users; the add-ons run as admins.
IDENTITIES = {
    "admin": ("kubernetes-admin", "system:masters"),
    "kcm": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    "kueue": ("kueue-controller-manager", "system:masters"),
    "kserve": ("kserve-controller-manager", "system:masters"),
    "cloud-sim": ("cloud-simulator", "system:masters"),
    "vllm-sim": ("vllm-simulator", "system:masters"),
    "rhoai-sim": ("rhoai-simulator", "system:masters"),
}
# Kueue's metrics server reads this fixed path when its internal cert management is off.
KUEUE_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
# Where tests and playbooks read the addresses of the testbed's services (KEY=value lines).
ENDPOINTS = STATE / "endpoints.env"
# The Model Registry's REST server: the base URL, as RHOAI's `<registry>-rest` route is one.
MODEL_REGISTRY_URL = f"http://127.0.0.1:{PORTS['model_registry']}"
DB = mariadb.Layout(STATE)


def versions() -> dict[str, str]:
    """Component versions and the binary cache, read from versions.sh (the single source)."""
    out = subprocess.run(["bash", "-c", f"set -a && source {HERE}/versions.sh && env"], check=True,
                         capture_output=True, text=True).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: env[k] for k in ("KUBE_VERSION", "ETCD_VERSION", "KWOK_VERSION", "KUEUE_VERSION",
                                "KSERVE_VERSION", "SEAWEEDFS_VERSION", "MODELREGISTRY_VERSION", "TESTBED_CACHE")}


def binaries() -> dict[str, Path]:
    v = versions()
    cache = Path(v["TESTBED_CACHE"])
    kube = cache / f"kube-{v['KUBE_VERSION']}"
    return {
        "etcd": cache / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        "kube-apiserver": kube / "kube-apiserver",
        "kube-controller-manager": kube / "kube-controller-manager",
        "kube-scheduler": kube / "kube-scheduler",
        "kwok": cache / f"kwok-{v['KWOK_VERSION']}" / "kwok",
        "kueue": cache / f"kueue-{v['KUEUE_VERSION']}" / "kueue",
        "kserve": cache / f"kserve-{v['KSERVE_VERSION']}" / "kserve-manager",
        "weed": cache / f"seaweedfs-{v['SEAWEEDFS_VERSION']}" / "weed",
        "model-registry": cache / f"modelregistry-{v['MODELREGISTRY_VERSION']}" / "model-registry",
        "kueue-manifests": cache / f"kueue-{v['KUEUE_VERSION']}" / "manifests",
        "kserve-manifests": cache / f"kserve-{v['KSERVE_VERSION']}" / "manifests",
        "kwok-stages": cache / f"kwok-{v['KWOK_VERSION']}" / "manifests",
    }


def write_kubeconfig(path: Path, user: str) -> None:
    """A kubeconfig for one identity, TLS verified against the testbed CA."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
        "clusters": [{"name": "testbed", "cluster": {"server": API, "certificate-authority": str(PKI / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(PKI / f"{user}.crt"),
                                          "client-key": str(PKI / f"{user}.key")}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": user}}],
    }, indent=2))
    path.chmod(0o600)


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def install_file(path: Path, content: bytes) -> None:
    """Write `path` only when it differs, atomically: the controllers watch their certificates
    and would read a half-written file."""
    if path.exists() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.chmod(0o600)
    tmp.replace(path)


def prepare() -> None:
    """Certificates, kubeconfigs and config files; created once, kept across restarts."""
    for d in (PKI, RUN, LOGS, STATE / "kubeconfigs"):
        d.mkdir(parents=True, exist_ok=True)
    pki.ensure_ca(PKI)
    pki.ensure_ca(PKI, "service-ca", "openshift-service-serving-signer (testbed)")
    pki.ensure_service_account_key(PKI)
    pki.ensure_cert(PKI, "apiserver", "kube-apiserver", ips=("127.0.0.1", "10.96.0.1"),
                    dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"), server=True)
    pki.ensure_cert(PKI, "webhook", "testbed-webhooks", ips=("127.0.0.1",), dns=("localhost",), server=True)
    pki.ensure_cert(PKI, "front-proxy-client", "front-proxy-client")
    pki.ensure_cert(PKI, "control-plane-serving", "testbed-control-plane", ips=("127.0.0.1",), server=True)
    for user, (cn, org) in IDENTITIES.items():
        pki.ensure_cert(PKI, user, cn, org)
        write_kubeconfig(STATE / "kubeconfigs" / f"{user}.yaml", user)
    if not KUBECONFIG.exists():
        KUBECONFIG.symlink_to(STATE / "kubeconfigs" / "admin.yaml")
    serving = (("webhook.crt", "tls.crt"), ("webhook.key", "tls.key"), ("ca.crt", "ca.crt"))
    for certs in (KUEUE_METRICS_CERTS, STATE / "kueue-certs", STATE / "kserve-tmp" / "k8s-webhook-server" / "serving-certs"):
        for src, dst in serving:
            install_file(certs / dst, (PKI / src).read_bytes())
    install_file(STATE / "kueue.yaml", kueue_config().encode())
    s3 = STATE / "s3.env"
    keys = dict(line.split("=", 1) for line in s3.read_text().split()) if s3.exists() else {
        "AWS_ACCESS_KEY_ID": f"testbed{secrets.token_hex(4)}", "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30)}
    env = {"AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
           "AWS_S3_ENDPOINT": f"http://127.0.0.1:{PORTS['s3']}",
           "AWS_S3_ENDPOINT_HTTPS": f"https://127.0.0.1:{PORTS['s3_https']}",
           "AWS_CA_BUNDLE_TESTBED": str(PKI / "ca.crt"), "AWS_DEFAULT_REGION": "us-east-1"}
    install_file(s3, "".join(f"{k}={v}\n" for k, v in env.items()).encode())
    (STATE / "s3.json").write_text(json.dumps({"identities": [{
        "name": "testbed", "credentials": [{"accessKey": env["AWS_ACCESS_KEY_ID"],
                                            "secretKey": env["AWS_SECRET_ACCESS_KEY"]}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    # The registry reads its database DSN (with the password) from this file, not from its argv.
    install_file(STATE / "model-registry.yaml", json.dumps({"embedmd-database-dsn": DB.dsn(PORTS["mariadb"])}).encode())
    install_file(ENDPOINTS, f"MODEL_REGISTRY_URL={MODEL_REGISTRY_URL}\n".encode())
    cloud = STATE / "cloud.json"
    if not cloud.exists():
        cloud.write_text(json.dumps({"boot_delay_seconds": 3, "unavailable_instance_types": []}, indent=2))
    vllm = STATE / "vllm.json"
    if not vllm.exists():
        vllm.write_text(json.dumps({"time_scale": 0.05}, indent=2))
    write_kwok_pod_ready(binaries()["kwok-stages"] / "pod-ready.yaml", STATE / "kwok-stages" / "pod-ready.yaml")


# kwok leaves predictor pods to vllm_sim.py: its pod-ready stages skip pods with this label.
NOT_PREDICTOR = {"key": '.metadata.labels["serving.kserve.io/inferenceservice"]', "operator": "DoesNotExist"}


def write_kwok_pod_ready(upstream: Path, out: Path) -> None:
    """kwok's own pod-ready stage with one more selector term, so predictor pods stay Pending for vllm_sim."""
    import yaml
    stage = yaml.safe_load(upstream.read_text())
    stage["spec"]["selector"]["matchExpressions"].append(NOT_PREDICTOR)
    install_file(out, yaml.safe_dump(stage, sort_keys=False).encode())


def kwok_stage_files(upstream: Path) -> list[Path]:
    """kwok's upstream stages, pod-ready replaced by the derived one, plus ours."""
    return ([f for f in sorted(upstream.glob("*.yaml")) if f.name != "pod-ready.yaml"]
            + [STATE / "kwok-stages" / "pod-ready.yaml", HERE / "manifests" / "kwok-pod-ready-again.yaml"])


def kueue_config() -> str:
    """Kueue configured like the Red Hat build: pod and deployment integrations on managed namespaces."""
    return json.dumps({
        "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{PORTS['kueue_health']}"},
        "metrics": {"bindAddress": f"127.0.0.1:{PORTS['kueue_metrics']}"},
        "webhook": {"host": "127.0.0.1", "port": PORTS["kueue_webhook"], "certDir": str(STATE / "kueue-certs")},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "managedJobsNamespaceSelector": {"matchLabels": {"kueue.openshift.io/managed": "true"}},
        "integrations": {"frameworks": ["pod", "deployment"]},
    }, indent=2)


def components() -> list[Component]:
    """The processes, in start order."""
    b = binaries()
    db_bins = mariadb.binaries() or {"server": Path("/usr/sbin/mariadbd"), "install": Path("mariadb-install-db")}
    ca = PKI / "ca.crt"
    kcfg = STATE / "kubeconfigs"
    admin_crt, admin_key = PKI / "admin.crt", PKI / "admin.key"

    def api_ready() -> bool:
        return https_ok(f"{API}/readyz", ca, admin_crt, admin_key)

    def secure_healthz(port: int) -> Component.health:
        return lambda: https_ok(f"https://127.0.0.1:{port}/healthz", ca)

    return [
        Component("etcd", [str(b["etcd"]), "--name=testbed", f"--data-dir={STATE / 'etcd'}",
                           f"--listen-client-urls=http://127.0.0.1:{PORTS['etcd']}",
                           f"--advertise-client-urls=http://127.0.0.1:{PORTS['etcd']}",
                           f"--listen-peer-urls=http://127.0.0.1:{PORTS['etcd_peer']}",
                           f"--initial-advertise-peer-urls=http://127.0.0.1:{PORTS['etcd_peer']}",
                           f"--initial-cluster=testbed=http://127.0.0.1:{PORTS['etcd_peer']}",
                           "--listen-metrics-urls=", "--unsafe-no-fsync", "--quota-backend-bytes=4294967296"],
                  lambda: http_ok(f"http://127.0.0.1:{PORTS['etcd']}/health")),
        Component("kube-apiserver", [
            str(b["kube-apiserver"]), f"--etcd-servers=http://127.0.0.1:{PORTS['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['apiserver']}",
            f"--tls-cert-file={PKI / 'apiserver.crt'}", f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={ca}", "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            f"--service-account-key-file={PKI / 'sa.pub'}", f"--service-account-signing-key-file={PKI / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
            f"--requestheader-client-ca-file={ca}", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={PKI / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={PKI / 'front-proxy-client.key'}",
            "--enable-priority-and-fairness=false", "--profiling=false"], api_ready),
        Component("kube-controller-manager", [
            str(b["kube-controller-manager"]), f"--kubeconfig={kcfg / 'kcm.yaml'}",
            f"--authentication-kubeconfig={kcfg / 'kcm.yaml'}", f"--authorization-kubeconfig={kcfg / 'kcm.yaml'}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['kcm']}", "--leader-elect=false",
            f"--tls-cert-file={PKI / 'control-plane-serving.crt'}", f"--tls-private-key-file={PKI / 'control-plane-serving.key'}",
            "--use-service-account-credentials=true", f"--service-account-private-key-file={PKI / 'sa.key'}",
            f"--root-ca-file={ca}", f"--cluster-signing-cert-file={ca}", f"--cluster-signing-key-file={PKI / 'ca.key'}",
            "--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller,-node-route-controller",
            "--kube-api-qps=100", "--kube-api-burst=200", "--profiling=false"],
            secure_healthz(PORTS["kcm"]), api_client=True),
        Component("kube-scheduler", [
            str(b["kube-scheduler"]), f"--kubeconfig={kcfg / 'scheduler.yaml'}",
            f"--authentication-kubeconfig={kcfg / 'scheduler.yaml'}",
            f"--authorization-kubeconfig={kcfg / 'scheduler.yaml'}",
            "--bind-address=127.0.0.1", f"--secure-port={PORTS['scheduler']}", "--leader-elect=false",
            f"--tls-cert-file={PKI / 'control-plane-serving.crt'}", f"--tls-private-key-file={PKI / 'control-plane-serving.key'}",
            "--profiling=false"], secure_healthz(PORTS["scheduler"]), api_client=True),
        Component("kwok", [
            str(b["kwok"]), f"--kubeconfig={kcfg / 'kwok.yaml'}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{PORTS['kwok']}", "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
            *(f"--config={f}" for f in kwok_stage_files(b["kwok-stages"]))],
            lambda: http_ok(f"http://127.0.0.1:{PORTS['kwok']}/healthz"), api_client=True),
        Component("kueue", [str(b["kueue"]), f"--config={STATE / 'kueue.yaml'}",
                            f"--kubeconfig={kcfg / 'kueue.yaml'}", "--feature-gates=VisibilityOnDemand=false"],
                  lambda: http_ok(f"http://127.0.0.1:{PORTS['kueue_health']}/readyz"), api_client=True),
        Component("kserve", [str(b["kserve"]), f"--kubeconfig={kcfg / 'kserve.yaml'}",
                             f"--webhook-port={PORTS['kserve_webhook']}",
                             f"--metrics-addr=127.0.0.1:{PORTS['kserve_metrics']}",
                             f"--health-probe-addr=127.0.0.1:{PORTS['kserve_health']}", "--leader-elect=false"],
                  lambda: http_ok(f"http://127.0.0.1:{PORTS['kserve_health']}/readyz"), api_client=True,
                  env={"POD_NAMESPACE": "kserve", "TMPDIR": str(STATE / "kserve-tmp")}),
        Component("s3", [str(b["weed"]), "server", f"-dir={STATE / 's3'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                         f"-master.port={PORTS['weed_master']}", f"-volume.port={PORTS['weed_volume']}",
                         # every bucket is a collection that takes volumes of its own: room for many test buckets
                         "-volume.max=500", "-master.volumeSizeLimitMB=512", "-filer",
                         f"-filer.port={PORTS['weed_filer']}", "-s3", f"-s3.port={PORTS['s3']}",
                         f"-s3.config={STATE / 's3.json'}", f"-s3.port.https={PORTS['s3_https']}",
                         f"-s3.cert.file={PKI / 'webhook.crt'}", f"-s3.key.file={PKI / 'webhook.key'}",
                         # no anonymous statistics to the internet, no Iceberg/Lance servers
                         "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"],
                  lambda: http_ok(f"http://127.0.0.1:{PORTS['s3']}/healthz")),
        Component("mariadb", DB.server_argv(db_bins, PORTS["mariadb"]), lambda: mariadb.ready(PORTS["mariadb"])),
        Component("model-registry", [str(b["model-registry"]), "proxy", f"--config={STATE / 'model-registry.yaml'}",
                                     "--hostname=127.0.0.1", f"--port={PORTS['model_registry']}",
                                     "--datastore-type=embedmd", "--embedmd-database-type=mysql"],
                  # 200 only once the database answers and the registry's schema is migrated
                  lambda: http_ok(f"{MODEL_REGISTRY_URL}/readyz/health")),
        Component("cloud-sim", [sys.executable, str(HERE / "cloud_sim.py"), f"--kubeconfig={kcfg / 'cloud-sim.yaml'}",
                                f"--config={STATE / 'cloud.json'}"],
                  lambda: pid_of(RUN, "cloud-sim") is not None, api_client=True),
        Component("vllm-sim", [sys.executable, str(HERE / "vllm_sim.py"), f"--kubeconfig={kcfg / 'vllm-sim.yaml'}",
                               f"--state={STATE}", f"--ports={PORTS['vllm_endpoints']}-"
                               f"{PORTS['vllm_endpoints'] + VLLM_ENDPOINT_PORTS - 1}"],
                  lambda: pid_of(RUN, "vllm-sim") is not None, api_client=True),
        Component("rhoai-sim", [sys.executable, str(HERE / "rhoai_sim.py"), f"--kubeconfig={kcfg / 'rhoai-sim.yaml'}",
                                f"--port={PORTS['rhoai_webhook']}", f"--cert={PKI / 'webhook.crt'}",
                                f"--key={PKI / 'webhook.key'}", f"--service-ca={PKI / 'service-ca.crt'}"],
                  lambda: https_ok(f"https://127.0.0.1:{PORTS['rhoai_webhook']}/healthz", ca), api_client=True),
    ]


def up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    missing = [str(p) for p in binaries().values() if not p.exists()]
    if missing:
        print("testbed: binaries missing, run testbed/build.sh first:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    db_bins = mariadb.binaries()
    if db_bins is None:
        print(f"testbed: MariaDB (mariadbd, mariadb-install-db) is not installed; the Model Registry keeps its data "
              f"in it: {mariadb.INSTALL_HINT}", file=sys.stderr)
        return 1
    (STATE / "s3").mkdir(parents=True, exist_ok=True)
    prepare()
    deadline = time.monotonic() + UP_TIMEOUT
    # install and settle need the kubernetes client from the venv
    from install import (ensure_default_dsc, ensure_default_dsci, ensure_openshift_objects, install_cluster_objects,
                         release_kwok_leases, wait_webhooks_serving)
    from settle import remove_leftovers, wait_settled
    api = client_for_admin()
    api_started = 0
    for comp in components():
        if comp.name == "kueue" and install_cluster_objects(api, STATE, binaries(), PORTS):
            print(f"[up {time.monotonic() - t0:5.1f}s] CRDs, webhooks and configuration applied")
        if comp.name == "mariadb" and DB.ensure(db_bins, LOGS / "mariadb.log"):
            print(f"[up {time.monotonic() - t0:5.1f}s] mariadb: database {mariadb.DATABASE} created in {DB.data}")
        pid = pid_of(RUN, comp.name)
        why = _restart_reason(comp, pid, api_started)
        if pid is not None and not why and comp.health():
            print(f"[up {time.monotonic() - t0:5.1f}s] {comp.name}: already running")
        else:
            if why:
                print(f"[up {time.monotonic() - t0:5.1f}s] {comp.name}: restarting, {why}")
            stop(RUN, comp.name)
            port = COMPONENT_PORTS.get(comp.name)
            if port and port_taken(port):
                print(f"testbed: 127.0.0.1:{port}, {comp.name}'s port, is taken by a process this testbed did not "
                      f"start (another testbed with TESTBED_STATE other than {STATE}?); stop it first", file=sys.stderr)
                return 1
            if comp.name == "kwok":
                if released := release_kwok_leases(api):
                    print(f"[up {time.monotonic() - t0:5.1f}s] kwok: released {released} node Leases "
                          "of the previous kwok")
            start(RUN, LOGS, comp)
            wait_healthy(comp, deadline, RUN)
            print(f"[up {time.monotonic() - t0:5.1f}s] {comp.name}: started")
        if comp.name == "kube-apiserver":
            api_started = started_ticks(pid_of(RUN, comp.name))
    wait_webhooks_serving(STATE, PORTS, deadline)
    if created := ensure_openshift_objects(api, API):
        print(f"[up {time.monotonic() - t0:5.1f}s] as the OpenShift installer would have: {', '.join(created)}")
    if ensure_default_dsci(api, (PKI / "ca.crt").read_text()):
        print(f"[up {time.monotonic() - t0:5.1f}s] DSCInitialization default-dsci created (the testbed CA in its "
              "trusted CA bundle)")
    if ensure_default_dsc(api):
        print(f"[up {time.monotonic() - t0:5.1f}s] DataScienceCluster default-dsc created (Kueue Unmanaged)")
    remove_leftovers(api)
    try:
        steps = wait_settled(api, timeout=max(deadline - time.monotonic(), 10))
    except TimeoutError as err:
        print(f"testbed: {err}; see the logs in {LOGS}", file=sys.stderr)
        return 1
    print(f"[up {time.monotonic() - t0:5.1f}s] settled: a canary passed every controller in "
          f"{max(steps.values()):.1f}s; " + ", ".join(f"{what.split(':')[0]} {at:.1f}s" for what, at in steps.items()))
    print(f"testbed up in {time.monotonic() - t0:.1f}s; kubeconfig: {KUBECONFIG}; endpoints: {ENDPOINTS}")
    return 0


def _restart_reason(comp: Component, pid: int | None, api_started: int) -> str | None:
    """Why a running `comp` must be restarted although it answers its health check, if it must."""
    if pid is None:
        return None
    if comp.api_client and started_ticks(pid) < api_started:
        return "kube-apiserver restarted after it (its watches would back off for up to a minute)"
    if not runs_as_configured(RUN, comp):
        return "its command line changed"
    return None


def client_for_admin() -> Any:
    """A kubernetes ApiClient for the testbed's admin kubeconfig."""
    from kubernetes import config
    return config.new_client_from_config(str(KUBECONFIG))


def down(args: argparse.Namespace) -> int:
    for comp in reversed(components()):
        if stop(RUN, comp.name):
            print(f"stopped {comp.name}")
    if args.purge:
        shutil.rmtree(STATE, ignore_errors=True)
        print(f"removed {STATE}")
    return 0


def status(args: argparse.Namespace) -> int:
    if not PKI.exists():
        print("testbed: not set up (run `make testbed-up`)")
        return 1
    bad = 0
    for comp in components():
        pid = pid_of(RUN, comp.name)
        healthy = pid is not None and comp.health()
        bad += not healthy
        print(f"{comp.name:25} {'pid ' + str(pid) if pid else 'not running':12} {'healthy' if healthy else 'DOWN'}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up").set_defaults(func=up)
    d = sub.add_parser("down")
    d.add_argument("--purge", action="store_true", help="also delete the state (etcd data, certificates)")
    d.set_defaults(func=down)
    sub.add_parser("status").set_defaults(func=status)
    sub.add_parser("kubeconfig").set_defaults(func=lambda a: print(KUBECONFIG) or 0)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
