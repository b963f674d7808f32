"""Unit tests of the simulated GPU runtime's rules (testbed/vllm_fit_sim.py) and kubelet logic (vllm_sim.py).

No cluster: each rule of vLLM v0.11.0 the simulator reproduces, with its message, and the demo's
known outcomes on NVIDIA L4s (23034 MiB).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testbed"))

import vllm_fit_sim as fit  # noqa: E402
import vllm_sim as sim  # noqa: E402

L4 = 23034
BF16_SIZE, INT4_SIZE = 47_144_806_400, 14_147_430_400
BF16 = fit.ModelShape.from_config(sim.MISTRAL_SMALL_24B_CONFIG, BF16_SIZE)
INT4_IMAGE = "registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5"
INT4 = fit.ModelShape.from_config(sim.MODELCARS[INT4_IMAGE][1], sim.MODELCARS[INT4_IMAGE][0])
RUNTIME = ["--port=8080", "--model=/mnt/models", "--served-model-name=mistral-3-bf16"]
SHM_8GI = 8 * fit.GiB


def judge(extra: list[str], shape: fit.ModelShape | None = BF16, gpus: int = 4, shm: int = fit.DEFAULT_SHM_BYTES,
          env: dict[str, str] | None = None, **kw: object) -> fit.Verdict:
    place = fit.Placement(gpus=gpus, gpu_memory_mib=L4, shm_bytes=shm, env=env or {}, pod_ip="10.128.3.4",
                          hostname="pod-a")
    return fit.judge(RUNTIME + extra, shape, place, **kw)


def cause(verdict: fit.Verdict) -> str:
    return fit.root_cause(verdict.log)


# ---- the demo's known outcomes -------------------------------------------------------------------------

def test_bf16_on_one_l4_of_four_runs_out_of_cuda_memory() -> None:
    v = judge([])
    assert (v.outcome, v.rule, v.exit_code) == ("exit", "cuda-oom", 1)
    assert cause(v).startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ")
    assert "GPU 0 has a total capacity of 22.49 GiB of which " in cause(v)
    assert "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" in cause(v)


def test_bf16_with_tensor_parallel_four_and_shm_is_ready_at_full_length() -> None:
    v = judge(["--tensor-parallel-size=4"], shm=SHM_8GI)
    assert (v.outcome, v.rule, v.max_model_len) == ("ready", "fits", 32768)
    # 0.9 x 23034 MiB - 47144806400/4 - 3 GiB overhead
    assert v.kv_cache_bytes == int(0.9 * L4 * fit.MiB - BF16_SIZE / 4 - 3 * fit.GiB)
    assert any("Available KV cache memory: 6.27 GiB" in line for line in v.log)


def test_int4_on_one_l4_fails_at_the_default_max_model_len() -> None:
    v = judge([], shape=INT4, gpus=1)
    assert (v.outcome, v.rule) == ("exit", "max-model-len")
    assert cause(v) == (
        "ValueError: To serve at least one request with the models's max seq len (32768), (5.00 GiB KV cache is "
        "needed, which is larger than the available KV cache memory (4.07 GiB). Based on the available memory, the "
        "estimated maximum model length is 26656. Try increasing `gpu_memory_utilization` or decreasing "
        "`max_model_len` when initializing the engine.")


@pytest.mark.parametrize("extra", [["--max-model-len=4096"], ["--max-model-len", "8192", "--kv-cache-dtype=fp8"],
                                   ["--max-model-len=8k", "--kv-cache-dtype", "fp8_e4m3"]])
def test_int4_on_one_l4_runs_with_a_shorter_max_model_len(extra: list[str]) -> None:
    v = judge(extra, shape=INT4, gpus=1)
    assert v.outcome == "ready", cause(v)
    assert v.max_model_len == fit.human_readable_int(extra[0].split("=")[-1] if "=" in extra[0] else extra[1])


# ---- each rule, each message ------------------------------------------------------------------------------

def test_tensor_parallel_without_shm_fails_in_nccl() -> None:
    v = judge(["--tensor-parallel-size=4"])
    assert v.rule == "nccl-shm"
    assert cause(v) == "RuntimeError: NCCL error: unhandled system error (run with NCCL_DEBUG=INFO for details)"
    assert not any("NCCL WARN" in line for line in v.log)


def test_nccl_debug_prints_nccls_warnings() -> None:
    v = judge(["--tensor-parallel-size=4"], shm=512 * fit.MiB, env={"NCCL_DEBUG": "INFO"})
    warns = [line for line in v.log if "NCCL WARN" in line]
    assert "pod-a:431:468 [0] misc/shmutils.cc:87 NCCL WARN Error: failed to extend /dev/shm/nccl-Dq3vTk to " \
           "9637892 bytes, error: No space left on device (28)" in warns[0]
    assert "Error while creating shared memory segment /dev/shm/nccl-Dq3vTk (size 9637888), " \
           "error: No space left on device (28)" in warns[1]


def test_shm_of_exactly_one_gib_is_enough() -> None:
    assert judge(["--tensor-parallel-size=4"], shm=fit.GiB).outcome == "ready"
    assert judge(["--tensor-parallel-size=4"], shm=fit.GiB - 1).rule == "nccl-shm"


def test_more_ranks_than_gpus_waits_for_ray_then_fails() -> None:
    v = judge(["-tp", "4"], gpus=1, shm=SHM_8GI)
    assert v.rule == "tensor-parallel-above-gpus"
    assert v.seconds == fit.NCCL_INIT_S + 1800
    assert cause(v) == (
        "ValueError: Cannot provide a placement group of placement_group_specs=[{'GPU': 1.0, 'node:10.128.3.4': "
        "0.001}, {'GPU': 1.0}, {'GPU': 1.0}, {'GPU': 1.0}] within 1800 seconds. See `ray status` and `ray list "
        "nodes` to make sure the cluster has enough resources.")
    waits = [line for line in v.log if "Waiting for creating a placement group" in line]
    assert [re.search(r"specs for (\d+) seconds", w).group(1) for w in waits] == \
        ["10", "30", "70", "150", "310", "630", "1270"]


def test_pipeline_parallel_counts_in_the_world_size() -> None:
    assert judge(["-tp", "2", "-pp", "2"], gpus=2, shm=SHM_8GI).rule == "tensor-parallel-above-gpus"


def test_tensor_parallel_two_loads_but_leaves_no_kv_cache() -> None:
    v = judge(["--tensor-parallel-size=2"], shm=SHM_8GI)
    assert v.rule == "no-kv-memory"
    assert cause(v) == ("ValueError: No available memory for the cache blocks. Try increasing "
                        "`gpu_memory_utilization` when initializing the engine.")


def test_gpu_memory_utilization_moves_the_budget() -> None:
    assert judge(["--tensor-parallel-size=4", "--gpu-memory-utilization=0.5"], shm=SHM_8GI).rule == "no-kv-memory"
    assert judge(["--gpu-memory-utilization", "0.95"], shape=INT4, gpus=1).outcome == "ready"


def test_heads_must_divide_by_tensor_parallel_size() -> None:
    v = judge(["--tensor-parallel-size=3"], shm=SHM_8GI)
    assert v.rule == "heads-not-divisible"
    assert v.log[-3:] == [
        "(APIServer pid=1) pydantic_core._pydantic_core.ValidationError: 1 validation error for VllmConfig",
        "(APIServer pid=1)   Value error, Total number of attention heads (32) must be divisible by tensor parallel "
        "size (3). [type=value_error, input_value=ArgsKwargs((), {...}), input_type=ArgsKwargs]",
        "(APIServer pid=1)     For further information visit https://errors.pydantic.dev/2.11/v/value_error"]


def test_max_model_len_above_the_models_needs_the_env_override() -> None:
    v = judge(["--max-model-len=64K"], shape=INT4, gpus=1)
    assert v.rule == "max-model-len-above-derived"
    assert "Value error, User-specified max_model_len (65536) is greater than the derived max_model_len " \
           "(max_position_embeddings=32768.0 or model_max_length=None in model's config.json). To allow overriding " \
           "this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1." in v.log[-2]
    over = judge(["--max-model-len=65536"], shape=INT4, gpus=1, env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    assert over.rule == "max-model-len"   # accepted, then the KV cache cannot hold it


def test_no_gpu_in_the_container() -> None:
    v = judge([], shape=INT4, gpus=0)
    assert v.rule == "no-gpu"
    assert v.message == ("(APIServer pid=1) RuntimeError: Failed to infer device type, please set the environment "
                         "variable `VLLM_LOGGING_LEVEL=DEBUG` to turn on verbose logging to help debug the issue.")


def test_no_config_json() -> None:
    v = judge([], shape=None, gpus=1)
    assert v.rule == "no-config"
    assert cause(v) == ("OSError: /mnt/models does not appear to have a file named config.json. Checkout "
                        "'https://huggingface.co//mnt/models/tree/None' for available files.")


def test_no_weight_files() -> None:
    v = judge([], shape=INT4, gpus=1, has_weights=False)
    assert (v.rule, cause(v)) == ("no-weights", "RuntimeError: Cannot find any model weights with `/mnt/models`")


@pytest.mark.parametrize("argv,message", [
    (["--kv-cache-dtype=int8"], "api_server.py: error: argument --kv-cache-dtype: invalid choice: 'int8' (choose from "
                                "'auto', 'bfloat16', 'fp8', 'fp8_e4m3', 'fp8_e5m2', 'fp8_inc')"),
    (["-tp", "four"], "api_server.py: error: argument --tensor-parallel-size/-tp: invalid int value: 'four'"),
    (["--max-model-len=1.5K"], "api_server.py: error: argument --max-model-len: Decimals are not allowed with binary "
                               "suffixes like K. Did you mean to use 1.5k instead?"),
    (["--gpu-memory-utilization"], "api_server.py: error: argument --gpu-memory-utilization: expected one argument"),
])
def test_bad_arguments_exit_2_with_argparse_wording(argv: list[str], message: str) -> None:
    v = judge(argv)
    assert (v.rule, v.exit_code, v.message) == ("arguments", 2, message)


def test_engine_failures_end_with_the_api_servers_error() -> None:
    """vLLM's V1 engine runs in a child process: the API server's RuntimeError is the log's last line."""
    v = judge([])
    assert v.message == ("(APIServer pid=1) RuntimeError: Engine core initialization failed. See root cause above. "
                         "Failed core proc(s): {'EngineCore_DP0': 1}")
    assert any("[core.py:708] EngineCore failed to start." in line for line in v.log)


def test_kv_cache_arithmetic_follows_vllm() -> None:
    args = fit.parse_args(RUNTIME + ["--tensor-parallel-size=4"])
    # 40 layers x 2 (K, V) x 16 tokens x 2 KV heads per GPU x 128 x 2 bytes
    assert fit.kv_block_bytes(args, BF16) == 40 * 2 * 16 * 2 * 128 * 2
    assert fit.kv_needed_bytes(args, BF16, 32768) == 2048 * fit.kv_block_bytes(args, BF16)
    assert fit.kv_needed_bytes(args, BF16, 17) == 2 * fit.kv_block_bytes(args, BF16)
    one = fit.parse_args(RUNTIME + ["--kv-cache-dtype=fp8"])
    assert fit.kv_block_bytes(one, BF16) == 40 * 2 * 16 * 8 * 128 * 1
    # more TP than KV heads: each GPU still holds one KV head (vLLM's max(1, heads // tp))
    assert fit.kv_block_bytes(fit.parse_args(["-tp", "16"]), BF16) == 40 * 2 * 16 * 1 * 128 * 2


def test_estimated_max_model_len_is_the_longest_that_fits() -> None:
    args = fit.parse_args(RUNTIME)
    available = 10 * fit.kv_block_bytes(args, INT4) + 5
    assert fit.estimate_max_model_len(args, INT4, 32768, available) == 160
    assert fit.estimate_max_model_len(args, INT4, 32768, 1) == 0


def test_model_shape_from_config() -> None:
    shape = fit.ModelShape.from_config({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
                                        "max_position_embeddings": 131072, "seq_length": 8192}, 10)
    assert (shape.num_key_value_heads, shape.head_dim, shape.derived_max_len, shape.max_len_key) == \
        (32, 128, 8192, "seq_length")
    assert fit.ModelShape.from_config({}, 1).derived_max_len == 2048


def test_parse_args_reads_the_forms_vllm_accepts() -> None:
    args = fit.parse_args(["serve", "/models/x", "--served-model-name", "a", "b", "--tensor-parallel-size", "2",
                           "--max-model-len=32k", "--dtype=half", "--enable-auto-tool-choice"])
    assert (args.model, args.served_names(), args.tensor_parallel_size, args.max_model_len, args.dtype) == \
        ("/models/x", ["a", "b"], 2, 32000, "half")


def test_torch_size_follows_pytorchs_units() -> None:
    assert [fit.torch_size(n) for n in (0, 1024, 1025, fit.MiB, fit.MiB + 1, fit.GiB + 1)] == \
        ["0 bytes", "1024 bytes", "1.00 KiB", "1024.00 KiB", "1.00 MiB", "1.00 GiB"]


# ---- the kubelet side ---------------------------------------------------------------------------------------

def test_crash_loop_back_off_doubles_to_five_minutes() -> None:
    assert [sim.backoff_seconds(n, 1.0) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert sim.backoff_seconds(1, 0.05) == 0.5
    assert [sim.go_duration(s) for s in (10, 20, 80, 160, 300)] == ["10s", "20s", "1m20s", "2m40s", "5m0s"]


def test_termination_message_follows_the_policy() -> None:
    lines = [f"line {i} " + "x" * 40 for i in range(200)]
    assert sim.termination_message("File", lines) == ""
    assert sim.termination_message(None, lines) == ""
    msg = sim.termination_message("FallbackToLogsOnError", lines)
    assert len(msg.encode()) == 2048 and msg.endswith("line 199 " + "x" * 40 + "\n")
    short = sim.termination_message("FallbackToLogsOnError", [f"l{i}" for i in range(100)])
    assert short.splitlines() == [f"l{i}" for i in range(20, 100)]


def test_pull_errors_name_the_registry_problem() -> None:
    assert sim.pull_error("registry.invalid/modelcars/m:latest") == (
        'rpc error: code = Unknown desc = pinging container registry registry.invalid: Get '
        '"https://registry.invalid/v2/": dial tcp: lookup registry.invalid: no such host')
    assert sim.pull_error("quay.io/org/modelcar:2") == \
        "rpc error: code = Unknown desc = reading manifest 2 in quay.io/org/modelcar: manifest unknown"


def _pod(volumes: list[dict], mounts: list[dict], limits: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "kserve-container", "volumeMounts": mounts, "resources": {"limits": limits or {}}}
    return {"spec": {"volumes": volumes, "containers": [container]}}, container


def test_shm_size_is_what_the_kubelet_mounts() -> None:
    node = {"status": {"allocatable": {"memory": "190Gi"}}}
    assert sim.shm_bytes(*_pod([], []), node) == 64 * fit.MiB
    shm = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    at = [{"name": "shm", "mountPath": "/dev/shm"}]
    assert sim.shm_bytes(*_pod(shm, at), node) == 8 * fit.GiB
    # no sizeLimit: the pod's memory limit, else the node's allocatable memory
    unlimited = [{"name": "shm", "emptyDir": {"medium": "Memory"}}]
    assert sim.shm_bytes(*_pod(unlimited, at, {"memory": "128Gi"}), node) == 128 * fit.GiB
    assert sim.shm_bytes(*_pod(unlimited, at), node) == 190 * fit.GiB
    # a disk-backed emptyDir or a mount elsewhere does not count as /dev/shm in memory
    assert sim.shm_bytes(*_pod([{"name": "shm", "emptyDir": {}}], at), node) > fit.GiB
    assert sim.shm_bytes(*_pod(shm, [{"name": "shm", "mountPath": "/cache"}]), node) == 64 * fit.MiB


def test_vllm_argv_and_gpus_from_the_container() -> None:
    c = {"command": ["python", "-m", "vllm.entrypoints.openai.api_server"], "args": ["--port=8080", "-tp", "4"],
         "resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"nvidia.com/gpu": "4"}}}
    assert sim.vllm_argv(c) == ["--port=8080", "-tp", "4"]
    assert sim.vllm_argv({"command": ["vllm", "serve", "/m"], "args": ["-tp=2"]}) == ["serve", "/m", "-tp=2"]
    assert sim.gpus_given(c) == 4
    assert sim.gpus_given({"resources": {"requests": {"nvidia.com/gpu": 1}}}) == 1
    assert sim.gpus_given({}) == 0


def test_gpu_memory_from_label_then_instance_type() -> None:
    assert sim.gpu_memory_mib({"metadata": {"labels": {"nvidia.com/gpu.memory": "40960"}}}) == 40960
    assert sim.gpu_memory_mib({"metadata": {"labels": {"node.kubernetes.io/instance-type": "g5.12xlarge"}}}) == 23028


def test_make_model_declares_what_the_sim_knows() -> None:
    spec = importlib.util.spec_from_file_location("make_model", ROOT / "playbooks" / "files" / "make_model.py")
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    size, cfg = make_model.DECLARED["mistral-small-24b"]
    assert size == BF16_SIZE
    assert {k: cfg[k] for k in sim.MISTRAL_SMALL_24B_CONFIG} == sim.MISTRAL_SMALL_24B_CONFIG


def test_make_model_files_stay_small_and_declare_the_real_size(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_model", ROOT / "playbooks" / "files" / "make_model.py")
    make_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_model)
    files = make_model.make_model(tmp_path / "a", 1 << 20, 2, 1, "x")
    # The shards and, as Mistral's repository has it, the same size again as consolidated.safetensors.
    assert sum(s for f, s in files if f.startswith("model-")) < (1 << 20) + 4096
    assert dict(files)["consolidated.safetensors"] < (1 << 20) + 4096
    assert json.loads((tmp_path / "a" / "model.safetensors.index.json").read_text())["metadata"]["total_size"] == BF16_SIZE
    assert json.loads((tmp_path / "a" / "config.json").read_text())["num_hidden_layers"] == 40
    files = make_model.make_model(tmp_path / "b", 1 << 20, 2, 1, "x", declare="files")
    assert "consolidated.safetensors" not in dict(files)
    index = json.loads((tmp_path / "b" / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(s for f, s in files if f.endswith(".safetensors"))


def test_kwok_stages_leave_predictor_pods_to_the_sim(tmp_path: Path) -> None:
    import testbed
    (tmp_path / "kwok").mkdir()
    (tmp_path / "kwok" / "pod-delete.yaml").write_text("kind: Stage\n")
    upstream = tmp_path / "kwok" / "pod-ready.yaml"
    upstream.write_text("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: pod-ready}\n"
                        "spec:\n  selector:\n    matchExpressions:\n    - {key: .status.phase, operator: In, "
                        "values: [Pending]}\n  next: {}\n")
    testbed.write_kwok_pod_ready(upstream, tmp_path / "out.yaml")
    import yaml
    derived = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert derived["spec"]["selector"]["matchExpressions"][-1] == testbed.NOT_PREDICTOR
    ours = yaml.safe_load((ROOT / "testbed" / "manifests" / "kwok-pod-ready-again.yaml").read_text())
    assert testbed.NOT_PREDICTOR in ours["spec"]["selector"]["matchExpressions"]
    files = testbed.kwok_stage_files(tmp_path / "kwok")
    assert [f.name for f in files] == ["pod-delete.yaml", "pod-ready.yaml", "kwok-pod-ready-again.yaml"]
    assert files[1].parent.name == "kwok-stages"


def pod_with_ca(env: list[dict], volumes: list[dict] | None = None) -> dict:
    return {"spec": {"initContainers": [{"name": "storage-initializer", "env": env}], "volumes": volumes or []}}


def test_storage_ca_is_what_kserves_webhook_mounted() -> None:
    mounted = [{"name": "cabundle-cert", "configMap": {"name": "odh-kserve-custom-ca-bundle"}}]
    env = [{"name": "AWS_CA_BUNDLE_CONFIGMAP", "value": "odh-kserve-custom-ca-bundle"},
           {"name": "CA_BUNDLE_CONFIGMAP_NAME", "value": "odh-kserve-custom-ca-bundle"},
           {"name": "CA_BUNDLE_VOLUME_MOUNT_POINT", "value": "/etc/ssl/custom-certs"}]
    assert sim.storage_ca(pod_with_ca(env, mounted)) == ("odh-kserve-custom-ca-bundle", "/etc/ssl/custom-certs",
                                                         "/etc/ssl/custom-certs/cabundle.crt")
    own_path = env + [{"name": "AWS_CA_BUNDLE", "value": "/etc/ssl/custom-certs/mine.pem"}]
    assert sim.storage_ca(pod_with_ca(own_path, mounted))[2] == "/etc/ssl/custom-certs/mine.pem"
    # without the webhook's variable the storage initializer trusts public CAs only
    assert sim.storage_ca(pod_with_ca(env[:1], mounted)) is None
    assert sim.storage_ca({"spec": {"initContainers": [{"name": "modelcar-init"}]}}) is None


def test_a_connection_entry_does_not_inherit_the_testbed_ca(tmp_path: Path) -> None:
    (tmp_path / "s3.env").write_text("AWS_S3_ENDPOINT=http://127.0.0.1:1\nAWS_CA_BUNDLE_TESTBED=/ca.crt\n")

    class Core:
        def read_namespaced_secret(self, name, namespace, **_kw):
            entry = json.dumps({"type": "s3", "access_key_id": "ak", "endpoint_url": "https://s3:443"})
            body = json.dumps({"data": {"conn": base64.b64encode(entry.encode()).decode()}})
            return type("Resp", (), {"data": body.encode()})()
    pod = {"metadata": {"namespace": "m", "annotations": {sim.STORAGE_KEY_ANNOTATION: "conn"}}}
    settings = sim.s3_settings(Core(), pod, tmp_path)
    assert settings["endpoint_url"] == "https://s3:443" and settings["ca_bundle"] == ""


@pytest.mark.parametrize("value,verifies", [("1", True), ("true", True), ("0", False), ("False", False),
                                            ("false", False)])
def test_verify_ssl_turns_tls_verification_off_as_kserve_reads_it(value: str, verifies: bool) -> None:
    assert sim.verifies_tls({"verify_ssl": value}) is verifies
    assert sim.verifies_tls({}) is True
