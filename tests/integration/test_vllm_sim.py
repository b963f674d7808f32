"""The simulated GPU runtime (testbed/vllm_sim.py) against the testbed: real KServe, Kueue and kwok.

InferenceServices are created as a user would (ServingRuntime + ISVC, raw mode), their predictor
pods are queued by Kueue onto the kwok L4 nodes, and vllm_sim decides as vLLM v0.11.0 would whether
the model fits. The stand-in model on S3 declares Mistral-Small-24B-Instruct-2501's real shape and
47 GB of BF16 weights (playbooks/files/make_model.py) while its files stay small.
"""
from __future__ import annotations

import importlib.util
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko
import _s3_helpers as s3h
import testbed
from _poll import wait_for
from processes import start, stop

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "vllm-cuda-runtime"
INT4_IMAGE = "registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5"
SHM = {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
       "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}


def serving_runtime(namespace: str) -> dict[str, Any]:
    """RHOAI's vLLM CUDA runtime (odh-model-controller's template), with the log tail as termination message."""
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": RUNTIME, "namespace": namespace},
            "spec": {"supportedModelFormats": [{"name": "vLLM", "autoSelect": True}], "multiModel": False,
                     "containers": [{
                         "name": "kserve-container", "image": "registry.redhat.io/rhaiis/vllm-cuda-rhel9:3.2.3",
                         "command": ["python", "-m", "vllm.entrypoints.openai.api_server"],
                         "args": ["--port=8080", "--model=/mnt/models", "--served-model-name={{.Name}}"],
                         "env": [{"name": "HF_HOME", "value": "/tmp/hf_home"}],
                         "terminationMessagePolicy": "FallbackToLogsOnError",
                         "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}


def inference_service(name: str, namespace: str, gpus: int, storage_uri: str, args: list[str] | None = None,
                      shm: bool = False) -> dict[str, Any]:
    """A raw-mode ISVC queued through Kueue with the demo's requests and its own vLLM args."""
    model: dict[str, Any] = {"modelFormat": {"name": "vLLM"}, "runtime": RUNTIME, "storageUri": storage_uri,
                             "args": list(args or []),
                             "resources": {"requests": {"cpu": "2", "memory": "8Gi", ko.GPU: str(gpus)},
                                           "limits": {ko.GPU: str(gpus)}}}
    predictor: dict[str, Any] = {"minReplicas": 1, "maxReplicas": 1, "deploymentStrategy": {"type": "Recreate"},
                                 "tolerations": [ko.TOLERATION], "model": model}
    if shm:
        predictor["volumes"] = SHM["volumes"]
        model["volumeMounts"] = SHM["volumeMounts"]
    return {"apiVersion": ko.ISVC, "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace, "labels": {ko.QUEUE_LABEL: ko.QUEUE},
                         # KServe 0.16 spells raw mode `Standard`; RHOAI 3.0 writes RawDeployment
                         "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
            "spec": {"predictor": predictor}}


@pytest.fixture
def queued(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str]) -> Iterator[str]:
    """The demo's 4+1 GPU quota for this namespace (LocalQueue ko.QUEUE) and RHOAI's vLLM runtime.

    Not the operator's LocalQueue `default`: that one points at the DSC's ClusterQueue, which the demo's own
    models may be holding when this test runs."""
    with ko.queues(k8s, namespace):
        ko.create(k8s, serving_runtime(namespace))
        yield namespace


@pytest.fixture(scope="module")
def bf16_uri(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in BF16 model on the testbed S3, declaring the real model's shape and size."""
    spec = importlib.util.spec_from_file_location("make_model", ROOT / "playbooks" / "files" / "make_model.py")
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    src = tmp_path_factory.mktemp("model")
    files = make_model.make_model(src, 1 << 20, 2, 7, "mistralai/Mistral-Small-24B-Instruct-2501")
    s3 = s3h.client(s3_env)
    bucket = "it-vllm-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    for fname, _ in files:
        s3.upload_file(str(src / fname), bucket, f"mistral-small-24b/{fname}")
    try:
        yield f"s3://{bucket}/mistral-small-24b/"
    finally:
        s3h.purge(s3, bucket)


def main_status(k8s: client.ApiClient, name: str, namespace: str) -> tuple[Any, Any]:
    """(pod, kserve-container status) of the ISVC's predictor pod, or (None, None)."""
    pods = ko.predictor_pods(k8s, name, namespace)
    if not pods:
        return None, None
    pod = pods[0]
    status = next((c for c in pod.status.container_statuses or [] if c.name == "kserve-container"), None)
    return pod, status


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def describe(k8s: client.ApiClient, name: str, namespace: str) -> Callable[[], str]:
    def explain() -> str:
        pod, status = main_status(k8s, name, namespace)
        if pod is None:
            return "no predictor pod"
        return f"pod {pod.metadata.name} phase {pod.status.phase}, init {pod.status.init_container_statuses}, " \
               f"kserve-container {status}"
    return explain


def endpoints() -> dict[str, str]:
    path = testbed.STATE / "endpoints.json"
    return json.loads(path.read_text()) if path.exists() else {}


def sim_log(pod: Any) -> str:
    """The whole simulated container log of the pod's first start (what `oc logs` would show)."""
    path = testbed.STATE / "logs" / "vllm-sim" / f"{pod.metadata.namespace}_{pod.metadata.name}_kserve-container_0.log"
    return path.read_text()


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def crash_looping(k8s: client.ApiClient, name: str, namespace: str, restarts: int) -> Any:
    """Wait until the container restarted `restarts` times after exiting 1; return its status."""
    seen_backoff: list[str] = []

    def check() -> Any:
        pod, status = main_status(k8s, name, namespace)
        if status is None:
            return None
        if status.state.waiting and status.state.waiting.reason == "CrashLoopBackOff":
            seen_backoff.append(status.state.waiting.message)
        assert not pod_ready(pod), "a predictor whose vLLM exits must not be Ready"
        return status if status.restart_count >= restarts and seen_backoff else None
    status = wait_for(f"{name}'s vLLM to crash-loop ({restarts} restarts)", check, timeout=120,
                      explain=describe(k8s, name, namespace))
    assert seen_backoff[0].startswith("back-off ") and "restarting failed container=kserve-container" in seen_backoff[0]
    return status


def test_bf16_on_four_gpus_without_tensor_parallelism_crash_loops(k8s: client.ApiClient, queued: str,
                                                                 bf16_uri: str) -> None:
    ko.create(k8s, inference_service("mistral-3-bf16", queued, 4, bf16_uri))
    status = crash_looping(k8s, "mistral-3-bf16", queued, restarts=2)
    last = status.last_state.terminated
    assert (last.exit_code, last.reason) == (1, "Error")
    # the kubelet's tail of vLLM's log: the API server's error, the engine's root cause above it
    assert last.message.rstrip("\n").endswith(
        "RuntimeError: Engine core initialization failed. See root cause above. "
        "Failed core proc(s): {'EngineCore_DP0': 1}")
    assert len(last.message.encode()) <= 2048
    pod, _ = main_status(k8s, "mistral-3-bf16", queued)
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in sim_log(pod)
    assert "GPU 0 has a total capacity of 22.49 GiB" in sim_log(pod)
    assert "mistral-3-bf16" not in {k.split("/")[1] for k in endpoints() if k.startswith(queued + "/")}
    events = client.CoreV1Api(k8s).list_namespaced_event(queued, field_selector=f"involvedObject.name={pod.metadata.name}")
    assert any(e.reason == "BackOff" and e.message.startswith("Back-off restarting failed container kserve-container")
               for e in events.items)


def test_bf16_with_tensor_parallelism_and_shm_serves_a_chat_completion(k8s: client.ApiClient, queued: str,
                                                                      bf16_uri: str) -> None:
    ko.create(k8s, inference_service("mistral-3-bf16", queued, 4, bf16_uri, ["--tensor-parallel-size=4"], shm=True))
    key = f"{queued}/mistral-3-bf16"
    url = wait_for("the predictor's endpoint to be published", lambda: endpoints().get(key), timeout=120,
                   explain=describe(k8s, "mistral-3-bf16", queued))
    pod, status = main_status(k8s, "mistral-3-bf16", queued)
    assert pod_ready(pod) and status.ready and status.restart_count == 0
    assert [c.state.terminated.reason for c in pod.status.init_container_statuses] == ["Completed"]

    code, headers, models = http(f"{url}/v1/models")
    assert code == 200 and headers["x-simulated-by"] == "testbed/vllm_sim.py"
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [("mistral-3-bf16", 32768)]
    code, _, answer = http(f"{url}/v1/chat/completions", {
        "model": "mistral-3-bf16", "messages": [{"role": "user", "content": "Say hello"}]})
    assert code == 200 and answer["object"] == "chat.completion" and answer["model"] == "mistral-3-bf16"
    assert answer["choices"][0]["message"]["content"].startswith("[simulated by testbed/vllm_sim.py")
    code, _, error = http(f"{url}/v1/chat/completions", {"model": "other", "messages": [{"role": "user",
                                                                                        "content": "x"}]})
    assert (code, error["error"]["message"]) == (404, "The model `other` does not exist.")

    ko.delete(k8s, ko.ISVC, "InferenceService", "mistral-3-bf16", queued)
    wait_for("the endpoint to be withdrawn", lambda: key not in endpoints(), timeout=120)


def test_bf16_with_tensor_parallelism_without_shm_fails_in_nccl(k8s: client.ApiClient, queued: str,
                                                               bf16_uri: str) -> None:
    ko.create(k8s, inference_service("mistral-3-bf16", queued, 4, bf16_uri,
                                     ["--tensor-parallel-size=4", "--enable-auto-tool-choice",
                                      "--tool-call-parser=mistral"]))
    crash_looping(k8s, "mistral-3-bf16", queued, restarts=1)
    pod, _ = main_status(k8s, "mistral-3-bf16", queued)
    assert "RuntimeError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)" in sim_log(pod)


def test_int4_modelcar_on_one_l4_needs_a_shorter_max_model_len(k8s: client.ApiClient, queued: str) -> None:
    uri = f"oci://{INT4_IMAGE}"
    variants = {"int4-default": [], "int4-4096": ["--max-model-len=4096"],
                "int4-8192-fp8": ["--max-model-len=8192", "--kv-cache-dtype=fp8"]}
    for name, args in variants.items():
        ko.create(k8s, inference_service(name, queued, 1, uri, args))
    for name in ("int4-4096", "int4-8192-fp8"):
        url = wait_for(f"{name} to serve", lambda n=name: endpoints().get(f"{queued}/{n}"), timeout=120,
                       explain=describe(k8s, name, queued))
        assert http(f"{url}/v1/models")[2]["data"][0]["max_model_len"] == int(variants[name][0].split("=")[1])
    crash_looping(k8s, "int4-default", queued, restarts=1)
    pod, _ = main_status(k8s, "int4-default", queued)
    assert "ValueError: To serve at least one request with the models's max seq len (32768), (5.00 GiB KV cache " \
           "is needed, which is larger than the available KV cache memory (4.07 GiB)." in sim_log(pod)


def test_unknown_modelcar_image_fails_to_pull(k8s: client.ApiClient, queued: str) -> None:
    ko.create(k8s, inference_service("int4", queued, 1, "oci://registry.invalid/modelcars/mistral-3-int4:latest"))

    def pull_backoff() -> Any:
        pod, _ = main_status(k8s, "int4", queued)
        init = [c for c in (pod.status.init_container_statuses or [])] if pod else []
        waiting = [c.state.waiting for c in init if c.state.waiting]
        return pod if any(w.reason == "ImagePullBackOff" for w in waiting) else None
    pod = wait_for("ImagePullBackOff on the modelcar", pull_backoff, timeout=120, explain=describe(k8s, "int4", queued))
    assert pod.status.phase == "Pending" and not pod_ready(pod)
    waiting = next(c.state.waiting for c in pod.status.init_container_statuses if c.state.waiting)
    assert waiting.message == ('Back-off pulling image "registry.invalid/modelcars/mistral-3-int4:latest": '
                               'ErrImagePull: rpc error: code = Unknown desc = pinging container registry '
                               'registry.invalid: Get "https://registry.invalid/v2/": dial tcp: lookup '
                               'registry.invalid: no such host')


def test_missing_model_fails_in_the_storage_initializer(k8s: client.ApiClient, queued: str, bf16_uri: str) -> None:
    missing = bf16_uri.rstrip("/") + "-missing/"
    ko.create(k8s, inference_service("nomodel", queued, 1, missing))

    def init_crash() -> Any:
        pod, _ = main_status(k8s, "nomodel", queued)
        for c in (pod.status.init_container_statuses or []) if pod else []:
            term = c.last_state.terminated if c.last_state else None
            if c.name == "storage-initializer" and term and c.restart_count >= 1:
                return term
        return None
    term = wait_for("the storage initializer to crash-loop", init_crash, timeout=120,
                    explain=describe(k8s, "nomodel", queued))
    prefix = missing.split("/", 3)[3]
    assert term.exit_code == 1
    assert term.message.rstrip("\n").endswith(f"RuntimeError: Failed to fetch model. No model found in {prefix}.")


def test_a_ready_predictor_survives_an_outage_and_a_simulator_restart(k8s: client.ApiClient, queued: str) -> None:
    """Ready again after kube-controller-manager's NotReady; a restarted simulator keeps vLLM serving."""
    ko.create(k8s, inference_service("int4", queued, 1, f"oci://{INT4_IMAGE}", ["--max-model-len=4096"]))
    key = f"{queued}/int4"
    wait_for("the endpoint", lambda: endpoints().get(key), timeout=120, explain=describe(k8s, "int4", queued))
    pod, _ = main_status(k8s, "int4", queued)
    client.CoreV1Api(k8s).patch_namespaced_pod_status(pod.metadata.name, queued, {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}})
    wait_for("the pod Ready again", lambda: pod_ready(main_status(k8s, "int4", queued)[0]), timeout=60)

    comp = next(c for c in testbed.components() if c.name == "vllm-sim")
    stop(testbed.RUN, comp.name)
    assert key not in endpoints()   # a stopped simulator serves nothing and says so
    start(testbed.RUN, testbed.LOGS, comp)
    wait_for("the endpoint published again", lambda: endpoints().get(key), timeout=60)
    pod, status = main_status(k8s, "int4", queued)
    assert pod_ready(pod) and status.restart_count == 0 and status.state.running
