"""SIMULATED GPU runtime for the local testbed: plays the kubelet and vLLM for KServe predictor pods.

kwok runs every other pod on its fake nodes; predictor pods (label serving.kserve.io/inferenceservice)
are left to this simulator by our kwok stages (testbed/manifests/kwok-*.yaml). For each one bound to
a kwok node it does what the kubelet and vLLM would:

- init containers KServe's pod webhook injected: `storage-initializer` lists the model at the
  pod's storage URI on the testbed S3 and fails as KServe's storage initializer does when nothing is
  there, verifying an https endpoint's certificate as it does: with the CA bundle ConfigMap KServe's
  webhook mounted (the connection's `cabundle_configmap`; a missing ConfigMap keeps the pod
  initializing with FailedMount), else with public CAs only; `modelcar-init` pulls the OCI modelcar
  image, which works only for the images in MODELCARS (unknown images fail as CRI-O's pull would: ErrImagePull, then ImagePullBackOff);
- `kserve-container` on a GPU node: vllm_fit_sim.judge() decides from the container's command line
  and env, the GPUs and /dev/shm the pod was given and the model's config.json and weight size
  whether vLLM becomes Ready or exits 1; an exiting container is restarted with the kubelet's
  crash-loop back-off (10 s doubling to 5 min, times `time_scale`), `waiting.reason:
  CrashLoopBackOff` in between, and its termination message is the log tail when the container asks
  for `terminationMessagePolicy: FallbackToLogsOnError` (the kubelet's 80 lines / 2048 bytes);
- predictor pods with no model to judge (no storage URI, a scheme other than s3:// and oci://, or a
  node without GPUs) become Ready at once, as kwok's stage would have made them.

A Ready vLLM predictor gets an OpenAI-compatible stand-in on 127.0.0.1 (GET /v1/models,
POST /v1/chat/completions and /v1/completions, every answer marked simulated); the address is
published in `<state>/endpoints.json` as {"<namespace>/<isvc>": "http://127.0.0.1:<port>"}.
Each simulated container's whole log is written to `<state>/logs/vllm-sim/` (what `oc logs` would show).

Knobs in `<state>/vllm.json`, re-read on change: `time_scale` (default 1.0; `up` writes 0.05).

Run: .venv/bin/python testbed/vllm_sim.py --kubeconfig ... --state .testbed --ports 18600-18619
"""
from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import http.server
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kubernetes import client, config
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent))
import instance_types_sim as it  # noqa: E402
import vllm_fit_sim as fit  # noqa: E402
from cloud_sim import REQUEST_TIMEOUT, Watcher, raw  # noqa: E402

log = logging.getLogger("vllm_sim")
Obj = dict[str, Any]

ISVC_LABEL = "serving.kserve.io/inferenceservice"
# KServe 0.16 pkg/constants/constants.go: the annotation its pod webhook reads the model URI from,
# the storage secret name annotation, the storage-spec key, and its container names.
SOURCE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_KEY_ANNOTATION = "internal.serving.kserve.io/storage-spec-key"
STORAGE_SECRET_ANNOTATION = "serving.kserve.io/storageSecretName"
STORAGE_SECRET = "storage-config"
MAIN = "kserve-container"
STORAGE_INITIALIZER, MODELCAR, MODELCAR_INIT = "storage-initializer", "modelcar", "modelcar-init"
# KServe 0.16 pkg/webhook/admission/pod/storage_initializer_injector.go and pkg/constants/constants.go:
# the CA bundle volume the pod webhook mounts into the storage initializer, and the env it sets.
CA_BUNDLE_VOLUME = "cabundle-cert"
CA_BUNDLE_NAME_ENV, CA_BUNDLE_MOUNT_ENV = "CA_BUNDLE_CONFIGMAP_NAME", "CA_BUNDLE_VOLUME_MOUNT_POINT"
DEFAULT_CA_BUNDLE_MOUNT = "/etc/ssl/custom-certs"
GPU = it.GPU_RESOURCE
SIM_HEADER = "x-simulated-by"
SIM_NAME = "testbed/vllm_sim.py"

# kubelet (pkg/kubelet/kubelet.go, k8s 1.36): crash-loop and image-pull back-off, 10 s doubling to 5 min.
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 10.0, 300.0
# kubelet (pkg/kubelet/container/runtime.go): the log tail a FallbackToLogsOnError message holds.
TERMINATION_LOG_LINES, TERMINATION_LOG_BYTES = 80, 2048
# How long a sidecar/init step takes and how long the kubelet shows `terminated` before `waiting`.
INIT_STEP_S, KUBELET_SYNC_S, MOUNT_RETRY_S = 5.0, 1.0, 2.0

# OCI modelcars the simulated registry serves: image -> (weights total_size in bytes, config.json).
# Mistral-Small-24B-Instruct-2501 (mistralai/, config.json and 23,572,403,200 parameters):
MISTRAL_SMALL_24B_CONFIG = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 5120,
    "intermediate_size": 32768, "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "max_position_embeddings": 32768, "vocab_size": 131072, "rope_theta": 100000000.0,
    "rms_norm_eps": 1e-05, "sliding_window": None, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
}
# The INT4 W4A16 (compressed-tensors, group size 128) build: 22,229,811,200 linear weights at 4 bits plus
# one BF16 scale per 128, embeddings, lm_head and norms in BF16 = 14,147,430,400 bytes (computed).
MODELCARS: dict[str, tuple[int, dict[str, Any]]] = {
    "registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5": (
        14_147_430_400, {**MISTRAL_SMALL_24B_CONFIG, "quantization_config": {
            "quant_method": "compressed-tensors", "format": "pack-quantized"}}),
}


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it in the kubelet's messages (10s, 1m20s, 5m0s)."""
    seconds = round(seconds, 3)
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{rest:g}s"


def backoff_seconds(failures: int, scale: float) -> float:
    """The kubelet's back-off before restart number `failures` (1 = after the first failure)."""
    return min(BACKOFF_INITIAL_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S) * scale


def termination_message(policy: str | None, log_lines: list[str]) -> str:
    """What the kubelet puts into state.terminated.message for a failed container.

    vLLM writes nothing to /dev/termination-log, so with the default policy `File` the message is
    empty; with `FallbackToLogsOnError` it is the last 80 lines, at most the last 2048 bytes.
    """
    if policy != "FallbackToLogsOnError":
        return ""
    text = "\n".join(log_lines[-TERMINATION_LOG_LINES:]) + "\n"
    data = text.encode()[-TERMINATION_LOG_BYTES:]
    return data.decode("utf-8", errors="ignore")


def pod_ip(uid: str) -> str:
    """A stable pod address from OpenShift's default cluster network 10.128.0.0/14."""
    n = int(hashlib.sha256(uid.encode()).hexdigest(), 16) % (1 << 18)
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.128.0.0")) + max(n, 2)))


def container_id(*parts: str) -> str:
    return "cri-o://" + hashlib.sha256("/".join(parts).encode()).hexdigest()


def image_id(image: str) -> str:
    repo = image.rsplit(":", 1)[0] if "@" not in image else image.split("@", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def pull_error(image: str) -> str:
    """CRI-O's pull failure as the kubelet reports it (containers/image docker/docker_client.go wording)."""
    ref = image.split("@", 1)[0]
    host = ref.split("/", 1)[0]
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    if host.endswith(".invalid") or "." not in host:
        return (f"rpc error: code = Unknown desc = pinging container registry {host}: Get \"https://{host}/v2/\": "
                f"dial tcp: lookup {host}: no such host")
    return f"rpc error: code = Unknown desc = reading manifest {tag} in {repo}: manifest unknown"


def parse_quantity(value: str | int | float | None) -> float:
    """A Kubernetes quantity in base units (bytes for memory)."""
    if value is None or value == "":
        return 0.0
    text = str(value)
    for suffix, mult in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40), ("Pi", 2**50),
                         ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12), ("P", 10**15), ("m", 1e-3)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * mult
    return float(text)


# ---- what the pod gives vLLM ----------------------------------------------------------------------

def vllm_argv(container: Obj) -> list[str]:
    """The vLLM arguments of a container: what follows the api_server module or `vllm serve`, plus args."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    for i, token in enumerate(command):
        if token.endswith("vllm.entrypoints.openai.api_server"):
            return command[i + 1:] + args
        if token.endswith("vllm") and i + 1 < len(command) and command[i + 1] == "serve":
            return command[i + 1:] + args
    return args


def container_env(container: Obj) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def gpus_given(container: Obj) -> int:
    """GPUs the device plugin gives the container: its nvidia.com/gpu limit (extended resources: limit = request)."""
    res = container.get("resources") or {}
    value = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
    return int(parse_quantity(value))


def shm_bytes(pod: Obj, container: Obj, node: Obj) -> int:
    """Size of /dev/shm in `container`: CRI-O's 64 MiB, or a memory-backed emptyDir mounted there.

    The emptyDir's tmpfs is as large as the smallest of its sizeLimit, the pod's memory limit (when every
    container has one) and the node's allocatable memory (pkg/volume/emptydir/empty_dir.go).
    """
    mount = next((m for m in container.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == "/dev/shm"),
                 None)
    if mount is None:
        return fit.DEFAULT_SHM_BYTES
    volume = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == mount.get("name")), None)
    empty_dir = (volume or {}).get("emptyDir")
    if empty_dir is None or empty_dir.get("medium") != "Memory":
        # a disk-backed volume at /dev/shm: as large as the node's disk, NCCL is not limited by it
        return 1 << 40
    size = parse_quantity(((node.get("status") or {}).get("allocatable") or {}).get("memory")) or float(1 << 40)
    limits = [parse_quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))
              for c in pod["spec"].get("containers") or []]
    if limits and all(limits) and 0 < sum(limits) <= size:
        size = sum(limits)
    limit = parse_quantity(empty_dir.get("sizeLimit"))
    if 0 < limit <= size:
        size = limit
    return int(size)


def gpu_memory_mib(node: Obj) -> int:
    """Per-GPU memory: GPU feature discovery's label, else the instance type's GPU, else an L4's."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if labels.get("nvidia.com/gpu.memory", "").isdigit():
        return int(labels["nvidia.com/gpu.memory"])
    itype = it.INSTANCE_TYPES.get(labels.get("node.kubernetes.io/instance-type", ""))
    return itype.gpu_memory_mib if itype and itype.gpu_memory_mib else 23034


def node_gpus(node: Obj) -> int:
    return int(parse_quantity(((node.get("status") or {}).get("allocatable") or {}).get(GPU)))


def node_ip(node: Obj) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr["address"]
    return "127.0.0.1"


# ---- reading the model ----------------------------------------------------------------------------

@dataclass
class Model:
    """What vLLM finds in /mnt/models; `fetch_error` when the storage initializer found nothing."""

    uri: str
    shape: fit.ModelShape | None = None
    has_weights: bool = True
    fetch_error: list[str] = field(default_factory=list)


def s3_settings(core: client.CoreV1Api, pod: Obj, state: Path) -> dict[str, str]:
    """S3 endpoint and keys as KServe's storage initializer gets them: the namespace's storage-config
    secret (entry named by the storage-spec key, else `default_s3`/`default`), else .testbed/s3.env."""
    md = pod["metadata"]
    annotations = md.get("annotations") or {}
    name = annotations.get(STORAGE_SECRET_ANNOTATION, STORAGE_SECRET)
    env = dict(line.split("=", 1) for line in (state / "s3.env").read_text().split()) \
        if (state / "s3.env").exists() else {}
    fallback = {"endpoint_url": env.get("AWS_S3_ENDPOINT", ""), "access_key_id": env.get("AWS_ACCESS_KEY_ID", ""),
                "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY", ""),
                "region": env.get("AWS_DEFAULT_REGION", "us-east-1"), "ca_bundle": env.get("AWS_CA_BUNDLE_TESTBED", "")}
    try:
        secret = raw(core.read_namespaced_secret, name, md["namespace"])
    except ApiException as exc:
        if exc.status != 404:
            raise
        return fallback
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    key = annotations.get(STORAGE_KEY_ANNOTATION)
    for candidate in ([key] if key else ["default_s3", "default"]) + sorted(data):
        try:
            entry = json.loads(data.get(candidate, ""))
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("type", "s3") == "s3" and entry.get("access_key_id"):
            # what the entry does not say is not trusted: no testbed CA behind the connection's back
            return {**fallback, "ca_bundle": "", **{k: str(v) for k, v in entry.items()}}
    return fallback


def verifies_tls(settings: dict[str, str]) -> bool:
    """kserve_storage.py: `S3_VERIFY_SSL` (the entry's `verify_ssl`) turns verification off with 0 or false."""
    return settings.get("verify_ssl", "1").lower() not in ("0", "false")


def storage_ca(pod: Obj) -> tuple[str, str, str] | None:
    """(ConfigMap, mount point, file) the storage initializer verifies S3's TLS with, when KServe's pod
    webhook mounted one (the storage-config entry's `cabundle_configmap`): kserve_storage.py
    `_download_s3` reads `AWS_CA_BUNDLE`, else `<CA_BUNDLE_VOLUME_MOUNT_POINT>/cabundle.crt`."""
    spec = pod.get("spec") or {}
    init = next((c for c in spec.get("initContainers") or [] if c["name"] == STORAGE_INITIALIZER), None)
    env = {e["name"]: e.get("value") or "" for e in (init or {}).get("env") or []}
    if CA_BUNDLE_NAME_ENV not in env:
        return None
    volume = next((v for v in spec.get("volumes") or [] if v["name"] == CA_BUNDLE_VOLUME), {})
    name = (volume.get("configMap") or {}).get("name") or env[CA_BUNDLE_NAME_ENV]
    mount = env.get(CA_BUNDLE_MOUNT_ENV) or DEFAULT_CA_BUNDLE_MOUNT
    return name, mount, env.get("AWS_CA_BUNDLE") or f"{mount}/cabundle.crt"


def read_s3_model(uri: str, settings: dict[str, str]) -> Model:
    """List the model at `uri` as the storage initializer does; read config.json and the weight sizes."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    verify: bool | str = verifies_tls(settings)
    if verify and settings.get("ca_bundle"):
        verify = settings["ca_bundle"]
    s3 = boto3.client("s3", endpoint_url=settings.get("endpoint_url") or None,
                      aws_access_key_id=settings.get("access_key_id"),
                      aws_secret_access_key=settings.get("secret_access_key"),
                      region_name=settings.get("region") or "us-east-1", verify=verify,
                      config=BotoConfig(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}))
    files: dict[str, int] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents") or []:
                if obj["Key"].endswith("/"):
                    continue
                rel = obj["Key"][len(prefix):].lstrip("/") if obj["Key"] != prefix else obj["Key"].rsplit("/", 1)[-1]
                files[rel] = obj["Size"]
        if not files:
            return Model(uri, fetch_error=storage_initializer_log(
                uri, f"RuntimeError: Failed to fetch model. No model found in {prefix}."))

        def get_json(name: str) -> Any:
            body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}" if prefix else name)["Body"]
            return json.loads(body.read())
        cfg = get_json("config.json") if "config.json" in files else None
        index = get_json("model.safetensors.index.json") if "model.safetensors.index.json" in files else None
    except (ClientError, BotoCoreError) as exc:
        return Model(uri, fetch_error=storage_initializer_log(uri, f"{type(exc).__module__}.{type(exc).__name__}: {exc}"))
    weights = {k: v for k, v in files.items() if "/" not in k and k.endswith(".safetensors")}
    total = int(((index or {}).get("metadata") or {}).get("total_size") or sum(weights.values()))
    shape = fit.ModelShape.from_config(cfg, total) if isinstance(cfg, dict) else None
    return Model(uri, shape=shape, has_weights=bool(weights) or any(k.endswith(".bin") for k in files))


def storage_initializer_log(uri: str, exc: str) -> list[str]:
    """The storage initializer's last words (KServe python/storage/kserve_storage/kserve_storage.py)."""
    return [f"INFO:kserve:Initializing, args: (src_uri, dest_path): [('{uri}', '/mnt/models')]",
            f"INFO:kserve:Copying contents of {uri} to local",
            "Traceback (most recent call last):",
            '  File "/storage-initializer/scripts/initializer-entrypoint", line 18, in <module>',
            "    Storage.download_files(src_uris, dest_paths)",
            '  File "/kserve-workspace/prod_venv/lib/python3.11/site-packages/kserve_storage/kserve_storage.py", '
            "line 95, in download_files",
            "    Storage.download(src_uri, dest_path)",
            '  File "/kserve-workspace/prod_venv/lib/python3.11/site-packages/kserve_storage/kserve_storage.py", '
            "line 138, in download",
            "    model_dir = Storage._download_s3(uri, out_dir)",
            exc]


# ---- one pod, as the kubelet runs it ---------------------------------------------------------------

@dataclass
class Step:
    """One container's life: the kubelet's view (state, restarts, back-off) and its current start."""

    name: str
    image: str
    policy: str = "File"
    restarts: int = 0
    state: str = "waiting"        # waiting | running | terminated
    reason: str = "PodInitializing"
    message: str = ""
    ready: bool = False
    started_at: datetime | None = None
    last_terminated: Obj | None = None
    terminated: Obj | None = None
    due: float = 0.0              # monotonic time of its next transition
    failures: int = 0             # consecutive failed starts or pulls (the back-off exponent)
    verdict: fit.Verdict | None = None

    def status(self, uid: str, init: bool) -> Obj:
        state: Obj
        if self.state == "running":
            state = {"running": {"startedAt": iso(self.started_at or now())}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated}
        else:
            state = {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}
        out: Obj = {"name": self.name, "image": self.image, "imageID": image_id(self.image) if self.started_at else "",
                    "ready": self.ready, "restartCount": self.restarts, "state": state,
                    "lastState": {"terminated": self.last_terminated} if self.last_terminated else {}}
        if self.started_at:
            out["containerID"] = container_id(uid, self.name, str(self.restarts))
        if not init:
            out["started"] = self.state == "running"
        return out


@dataclass
class PodRun:
    """The simulator's memory of one predictor pod."""

    uid: str
    namespace: str
    name: str
    isvc: str
    node: str
    judged: bool
    inits: list[Step]
    containers: list[Step]
    start_time: datetime = field(default_factory=now)
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    served_names: list[str] = field(default_factory=list)
    max_model_len: int = 0
    last_patch: str = ""
    model: Model | None = None
    resume_ready: bool = False    # vLLM was Ready before this simulator (re)started

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def main(self) -> Step | None:
        return next((c for c in self.containers if c.name == MAIN), None)


class Simulator:
    """Plays the kubelet and vLLM for the predictor pods on kwok's nodes."""

    def __init__(self, api: client.ApiClient, state: Path, endpoints: "Endpoints") -> None:
        self.core = client.CoreV1Api(api)
        self.state = state
        self.endpoints = endpoints
        self.runs: dict[str, PodRun] = {}
        self.time_scale = 1.0
        self._knobs_text: str | None = None
        self.log_dir = state / "logs" / "vllm-sim"

    # ---- knobs -------------------------------------------------------------------------------------
    def load_knobs(self) -> None:
        path = self.state / "vllm.json"
        text = path.read_text() if path.exists() else ""
        if text == self._knobs_text:
            return
        self._knobs_text = text
        try:
            scale = float((json.loads(text) if text.strip() else {}).get("time_scale", 1.0))
            if scale <= 0:
                raise ValueError("time_scale must be > 0")
        except (ValueError, AttributeError) as exc:
            log.warning("knobs %s invalid (%s); keeping time_scale=%s", path, exc, self.time_scale)
            return
        if scale != self.time_scale:
            log.info("knobs: time_scale=%s", scale)
        self.time_scale = scale

    # ---- reconcile ---------------------------------------------------------------------------------
    def reconcile(self) -> float | None:
        """One pass over every predictor pod; returns seconds until the next transition is due."""
        self.load_knobs()
        pods = raw(self.core.list_pod_for_all_namespaces, label_selector=ISVC_LABEL)["items"]
        nodes = {n["metadata"]["name"]: n for n in raw(self.core.list_node)["items"]}
        seen: set[str] = set()
        due: list[float] = []
        for pod in pods:
            md, spec = pod["metadata"], pod.get("spec") or {}
            node = nodes.get(spec.get("nodeName") or "")
            if md.get("deletionTimestamp") or node is None or spec.get("schedulingGates"):
                continue
            if ((node["metadata"].get("annotations") or {}).get(it.KWOK_ANNOTATION)) != "fake":
                continue
            seen.add(md["uid"])
            try:
                run = self.runs.get(md["uid"]) or self.adopt(pod, node)
                wait = self.advance(run, pod, node)
                self.publish(run, pod)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                continue
            if wait is not None:
                due.append(wait)
        for uid in set(self.runs) - seen:
            run = self.runs.pop(uid)
            self.endpoints.close(run)
            self.ca_file(uid).unlink(missing_ok=True)
            log.info("pod %s: gone", run.key)
        return min(due) if due else None

    def adopt(self, pod: Obj, node: Obj) -> PodRun:
        """Start simulating a pod: judged (vLLM on a GPU node with a model) or run as kwok would."""
        md, spec = pod["metadata"], pod["spec"]
        uri = (md.get("annotations") or {}).get(SOURCE_URI_ANNOTATION, "")
        main = next((c for c in spec.get("containers") or [] if c["name"] == MAIN), None)
        judged = bool(main and node_gpus(node) > 0 and uri.startswith(("s3://", "oci://")))
        steps = [Step(c["name"], c.get("image", ""), c.get("terminationMessagePolicy") or "File")
                 for c in spec.get("containers") or []]
        inits = [Step(c["name"], c.get("image", ""), c.get("terminationMessagePolicy") or "File")
                 for c in spec.get("initContainers") or []]
        run = PodRun(md["uid"], md["namespace"], md["name"], md["labels"][ISVC_LABEL], spec["nodeName"], judged,
                     inits, steps)
        status = pod.get("status") or {}
        previous = {c["name"]: c for c in status.get("containerStatuses") or []}
        for step in run.containers:
            # a restarted simulator continues from what the pod already shows
            before = previous.get(step.name) or {}
            step.restarts = step.failures = int(before.get("restartCount") or 0)
            running = (before.get("state") or {}).get("running")
            if step.name == MAIN and before.get("ready") and running:
                run.resume_ready = True
                step.started_at = it.parse_time(running["startedAt"]) if running.get("startedAt") else None
        done = {c["name"]: c for c in status.get("initContainerStatuses") or []
                if ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0}
        for step in run.inits:
            if step.name in done:
                step.state, step.terminated = "terminated", done[step.name]["state"]["terminated"]
                step.started_at = now()
                step.restarts = int(done[step.name].get("restartCount") or 0)
        started = (pod.get("status") or {}).get("startTime")
        if started:
            run.start_time = it.parse_time(started)
        for cond in (pod.get("status") or {}).get("conditions") or []:
            run.conditions[cond["type"]] = (cond.get("status", ""), cond.get("lastTransitionTime") or iso(now()))
        self.runs[run.uid] = run
        log.info("pod %s: %s on %s (%s)", run.key, "judging vLLM" if judged else "ready as kwok would",
                 run.node, uri or "no storage URI")
        return run

    def advance(self, run: PodRun, pod: Obj, node: Obj) -> float | None:
        """Move the pod's containers along; patch its status when it changed."""
        mono = time.monotonic()
        waits: list[float] = []
        pending_init = self._advance_inits(run, pod, mono, waits)
        if not pending_init:
            for step in run.containers:
                if step.name == MAIN and run.judged:
                    self._advance_main(run, step, pod, node, mono, waits)
                elif step.state != "running":
                    self._start(step)
                    step.ready = True
        self.patch(run, pod, node)
        return min(waits) if waits else None

    def _advance_inits(self, run: PodRun, pod: Obj, mono: float, waits: list[float]) -> bool:
        """Run init containers in order; True while one of them has not completed."""
        for step in run.inits:
            if step.state == "terminated" and (step.terminated or {}).get("exitCode") == 0:
                continue
            if not run.judged:
                self._start(step)
                self._finish(run, step, 0, "Completed", [])
                continue
            if step.due > mono:
                waits.append(step.due - mono)
                return True
            if step.name == MODELCAR_INIT and step.image not in MODELCARS:
                self._pull_failed(run, step, mono, waits)
                return True
            if step.name == STORAGE_INITIALIZER and step.state == "waiting" and step.reason == "PodInitializing" \
                    and not self.ca_volume_ready(run, pod, step):
                step.due = mono + MOUNT_RETRY_S * self.time_scale   # the kubelet retries the mount
                waits.append(step.due - mono)
                return True
            if step.state == "running":
                # the storage initializer downloads the model into /mnt/models once per pod
                model = self.read_model(run, pod, fresh=step.name == STORAGE_INITIALIZER)
                if step.name == STORAGE_INITIALIZER and model.fetch_error:
                    self._crash(run, step, 1, model.fetch_error, mono, waits)
                    return True
                self._finish(run, step, 0, "Completed", [])
                continue
            if step.state == "terminated":   # failed before: show CrashLoopBackOff until the back-off ends
                self._to_backoff(run, step, mono, waits)
                return True
            self._start(step)
            step.due = mono + INIT_STEP_S * self.time_scale
            waits.append(step.due - mono)
            return True
        return False

    def _advance_main(self, run: PodRun, step: Step, pod: Obj, node: Obj, mono: float, waits: list[float]) -> None:
        if step.due > mono:
            waits.append(step.due - mono)
            return
        if step.state == "running" and step.verdict is not None:
            if step.verdict.outcome == "ready":
                if not step.ready:
                    step.ready = True
                    run.max_model_len = step.verdict.max_model_len
                    log.info("pod %s: vLLM ready (max_model_len %s, KV cache %.2f GiB, %s tokens)", run.key,
                             step.verdict.max_model_len, step.verdict.kv_cache_bytes / fit.GiB,
                             step.verdict.kv_cache_tokens)
                return
            self._crash(run, step, step.verdict.exit_code, step.verdict.log, mono, waits)
            log.info("pod %s: vLLM exited %s (%s): %s", run.key, step.verdict.exit_code, step.verdict.rule,
                     fit.root_cause(step.verdict.log)[:300] or step.verdict.message[:300])
            return
        if step.state == "terminated":
            self._to_backoff(run, step, mono, waits)
            return
        # start (or restart after the back-off): vLLM reads its arguments and /mnt/models again
        container = next(c for c in pod["spec"]["containers"] if c["name"] == MAIN)
        model = self.read_model(run, pod)
        argv = vllm_argv(container)
        place = fit.Placement(gpus=gpus_given(container), gpu_memory_mib=gpu_memory_mib(node),
                              shm_bytes=shm_bytes(pod, container, node), env=container_env(container),
                              pod_ip=pod_ip(run.uid), hostname=run.name)
        step.verdict = fit.judge(argv, model.shape, place, has_weights=model.has_weights)
        try:
            run.served_names = fit.parse_args(argv).served_names()
        except fit.ArgError:
            run.served_names = []
        if run.resume_ready and step.verdict.outcome == "ready":
            # vLLM was serving before this simulator restarted: it still is, nothing restarts
            run.resume_ready = False
            step.state, step.reason, step.message, step.ready = "running", "", "", True
            step.started_at = step.started_at or now()
            run.max_model_len = step.verdict.max_model_len
            return
        run.resume_ready = False
        self._start(step)
        self._write_log(run, step, step.verdict.log)
        step.due = mono + step.verdict.seconds * self.time_scale
        waits.append(step.due - mono)

    # ---- transitions --------------------------------------------------------------------------------
    @staticmethod
    def _start(step: Step) -> None:
        """Create and start the container; a restart after a crash counts in restartCount."""
        if step.state == "waiting" and step.reason == "CrashLoopBackOff":
            step.restarts += 1
        step.state, step.reason, step.message = "running", "", ""
        step.started_at = now()
        step.terminated = None

    @staticmethod
    def _finish(run: PodRun, step: Step, code: int, reason: str, log_lines: list[str]) -> None:
        step.state, step.ready = "terminated", False
        step.terminated = {"exitCode": code, "reason": reason, "startedAt": iso(step.started_at or now()),
                           "finishedAt": iso(now()), "containerID": container_id(run.uid, step.name, str(step.restarts))}
        message = termination_message(step.policy, log_lines) if code else ""
        if message:
            step.terminated["message"] = message

    def _crash(self, run: PodRun, step: Step, code: int, log_lines: list[str], mono: float, waits: list[float]) -> None:
        self._finish(run, step, code, "Error", log_lines)
        step.failures += 1
        step.due = mono + min(KUBELET_SYNC_S * self.time_scale, backoff_seconds(step.failures, self.time_scale) / 2)
        waits.append(step.due - mono)
        if step.name != MAIN:
            self._write_log(run, step, log_lines)

    def _to_backoff(self, run: PodRun, step: Step, mono: float, waits: list[float]) -> None:
        """The kubelet's sync after an exit: restart pending, `waiting: CrashLoopBackOff` until then."""
        backoff = backoff_seconds(step.failures, self.time_scale)
        step.last_terminated, step.terminated = step.terminated, None
        step.state, step.reason = "waiting", "CrashLoopBackOff"
        step.message = (f"back-off {go_duration(backoff / self.time_scale)} restarting failed container={step.name} "
                        f"pod={run.name}_{run.namespace}({run.uid})")
        self.event(run, step, "Warning", "BackOff",
                   f"Back-off restarting failed container {step.name} in pod {run.name}_{run.namespace}({run.uid})")
        step.due = mono + backoff
        waits.append(backoff)

    def _pull_failed(self, run: PodRun, step: Step, mono: float, waits: list[float]) -> None:
        """ErrImagePull on a pull attempt, ImagePullBackOff until the image back-off ends."""
        error = pull_error(step.image)
        if step.reason == "ErrImagePull":
            backoff = backoff_seconds(step.failures, self.time_scale)
            step.reason = "ImagePullBackOff"
            step.message = f'Back-off pulling image "{step.image}": ErrImagePull: {error}'
            self.event(run, step, "Normal", "BackOff", f'Back-off pulling image "{step.image}"')
            step.due = mono + backoff
        else:
            step.failures += 1
            step.state, step.reason, step.message = "waiting", "ErrImagePull", error
            self.event(run, step, "Warning", "Failed", f'Failed to pull image "{step.image}": {error}')
            step.due = mono + KUBELET_SYNC_S * self.time_scale
        waits.append(step.due - mono)

    # ---- the model ---------------------------------------------------------------------------------
    def read_model(self, run: PodRun, pod: Obj, fresh: bool = False) -> Model:
        if run.model is not None and not fresh:
            return run.model
        uri = (pod["metadata"].get("annotations") or {}).get(SOURCE_URI_ANNOTATION, "")
        if uri.startswith("oci://"):
            image = uri[len("oci://"):]
            total, cfg = MODELCARS.get(image, (0, None))
            model = Model(uri, shape=fit.ModelShape.from_config(cfg, total) if cfg else None, has_weights=bool(cfg))
        else:
            settings = s3_settings(self.core, pod, self.state)
            ca = storage_ca(pod)
            if ca and verifies_tls(settings):
                configmap, mount, path = ca
                data = self.configmap_data(run.namespace, configmap) or {}
                directory, _, file_name = path.rpartition("/")
                if directory != mount or file_name not in data:
                    run.model = Model(uri, fetch_error=storage_initializer_log(
                        uri, f"RuntimeError: Failed to find ca bundle file({path})."))
                    return run.model
                # the file as the kubelet mounts it, read again on every start
                ca_file = self.ca_file(run.uid)
                ca_file.parent.mkdir(parents=True, exist_ok=True)
                ca_file.write_text(data[file_name])
                settings["ca_bundle"] = str(ca_file)
            model = read_s3_model(uri, settings)
        run.model = model
        return model

    def ca_file(self, uid: str) -> Path:
        return self.state / "vllm-sim-ca" / f"{uid}.crt"

    def configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return raw(self.core.read_namespaced_config_map, name, namespace).get("data") or {}
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ca_volume_ready(self, run: PodRun, pod: Obj, step: Step) -> bool:
        """The kubelet mounts the CA bundle ConfigMap before any container starts; a missing one
        keeps the pod initializing with a FailedMount event, as on a real node."""
        ca = storage_ca(pod)
        if ca is None or self.configmap_data(run.namespace, ca[0]) is not None:
            return True
        self.event(run, step, "Warning", "FailedMount",
                   f'MountVolume.SetUp failed for volume "{CA_BUNDLE_VOLUME}" : configmap "{ca[0]}" not found')
        return False

    # ---- writing -----------------------------------------------------------------------------------
    def render(self, run: PodRun, pod: Obj, node: Obj) -> Obj:
        """The pod status the kubelet would report for the simulated containers."""
        stamp = iso(now())
        inits_done = all(s.state == "terminated" and (s.terminated or {}).get("exitCode") == 0 for s in run.inits)
        unready = [s.name for s in run.containers if not s.ready]
        incomplete = [s.name for s in run.inits if not (s.state == "terminated"
                                                         and (s.terminated or {}).get("exitCode") == 0)]
        wanted = {"PodReadyToStartContainers": ("True", "", ""),
                  "Initialized": ("True", "", "") if inits_done else
                  ("False", "ContainersNotInitialized", f"containers with incomplete status: [{' '.join(incomplete)}]"),
                  "ContainersReady": ("True", "", "") if not unready else
                  ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")}
        wanted["Ready"] = wanted["ContainersReady"]
        conditions = []
        for ctype, (status, reason, message) in wanted.items():
            before = run.conditions.get(ctype)
            since = before[1] if before and before[0] == status else stamp
            run.conditions[ctype] = (status, since)
            cond = {"type": ctype, "status": status, "lastTransitionTime": since, "lastProbeTime": None}
            cond.update({"reason": reason or None, "message": message or None})
            conditions.append(cond)
        host = node_ip(node)
        ip = pod_ip(run.uid)
        started = any(s.started_at for s in run.containers)
        return {"phase": "Running" if inits_done and started else "Pending", "conditions": conditions,
                "hostIP": host, "hostIPs": [{"ip": host}], "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": iso(run.start_time),
                "initContainerStatuses": [s.status(run.uid, True) for s in run.inits],
                "containerStatuses": [s.status(run.uid, False) for s in run.containers]}

    def patch(self, run: PodRun, pod: Obj, node: Obj) -> None:
        status = self.render(run, pod, node)
        current = pod.get("status") or {}
        ready_now = {c["type"]: c.get("status") for c in current.get("conditions") or []}
        # re-assert, once the node is Ready again, what kube-controller-manager changed during an outage
        drift = ready_now.get("Ready") != run.conditions["Ready"][0] and it.is_node_ready(node)
        digest = json.dumps(status, sort_keys=True, default=str)
        if digest == run.last_patch and not drift:
            return
        self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status},
                                              _content_type="application/strategic-merge-patch+json",
                                              _request_timeout=REQUEST_TIMEOUT)
        run.last_patch = digest

    def publish(self, run: PodRun, pod: Obj) -> None:
        main = run.main()
        if run.judged and main is not None and main.ready and main.verdict and main.verdict.outcome == "ready":
            self.endpoints.open(run)
        else:
            self.endpoints.close(run)

    def event(self, run: PodRun, step: Step, etype: str, reason: str, message: str) -> None:
        """Record a kubelet event on the pod, counting repeats as the kubelet's recorder does."""
        index = next((i for i, c in enumerate(run.containers) if c is step), None)
        path = f"spec.containers{{{step.name}}}" if index is not None else f"spec.initContainers{{{step.name}}}"
        name = f"{run.name}.{hashlib.sha256((reason + message.split(':')[0] + step.name).encode()).hexdigest()[:16]}"
        stamp = iso(now())
        try:
            ev = raw(self.core.read_namespaced_event, name, run.namespace)
            self.core.patch_namespaced_event(name, run.namespace, {"count": int(ev.get("count") or 1) + 1,
                                                                   "lastTimestamp": stamp, "message": message},
                                             _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("event %s: %s", name, exc.reason)
                return
            body = {"metadata": {"name": name, "namespace": run.namespace},
                    "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": run.namespace,
                                       "name": run.name, "uid": run.uid, "fieldPath": path},
                    "reason": reason, "message": message, "type": etype, "count": 1,
                    "firstTimestamp": stamp, "lastTimestamp": stamp,
                    "source": {"component": "kubelet", "host": run.node},
                    "reportingComponent": "kubelet", "reportingInstance": run.node}
            try:
                self.core.create_namespaced_event(run.namespace, body, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as err:
                if err.status not in (404, 409):
                    log.warning("event %s: %s", name, err.reason)

    def _write_log(self, run: PodRun, step: Step, lines: list[str]) -> None:
        """The container's whole log, one file per start (what `oc logs [--previous]` would show)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"{run.namespace}_{run.name}_{step.name}_{step.restarts}.log"
        path.write_text("\n".join(lines) + "\n")


# ---- the OpenAI-compatible stand-in ---------------------------------------------------------------------

class Endpoints:
    """One HTTP stand-in per InferenceService with a Ready vLLM predictor; published in endpoints.json."""

    def __init__(self, path: Path, ports: range) -> None:
        self.path, self.ports = path, ports
        self.servers: dict[str, tuple[http.server.ThreadingHTTPServer, str, str]] = {}
        self.lock = threading.Lock()
        self.write()

    def open(self, run: PodRun) -> None:
        key = f"{run.namespace}/{run.isvc}"
        with self.lock:
            if key in self.servers:
                return
            server = self._bind(run)
            if server is None:
                log.warning("endpoint %s: no free port in %s-%s", key, self.ports.start, self.ports.stop - 1)
                return
            threading.Thread(target=server.serve_forever, name=f"endpoint-{key}", daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}"
            self.servers[key] = (server, run.uid, url)
            log.info("endpoint %s: %s serving %s", key, url, run.served_names)
            self.write()

    def close(self, run: PodRun) -> None:
        key = f"{run.namespace}/{run.isvc}"
        with self.lock:
            entry = self.servers.get(key)
            if entry is None or entry[1] != run.uid:
                return
            del self.servers[key]
            entry[0].shutdown()
            entry[0].server_close()
            log.info("endpoint %s: closed", key)
            self.write()

    def close_all(self) -> None:
        with self.lock:
            for server, _, _ in self.servers.values():
                server.shutdown()
                server.server_close()
            self.servers.clear()
            self.write()

    def write(self) -> None:
        data = json.dumps({k: url for k, (_, _, url) in sorted(self.servers.items())}, indent=2) + "\n"
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(data)
        tmp.replace(self.path)

    def _bind(self, run: PodRun) -> http.server.ThreadingHTTPServer | None:
        handler = functools.partial(StandIn, list(run.served_names) or [run.isvc], run.max_model_len)
        used = {s.server_address[1] for s, _, _ in self.servers.values()}
        for port in self.ports:
            if port in used:
                continue
            try:
                server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            except OSError:
                continue
            server.daemon_threads = True
            return server
        return None


class StandIn(http.server.BaseHTTPRequestHandler):
    """A few vLLM OpenAI endpoints, each answer marked as simulated (header and content)."""

    server_version = "uvicorn"
    sys_version = ""

    def __init__(self, names: list[str], max_model_len: int, *args: Any, **kwargs: Any) -> None:
        self.names, self.max_model_len = names, max_model_len
        super().__init__(*args, **kwargs)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("endpoint %s: %s", self.names[0], fmt % args)

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header(SIM_HEADER, SIM_NAME)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, etype: str) -> None:
        self._send(code, {"error": {"message": message, "type": etype, "param": None, "code": code}})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path in ("/health", "/ping"):
            self._send(200, b"", "text/plain")
        elif self.path == "/version":
            self._send(200, {"version": fit.VLLM_VERSION, "simulated": True})
        elif self.path == "/v1/models":
            created = int(time.time())
            self._send(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": "/mnt/models",
                 "parent": None, "max_model_len": self.max_model_len, "permission": [], "simulated": True}
                for name in self.names]})
        else:
            self._error(404, "Not Found", "NotFoundError")

    def do_POST(self) -> None:  # noqa: N802
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._error(404, "Not Found", "NotFoundError")
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            self._error(400, "The request body is not valid JSON.", "BadRequestError")
            return
        model = body.get("model") or self.names[0]
        if model not in self.names:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        chat = self.path.endswith("chat/completions")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "messages: Field required", "BadRequestError")
                return
            prompt = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
        else:
            prompt = str(body.get("prompt", ""))
        text = (f"[simulated by {SIM_NAME}: no model ran] {model} received {len(prompt.split())} word(s): "
                f"{prompt[:200]}")
        created, rid = int(time.time()), uuid.uuid4().hex
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                      "logprobs": None, "finish_reason": "stop", "stop_reason": None}
            self._send(200, {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created,
                             "model": model, "choices": [choice], "usage": usage, "simulated": True})
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
            self._send(200, {"id": f"cmpl-{rid}", "object": "text_completion", "created": created,
                             "model": model, "choices": [choice], "usage": usage, "simulated": True})


# ---- main loop --------------------------------------------------------------------------------------

def run(sim: Simulator, stop: threading.Event, poll: float = 0.2, resync: float = 30.0) -> None:
    """Reconcile on watch events, when a transition is due, and every `resync` seconds."""
    changed = threading.Event()
    Watcher("pods", functools.partial(sim.core.list_pod_for_all_namespaces, label_selector=ISVC_LABEL),
            changed, stop).start()
    Watcher("nodes", sim.core.list_node, changed, stop).start()
    next_resync, due_at, backoff = 0.0, None, 1.0
    while not stop.is_set():
        changed.wait(poll)
        mono = time.monotonic()
        if not (changed.is_set() or mono >= next_resync or (due_at is not None and mono >= due_at)):
            continue
        changed.clear()
        try:
            wait = sim.reconcile()
            backoff = 1.0
        except Exception as exc:  # the daemon must outlive apiserver restarts and odd objects
            log.warning("reconcile: %s: %s; retrying in %.0fs", type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", backoff)
            wait, backoff = backoff, min(backoff * 2, 10.0)
        due_at = None if wait is None else time.monotonic() + max(wait, 0.05)
        next_resync = time.monotonic() + resync


def port_range(text: str) -> range:
    start, _, end = text.partition("-")
    return range(int(start), int(end or start) + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--state", required=True, type=Path, help="the testbed state directory (.testbed)")
    parser.add_argument("--ports", required=True, type=port_range, help="ports for the stand-in endpoints, A-B")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s vllm_sim %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    endpoints = Endpoints(args.state / "endpoints.json", args.ports)
    sim = Simulator(config.new_client_from_config(config_file=str(args.kubeconfig)), args.state, endpoints)
    sim.load_knobs()
    log.info("started (state %s, endpoint ports %s-%s)", args.state, args.ports.start, args.ports.stop - 1)
    try:
        run(sim, stop)
    finally:
        endpoints.close_all()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
