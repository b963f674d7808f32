"""Bad input, as a user gives it, for every module and every role entry point: one table, one play.

Each row is a task of a single `ansible-playbook -vvv` run against the testbed, with the local
inventory (modules with `ignore_errors`, roles in a block whose rescue records the failure). The
rows run in four lanes at once (hosts of the free strategy; the rows of one module or role share
a lane, so two handovers never compete for their Lease); those that wait 20 s for an unreachable
API run in the background. `-k` selects rows: only those are played. Each row is then asserted
on its own:

- it failed, and its message names the option (and the fix where there is one);
- nothing crashed (no "Module failed" wrapper of an unhandled exception, no traceback);
- none of its secrets (S3 secret key, bearer tokens, HF token; fresh per row, so that a leak names
  its row in interleaved output) appears in the -vvv output, in clear or base64;
- what it could have changed is unchanged: the objects' identity, labels, annotations and spec
  or data (not their status, which controllers keep rewriting), the bucket's objects and
  unfinished uploads, the registry's models, versions and artifacts, the upload state directory.

Two more tests look at the whole play: no secret and no traceback anywhere in the output, and
nothing changed anywhere (a stray write that no row's own areas cover).

The stage is the demo's in a namespace of its own: its ClusterQueue (4 + 1 GPUs), LocalQueue
`gpu`, mistral-3-bf16 and mistral-3-int4 on, devstral-2 off; a second ClusterQueue no model uses;
a MachineSet of its own (0 replicas); a bucket with one object; the testbed's Model Registry.

Bad input covered elsewhere, not repeated here: a zone without a worker MachineSet
(test_gpu_nodes_role.py), a predictor requesting a resource the ClusterQueue does not cover
(test_isvc_replicas.py), a handover Kueue cannot grant (test_handover_playbooks.py), a frozen
Kueue (test_handover_faults.py). The Model Registry's 401 is a unit test (the testbed's registry
asks for no token).
"""
from __future__ import annotations

import base64
import json
import secrets
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic.exceptions import ResourceNotFoundError

import _kueue_objects as ko
import testbed
from settle import CANARY_LABEL
from _labels import TEST_LABEL
from _machinesets import create_machineset, delete_machineset
from _poll import wait_for
from _s3_helpers import client as s3_client
from _s3_helpers import closed_port, purge, snapshot, unique_bucket, uploads
from conftest import BIN, MANAGED, ROOT, ansible_env, run_ansible_module

pytestmark = pytest.mark.integration

REGISTRY_API = "/api/model_registry/v1alpha3"
# Areas a row may touch; each is snapshot before and after the play.
MACHINESETS, MODELS, CLUSTER, BUCKET, REGISTRY, STATE = "machinesets", "models", "cluster", "bucket", "registry", "state"


@dataclass(frozen=True)
class Row:
    """One bad input: a module's arguments or a role's variables, what its message must say, what must not change.

    Strings in ``args`` may name the stage's values as ``$name`` (see ``Stage.values``).
    """

    id: str
    target: str  # a module name, or "role:<role>" / "role:<role>:<entry point>"
    args: dict[str, Any]
    says: tuple[str, ...]
    areas: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    slow: bool = False  # an unreachable API is retried for 20 s: such rows run in the background, together


# Connection rows: the same options for every Kubernetes module.
UNREACHABLE = {"host": "$closed_https"}
WRONG_TOKEN = {"host": "$api", "api_key": "$k8s_token", "ca_cert": "$ca"}
NO_KUBECONFIG = {"K8S_AUTH_KUBECONFIG": ""}  # else the kubeconfig's client certificate would still log in
SAYS_UNREACHABLE = ("is unreachable", "Check the module options host / kubeconfig / context")
SAYS_REFUSED = ("refused the credentials (HTTP 401)", "Check api_key")
SAYS_UNSERVED = ("does not serve", "in kueue.x-k8s.io/v1alpha9", "set kueue_api_version to one of them, or auto")
UNSERVED = "kueue.x-k8s.io/v1alpha9"


def k8s_rows(module: str, args: dict[str, Any], areas: tuple[str, ...], prefix: str) -> list[Row]:
    """The unreachable API and the refused token, for a Kubernetes module with otherwise good ``args``."""
    return [
        Row(f"{prefix}-unreachable-api", module, {**args, **UNREACHABLE}, SAYS_UNREACHABLE, areas, slow=True),
        Row(f"{prefix}-wrong-token", module, {**args, **WRONG_TOKEN}, SAYS_REFUSED, areas, env=NO_KUBECONFIG),
    ]


MS = {"name": "$machineset", "replicas": 1}
ISVC_ON = {"name": "mistral-3-int4", "namespace": "$ns"}
BOARD = {"namespace": "$ns", "cluster_queues": ["$cq"]}
HANDOVER = {"namespace": "$ns", "outgoing": "mistral-3-bf16", "incoming": "devstral-2", "resident": ["mistral-3-int4"],
            "cluster_queues": ["$cq"], "wait_timeout": 30}
LQ = {"namespace": "$ns", "name": "gpu", "cluster_queue": "$cq"}
# Good, except where a row says otherwise: the testbed CA, which the DSCInitialization's bundle holds.
CA = {"namespace": "$ns", "connection": "models", "ca": "$testbed_ca", "wait_timeout": 30}
ISVC_DEF = {"apiVersion": ko.ISVC, "kind": "InferenceService",
            "metadata": {"name": "bad-input", "namespace": "$ns", "labels": {ko.QUEUE_LABEL: ko.QUEUE}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime",
                                             "storageUri": "oci://registry.invalid/model:1"}}}}
REG = {"url": "$registry", "name": "bad-input", "version": "1", "uri": "oci://registry.invalid/model:1",
       "api_key": "$registry_token"}
UP = {"src": "$model_dir", "bucket": "$bucket", "prefix": "m", "delete": True, "endpoint_url": "$s3_endpoint",
      "access_key": "$s3_access", "secret_key": "$s3_secret", "region": "$s3_region", "state_dir": "$state_dir"}
STAGE_MODELS = {"handover_namespace": "$ns", "handover_cluster_queue": "$cq", "handover_kueue_api_version": ko.KUEUE}
SERVING_MODEL = {"name": "bad-input", "gpus": 1, "flavor": "nvidia-l4-1gpu", "storage_uri": "oci://registry.invalid/m:1",
                 "state": "off", "cpu": "2", "memory": "8Gi"}
SERVING = {"serving_namespace": "$ns", "serving_cluster_queue": "$cq", "serving_local_queue": ko.QUEUE,
           "serving_kueue_api_version": ko.KUEUE, "serving_models": [SERVING_MODEL], "serving_s3_secret_key": "$s3_secret"}
STORE_MODEL = {"name": "bad-input", "storage_uri": "s3://$bucket/m/", "source": "$model_dir"}
STORE = {"model_store_models": [STORE_MODEL], "model_store_endpoint_url": "$s3_endpoint",
         "model_store_access_key": "$s3_access", "model_store_secret_key": "$s3_secret", "model_store_state_dir": "$state_dir",
         "model_store_hf_token": "$hf_token", "model_store_progress_interval": 1}
GPU_ENTRY = {"name": "bad-input", "replicas": 1, "instance_type": "g6.4xlarge", "gpus": 1}
# Should a row get through, it would touch only a MachineSet of its own (which the snapshot would show).
GPU_NODES = {"gpu_nodes_machinesets": [GPU_ENTRY], "gpu_nodes_create_machinesets": True}
TEARDOWN = {"teardown_namespace": "$ns", "teardown_models": ["mistral-3-int4"], "teardown_machinesets": [],
            "teardown_kueue_api_version": ko.KUEUE}
UPLOAD_OF = "Upload of bad-input"
VALIDATE = {"validate_namespace": "$ns", "validate_cluster_queue": "$cq", "validate_kueue_api_version": ko.KUEUE,
            "validate_models": ["mistral-3-int4"], "validate_token": "$validate_token"}
TYPE_ERROR = "and we were unable to convert to"

ROWS: list[Row] = [
    # ---------------------------------------------------------------- machineset_scale
    Row("ms-replicas-not-a-number", "machineset_scale", {**MS, "replicas": "two"}, ("'replicas'", TYPE_ERROR, "int"),
        (MACHINESETS,)),
    Row("ms-replicas-negative", "machineset_scale", {**MS, "replicas": -1}, ("replicas must be 0 or more, got -1",),
        (MACHINESETS,)),
    Row("ms-min-gpus-negative", "machineset_scale", {**MS, "min_gpus_per_node": -1},
        ("min_gpus_per_node must be 0 or more, got -1",), (MACHINESETS,)),
    Row("ms-wait-timeout-zero", "machineset_scale", {**MS, "wait_timeout": 0},
        ("wait_timeout must be at least 1 second, got 0",), (MACHINESETS,)),
    Row("ms-missing", "machineset_scale", {"name": "does-not-exist", "replicas": 1},
        ("MachineSet 'does-not-exist' not found in namespace 'openshift-machine-api'",), (MACHINESETS,)),
    Row("ms-missing-namespace", "machineset_scale", {**MS, "namespace": "nowhere"},
        ("MachineSet '$machineset' not found in namespace 'nowhere'",), (MACHINESETS,)),
    Row("ms-selector-matches-nothing", "machineset_scale", {"label_selectors": ["gpuaas-test/none=none"], "replicas": 1},
        ("No MachineSet in namespace 'openshift-machine-api' matches label selector 'gpuaas-test/none=none'",),
        (MACHINESETS,)),
    Row("ms-selector-empty", "machineset_scale", {"label_selectors": [], "replicas": 1},
        ("label_selectors is empty: it would select every MachineSet", "give at least one selector"), (MACHINESETS,)),
    Row("ms-name-and-selector", "machineset_scale", {**MS, "label_selectors": ["a=b"]},
        ("mutually exclusive: name|label_selectors",), (MACHINESETS,)),
    Row("ms-neither", "machineset_scale", {"replicas": 1},
        ("one of the following is required: name, label_selectors",), (MACHINESETS,)),
    *k8s_rows("machineset_scale", MS, (MACHINESETS,), "ms"),
    # ---------------------------------------------------------------- isvc_replicas
    Row("isvc-replicas-not-a-number", "isvc_replicas", {**ISVC_ON, "replicas": "one"}, ("'replicas'", TYPE_ERROR, "int"),
        (MODELS,)),
    Row("isvc-replicas-negative", "isvc_replicas", {**ISVC_ON, "replicas": -1},
        ("replicas must be >= 0, got -1; use 0 or state=stopped to stop the model.",), (MODELS,)),
    Row("isvc-missing", "isvc_replicas", {"name": "nope", "namespace": "$ns", "state": "stopped"},
        ("InferenceService nope not found in namespace $ns.",), (MODELS,)),
    Row("isvc-wrong-namespace", "isvc_replicas", {**ISVC_ON, "namespace": "$ns-x", "state": "stopped"},
        ("InferenceService mistral-3-int4 not found in namespace $ns-x.",), (MODELS,)),
    Row("isvc-strategy-unknown", "isvc_replicas", {**ISVC_ON, "replicas": 0, "strategy": "scale_to_zero"},
        ("value of strategy must be one of: auto, stop_annotation", "got: scale_to_zero"), (MODELS,)),
    Row("isvc-replicas-and-state", "isvc_replicas", {**ISVC_ON, "replicas": 0, "state": "stopped"},
        ("mutually exclusive: replicas|state",), (MODELS,)),
    Row("isvc-wait-for-contradicts-state", "isvc_replicas", {**ISVC_ON, "state": "stopped", "wait_for": "admitted"},
        ("wait_for=admitted contradicts state=stopped",), (MODELS,)),
    Row("isvc-wait-timeout-zero", "isvc_replicas", {**ISVC_ON, "state": "stopped", "wait_timeout": 0},
        ("wait_timeout must be > 0, got 0",), (MODELS,)),
    Row("isvc-kueue-api-unserved", "isvc_replicas", {**ISVC_ON, "state": "started", "kueue_api_version": UNSERVED},
        SAYS_UNSERVED, (MODELS,)),
    *k8s_rows("isvc_replicas", {**ISVC_ON, "state": "stopped"}, (MODELS,), "isvc"),
    # ---------------------------------------------------------------- kueue_wait
    Row("kw-no-target", "kueue_wait", {"namespace": "$ns"},
        ("one of the following is required: isvc, pod_selector, workload",), (MODELS,)),
    Row("kw-state-unknown", "kueue_wait", {"isvc": "mistral-3-int4", "namespace": "$ns", "state": "running"},
        ("value of state must be one of: pending, admitted", "got: running"), (MODELS,)),
    Row("kw-wait-timeout-negative", "kueue_wait", {"isvc": "mistral-3-int4", "namespace": "$ns", "wait_timeout": -5},
        ("wait_timeout must be > 0, got -5",), (MODELS,)),
    Row("kw-missing-isvc", "kueue_wait", {"isvc": "nope", "namespace": "$ns", "wait_timeout": 60},
        ("InferenceService nope does not exist", "isvc nope in namespace $ns"), (MODELS,)),
    Row("kw-kueue-api-unserved", "kueue_wait", {"isvc": "mistral-3-int4", "namespace": "$ns", "kueue_api_version": UNSERVED},
        SAYS_UNSERVED, (MODELS,)),
    *k8s_rows("kueue_wait", {"isvc": "mistral-3-int4", "namespace": "$ns"}, (MODELS,), "kw"),
    # ---------------------------------------------------------------- gpu_board
    Row("board-expect-not-a-dict", "gpu_board", {**BOARD, "expect": "ON"}, ("'expect'", TYPE_ERROR, "dict"), (MODELS,)),
    Row("board-expect-unknown-state", "gpu_board", {**BOARD, "expect": {"mistral-3-int4": "RUNNING"}},
        ("expect: RUNNING is not a model state; use one of",), (MODELS,)),
    Row("board-wait-timeout-negative", "gpu_board", {**BOARD, "expect": {"devstral-2": "ON"}, "wait_timeout": -1},
        ("wait_timeout must be > 0, got -1",), (MODELS,)),
    Row("board-missing-cluster-queue", "gpu_board", {**BOARD, "cluster_queues": ["nope"]},
        ("ClusterQueue nope does not exist", "fix the cluster_queue option"), (MODELS,)),
    Row("board-kueue-api-unserved", "gpu_board", {**BOARD, "kueue_api_version": UNSERVED}, SAYS_UNSERVED, (MODELS,)),
    *k8s_rows("gpu_board", BOARD, (MODELS,), "board"),
    # ---------------------------------------------------------------- gpu_handover
    Row("handover-same-model", "gpu_handover", {**HANDOVER, "incoming": "mistral-3-bf16"},
        ("outgoing and incoming are both 'mistral-3-bf16'; name two different models.",), (MODELS,)),
    Row("handover-wait-timeout-zero", "gpu_handover", {**HANDOVER, "wait_timeout": 0},
        ("wait_timeout must be > 0, got 0",), (MODELS,)),
    Row("handover-lock-wait-not-a-number", "gpu_handover", {**HANDOVER, "lock_wait": "soon"},
        ("'lock_wait'", TYPE_ERROR, "int"), (MODELS,)),
    Row("handover-missing-incoming", "gpu_handover", {**HANDOVER, "incoming": "nope"},
        ("nope does not exist in namespace $ns",), (MODELS,)),
    Row("handover-incoming-not-queued", "gpu_handover", HANDOVER,
        ("Handover refused before any change (incoming is queued)",), (MODELS,)),
    Row("handover-kueue-api-unserved", "gpu_handover", {**HANDOVER, "kueue_api_version": UNSERVED}, SAYS_UNSERVED,
        (MODELS,)),
    *k8s_rows("gpu_handover", HANDOVER, (MODELS,), "handover"),
    # ---------------------------------------------------------------- connection_ca
    Row("ca-not-pem", "connection_ca", {**CA, "ca": "/etc/pki/minio-ca.crt"},
        ("ca holds no PEM certificate", "lookup('file', 'ca.crt')"), (MODELS,)),
    Row("ca-missing-namespace", "connection_ca", {**CA, "namespace": "$ns-x"},
        ("Namespace $ns-x does not exist: create it first", "or fix namespace"), (MODELS,)),
    Row("ca-wait-not-a-bool", "connection_ca", {**CA, "wait": "perhaps"}, ("'wait'", TYPE_ERROR, "bool"), (MODELS,)),
    *k8s_rows("connection_ca", CA, (MODELS,), "ca"),
    # ---------------------------------------------------------------- local_queue
    Row("lq-missing-cluster-queue", "local_queue", {**LQ, "name": "other", "cluster_queue": "nope"},
        ("ClusterQueue nope does not exist: create it first", "or fix cluster_queue"), (MODELS, CLUSTER)),
    Row("lq-missing-namespace", "local_queue", {**LQ, "namespace": "$ns-x"},
        ("Namespace $ns-x does not exist: create it first", "or fix namespace"), (MODELS, CLUSTER)),
    Row("lq-replace-not-a-bool", "local_queue", {**LQ, "replace": "perhaps"}, ("'replace'", TYPE_ERROR, "bool"),
        (MODELS, CLUSTER)),
    Row("lq-in-use", "local_queue", {**LQ, "cluster_queue": "$other_cq"},
        ("LocalQueue $ns/gpu points at ClusterQueue $cq, not $other_cq", "cannot be replaced while Workloads queue "
         "through it", "stop those models, or use another LocalQueue name"), (MODELS, CLUSTER)),
    Row("lq-kueue-api-unserved", "local_queue", {**LQ, "kueue_api_version": UNSERVED}, SAYS_UNSERVED, (MODELS, CLUSTER)),
    *k8s_rows("local_queue", LQ, (MODELS, CLUSTER), "lq"),
    # ---------------------------------------------------------------- isvc_apply
    Row("apply-definition-not-a-dict", "isvc_apply", {"definition": "mistral"}, ("'definition'", TYPE_ERROR, "dict"),
        (MODELS,)),
    Row("apply-definition-without-namespace", "isvc_apply",
        {"definition": {**ISVC_DEF, "metadata": {"name": "bad-input"}}},
        ("definition needs metadata.name and metadata.namespace",), (MODELS,)),
    Row("apply-missing-namespace", "isvc_apply",
        {"definition": {**ISVC_DEF, "metadata": {**ISVC_DEF["metadata"], "namespace": "$ns-x"}}},
        ("Namespace $ns-x (definition's metadata.namespace) does not exist",), (MODELS,)),
    Row("apply-min-replicas-negative", "isvc_apply",
        {"definition": {**ISVC_DEF, "spec": {"predictor": {**ISVC_DEF["spec"]["predictor"], "minReplicas": -1}}}},
        ("Kubernetes API error: HTTP 403", "'MinReplicas' cannot be less than 0"), (MODELS,)),
    *k8s_rows("isvc_apply", {"definition": ISVC_DEF}, (MODELS,), "apply"),
    # ---------------------------------------------------------------- model_register
    Row("reg-url-without-scheme", "model_register", {**REG, "url": "registry.example:8080"},
        ("url must be the Model Registry's REST address, http(s)://host[:port]",), (REGISTRY,)),
    Row("reg-url-not-the-registry", "model_register", {**REG, "url": "$registry/not-here"},
        (f"url: $registry/not-here has no {REGISTRY_API}/registered_model (HTTP 404)", "give the registry's REST route"),
        (REGISTRY,)),
    Row("reg-unreachable", "model_register", {**REG, "url": "$closed_http"},
        ("url: cannot reach the Model Registry at $closed_http", "check url"), (REGISTRY,)),
    Row("reg-request-timeout-negative", "model_register", {**REG, "request_timeout": -1},
        ("request_timeout must be a positive number of seconds, got -1",), (REGISTRY,)),
    Row("reg-uri-doubled-scheme", "model_register",
        {**REG, "uri": "s3://oci://registry.invalid/model:1", "s3_endpoint": "$s3_endpoint"},
        ("nests a second scheme inside s3://",), (REGISTRY,)),
    Row("reg-s3-uri-without-endpoint", "model_register", {**REG, "uri": "s3://models/bad-input"},
        ("s3_endpoint is required with an s3:// uri",), (REGISTRY,)),
    Row("reg-name-empty", "model_register", {**REG, "name": " "}, ("name must not be empty",), (REGISTRY,)),
    Row("reg-properties-not-a-dict", "model_register", {**REG, "model_properties": "fast"},
        ("'model_properties'", TYPE_ERROR, "dict"), (REGISTRY,)),
    # ---------------------------------------------------------------- minio_upload
    Row("up-concurrency-not-a-number", "minio_upload", {**UP, "concurrency": "many"}, ("'concurrency'", TYPE_ERROR, "int"),
        (BUCKET, STATE)),
    Row("up-concurrency-negative", "minio_upload", {**UP, "concurrency": -1},
        ("concurrency must be between 1 and 256, got -1: fix concurrency",), (BUCKET, STATE)),
    Row("up-part-size-negative", "minio_upload", {**UP, "part_size": "-5MiB"}, ("part_size: '-5MiB' is not a size",),
        (BUCKET, STATE)),
    Row("up-part-size-too-small", "minio_upload", {**UP, "part_size": "1MiB"},
        ("part_size must be between 5MiB and 5GiB (S3 limits), got 1MiB: fix part_size",), (BUCKET, STATE)),
    Row("up-bucket-invalid", "minio_upload", {**UP, "bucket": "Bad_Bucket"},
        ("bucket 'Bad_Bucket' is not a valid S3 bucket name", "fix bucket"), (BUCKET, STATE)),
    Row("up-bucket-too-short", "minio_upload", {**UP, "bucket": "ab"},
        ("bucket 'ab' is not a valid S3 bucket name (3 to 63", "fix bucket"), (BUCKET, STATE)),
    Row("up-prefix-dot-dot", "minio_upload", {**UP, "prefix": "models/../x"},
        ("prefix 'models/../x' has an empty, '.' or '..' segment", "fix prefix"), (BUCKET, STATE)),
    Row("up-bucket-missing", "minio_upload", {**UP, "bucket": "$missing_bucket"},
        ("bucket $missing_bucket does not exist at $s3_endpoint: create it or set create_bucket: true",),
        (BUCKET, STATE)),
    Row("up-endpoint-not-a-url", "minio_upload", {**UP, "endpoint_url": "minio.example:9000"},
        ("endpoint_url 'minio.example:9000' is not an http:// or https:// URL", "fix endpoint_url"), (BUCKET, STATE)),
    Row("up-endpoint-unreachable", "minio_upload", {**UP, "endpoint_url": "$closed_http"},
        ("cannot connect to endpoint_url $closed_http", "check endpoint_url (or AWS_S3_ENDPOINT)"), (BUCKET, STATE)),
    Row("up-wrong-access-key", "minio_upload", {**UP, "access_key": "WRONG$s3_access"},
        ("listing s3://$bucket/m/: the server does not know this access key: check access_key",), (BUCKET, STATE)),
    Row("up-wrong-secret-key", "minio_upload", {**UP, "secret_key": "$wrong_s3_secret"},
        ("listing s3://$bucket/m/: the signature does not match: check secret_key",), (BUCKET, STATE)),
    Row("up-only-access-key", "minio_upload", {k: v for k, v in UP.items() if k != "secret_key"},
        ("only one of access_key and secret_key is set: set secret_key (or AWS_SECRET_ACCESS_KEY) too",),
        (BUCKET, STATE)),
    Row("up-compare-unknown", "minio_upload", {**UP, "compare": "sometimes"},
        ("value of compare must be one of: checksum, size_mtime, got: sometimes",), (BUCKET, STATE)),
    Row("up-src-missing", "minio_upload", {**UP, "src": "$model_dir/nope"}, ("does not exist: set src",),
        (BUCKET, STATE)),
    Row("up-hf-repo-invalid", "minio_upload",
        {**{k: v for k, v in UP.items() if k != "src"}, "hf_repo": "not a repo", "hf_token": "$hf_token"},
        ("hf_repo 'not a repo' is not a Hugging Face repository id (org/name): fix hf_repo",), (BUCKET, STATE)),
    # ---------------------------------------------------------------- role gpu_nodes (main, names)
    Row("role-gpu-nodes-timeout-not-a-number", "role:gpu_nodes", {**GPU_NODES, "gpu_nodes_wait_timeout": "soon"},
        ("gpu_nodes_wait_timeout", TYPE_ERROR, "int"), (MACHINESETS,)),
    Row("role-gpu-nodes-timeout-negative", "role:gpu_nodes", {**GPU_NODES, "gpu_nodes_wait_timeout": -1},
        ("gpu_nodes_wait_timeout must be > 0, got -1",), (MACHINESETS,)),
    Row("role-gpu-nodes-entry-without-instance-type", "role:gpu_nodes",
        {**GPU_NODES, "gpu_nodes_machinesets": [{k: v for k, v in GPU_ENTRY.items() if k != "instance_type"}]},
        ("missing required arguments: instance_type found in gpu_nodes_machinesets",), (MACHINESETS,)),
    Row("role-gpu-nodes-replicas-negative", "role:gpu_nodes",
        {**GPU_NODES, "gpu_nodes_machinesets": [{**GPU_ENTRY, "replicas": -1}]},
        ("gpu_nodes_machinesets entry 'bad-input': replicas must be 0 or more, got -1",), (MACHINESETS,)),
    Row("role-gpu-nodes-gpus-contradict-instance-type", "role:gpu_nodes",
        {**GPU_NODES, "gpu_nodes_machinesets": [{**GPU_ENTRY, "gpus": 4}]},
        ("gpu_nodes_machinesets entry 'bad-input': instance type g6.4xlarge has 1 GPU(s) (AWS), but gpus is 4",),
        (MACHINESETS,)),
    Row("role-gpu-nodes-volume-type-unknown", "role:gpu_nodes", {**GPU_NODES, "gpu_nodes_root_volume_type": "gp9"},
        ("value of gpu_nodes_root_volume_type must be one of: gp2, gp3", "got: gp9"), (MACHINESETS,)),
    Row("role-gpu-nodes-source-missing", "role:gpu_nodes", {**GPU_NODES, "gpu_nodes_source_machineset": "nope"},
        ("gpu_nodes_source_machineset: MachineSet 'nope' does not exist; worker MachineSets: $worker",),
        (MACHINESETS,)),
    Row("role-gpu-nodes-kubeconfig-missing", "role:gpu_nodes", {**GPU_NODES, "gpu_nodes_kubeconfig": "$model_dir/nope"},
        ("gpu_nodes_kubeconfig $model_dir/nope is not a file",), (MACHINESETS,)),
    Row("role-gpu-nodes-names-not-a-bool", "role:gpu_nodes:names",
        {**GPU_NODES, "gpu_nodes_name_from_infrastructure": "perhaps"},
        ("gpu_nodes_name_from_infrastructure", TYPE_ERROR, "bool"), (MACHINESETS,)),
    # ---------------------------------------------------------------- role handover
    Row("role-handover-step-unknown", "role:handover", {**STAGE_MODELS, "handover_step": "4"},
        ("handover_step", "all, 1, 2, 3", "got: 4"), (MODELS,)),
    Row("role-handover-api-unknown", "role:handover", {**STAGE_MODELS, "handover_kueue_api_version": "kueue.x-k8s.io/v1"},
        ("handover_kueue_api_version", "got: kueue.x-k8s.io/v1"), (MODELS,)),
    Row("role-handover-timeout-not-a-number", "role:handover", {**STAGE_MODELS, "handover_admit_timeout": "soon"},
        ("handover_admit_timeout", TYPE_ERROR, "int"), (MODELS,)),
    Row("role-handover-timeout-negative", "role:handover",
        {**STAGE_MODELS, "handover_step": "3", "handover_admit_timeout": -1},
        ("handover_admit_timeout must be > 0, got -1",), (MODELS,)),
    Row("role-handover-lock-wait-negative", "role:handover", {**STAGE_MODELS, "handover_lock_wait": -1},
        ("handover_lock_wait must be 0 or more, got -1",), (MODELS,)),
    Row("role-handover-kubeconfig-missing", "role:handover", {**STAGE_MODELS, "handover_kubeconfig": "$model_dir/nope"},
        ("handover_kubeconfig $model_dir/nope is not a file",), (MODELS,)),
    Row("role-handover-missing-model", "role:handover", {**STAGE_MODELS, "handover_step": "1", "handover_outgoing": "nope"},
        ("Not the baseline", "nope is ABSENT, expected ON"), (MODELS,)),
    # ---------------------------------------------------------------- role model_store
    Row("role-model-store-bucket-invalid", "role:model_store",
        {**STORE, "model_store_models": [{**STORE_MODEL, "storage_uri": "s3://Bad_Bucket/m/"}]},
        (f"{UPLOAD_OF} (storage_uri s3://Bad_Bucket/m/) failed", "bucket 'Bad_Bucket' is not a valid S3 bucket name"),
        (BUCKET, STATE)),
    Row("role-model-store-prefix-invalid", "role:model_store",
        {**STORE, "model_store_models": [{**STORE_MODEL, "storage_uri": "s3://$bucket/m/../x"}]},
        (f"{UPLOAD_OF} (storage_uri s3://$bucket/m/../x) failed", "has an empty, '.' or '..' segment"), (BUCKET, STATE)),
    Row("role-model-store-wrong-secret", "role:model_store", {**STORE, "model_store_secret_key": "$wrong_s3_secret"},
        (UPLOAD_OF, "the signature does not match: check secret_key"), (BUCKET, STATE)),
    Row("role-model-store-endpoint-unreachable", "role:model_store", {**STORE, "model_store_endpoint_url": "$closed_http"},
        (UPLOAD_OF, "cannot connect to endpoint_url $closed_http"), (BUCKET, STATE)),
    Row("role-model-store-part-size-too-small", "role:model_store", {**STORE, "model_store_part_size": "1MiB"},
        (UPLOAD_OF, "part_size must be between 5MiB and 5GiB"), (BUCKET, STATE)),
    Row("role-model-store-timeout-zero", "role:model_store", {**STORE, "model_store_timeout": 0},
        ("model_store_timeout must be > 0, got 0",), (BUCKET, STATE)),
    Row("role-model-store-concurrency-not-a-number", "role:model_store", {**STORE, "model_store_concurrency": "many"},
        ("model_store_concurrency", TYPE_ERROR, "int"), (BUCKET, STATE)),
    Row("role-model-store-source-missing", "role:model_store",
        {**STORE, "model_store_models": [{**STORE_MODEL, "source": "$model_dir/nope"}]},
        ("bad-input: source $model_dir/nope does not exist",), (BUCKET, STATE)),
    # ---------------------------------------------------------------- role serving
    Row("role-serving-api-unknown", "role:serving", {**SERVING, "serving_kueue_api_version": "v9"},
        ("serving_kueue_api_version", "got: v9"), (MODELS, CLUSTER)),
    Row("role-serving-deployment-mode-unknown", "role:serving", {**SERVING, "serving_deployment_mode": "Serverless"},
        ("serving_deployment_mode", "got: Serverless"), (MODELS, CLUSTER)),
    Row("role-serving-model-without-flavor", "role:serving",
        {**SERVING, "serving_models": [{k: v for k, v in SERVING_MODEL.items() if k != "flavor"}]},
        ("missing required arguments: flavor found in serving_models",), (MODELS, CLUSTER)),
    Row("role-serving-flavor-unknown", "role:serving", {**SERVING, "serving_models": [{**SERVING_MODEL, "flavor": "nope"}]},
        ("Preflight failed, nothing was applied: bad-input: flavor nope is not one of the ResourceFlavors",),
        (MODELS, CLUSTER)),
    Row("role-serving-wait-timeout-negative", "role:serving", {**SERVING, "serving_wait_timeout": -1},
        ("serving_wait_timeout must be > 0, got -1",), (MODELS, CLUSTER)),
    Row("role-serving-kubeconfig-missing", "role:serving", {**SERVING, "serving_kubeconfig": "$model_dir/nope"},
        ("serving_kubeconfig $model_dir/nope is not a file",), (MODELS, CLUSTER)),
    Row("role-serving-ca-for-an-http-endpoint", "role:serving",
        {**SERVING, "serving_s3_endpoint": "http://minio.minio-storage.svc:9000",
         "serving_s3_cluster_ca": "-----BEGIN CERTIFICATE-----"},
        ("serving_s3_cluster_ca is set but serving_s3_endpoint (http://minio.minio-storage.svc:9000) is not https",),
        (MODELS, CLUSTER)),
    # ---------------------------------------------------------------- role teardown
    Row("role-teardown-api-unknown", "role:teardown", {**TEARDOWN, "teardown_kueue_api_version": "v9"},
        ("teardown_kueue_api_version", "got: v9"), (MODELS, MACHINESETS)),
    Row("role-teardown-timeout-negative", "role:teardown",
        {**TEARDOWN, "teardown_wait_timeout": -1},
        ("teardown_wait_timeout must be > 0, got -1",), (MODELS, MACHINESETS)),
    Row("role-teardown-kubeconfig-missing", "role:teardown", {**TEARDOWN, "teardown_kubeconfig": "$model_dir/nope"},
        ("teardown_kubeconfig $model_dir/nope is not a file",), (MODELS, MACHINESETS)),
    # ---------------------------------------------------------------- role validate
    Row("role-validate-api-unknown", "role:validate", {**VALIDATE, "validate_kueue_api_version": "v9"},
        ("validate_kueue_api_version", "got: v9"), (MODELS,)),
    Row("role-validate-timeout-not-a-number", "role:validate", {**VALIDATE, "validate_timeout": "soon"},
        ("validate_timeout", TYPE_ERROR, "int"), (MODELS,)),
    Row("role-validate-kubeconfig-missing", "role:validate", {**VALIDATE, "validate_kubeconfig": "$model_dir/nope"},
        ("validate_kubeconfig $model_dir/nope is not a file",), (MODELS,)),
    Row("role-validate-runtime-missing", "role:validate", {**VALIDATE, "validate_runtime_name": "nope"},
        ("ServingRuntime nope does not exist in namespace $ns",), (MODELS,)),
    Row("role-validate-max-tokens-negative", "role:validate", {**VALIDATE, "validate_max_tokens": -1},
        ("validate_max_tokens must be > 0, got -1",), (MODELS,)),
    Row("role-validate-endpoint-unreachable", "role:validate",
        {**VALIDATE, "validate_endpoints": {"mistral-3-int4": "$closed_http"}},
        ("mistral-3-int4 did not answer", "Connection refused"), (MODELS,)),
]


# ---------------------------------------------------------------- the stage


# Secrets a row may hold: a fresh value per row, so that a leak names the row even in interleaved output.
SECRET_PREFIXES = {"k8s_token": "sha256~", "registry_token": "reg-", "hf_token": "hf_", "validate_token": "tok-",
                   "wrong_s3_secret": "WRONG-"}


@dataclass
class Stage:
    """The objects the rows aim at, and the values ``$name`` in a row stands for."""

    values: dict[str, str]
    per_row: dict[str, dict[str, str]] = field(default_factory=dict)

    def row_values(self, row: Row) -> dict[str, str]:
        """The shared values, and this row's own secrets."""
        if row.id not in self.per_row:
            self.per_row[row.id] = {k: p + secrets.token_urlsafe(24) for k, p in SECRET_PREFIXES.items()}
        return {**self.values, **self.per_row[row.id]}

    def fill(self, row: Row, value: Any) -> Any:
        """``value`` with ``$name`` replaced in every string (dict keys included)."""
        if isinstance(value, str):
            return Template(value).safe_substitute(self.row_values(row))
        if isinstance(value, dict):
            return {self.fill(row, k): self.fill(row, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(row, v) for v in value]
        return value

    def secrets_of(self, row: Row) -> list[str]:
        """The secrets the row's arguments hold, in clear and base64 (as a Secret's data shows them)."""
        text = json.dumps(row.args)
        held = [v for k, v in self.row_values(row).items() if (k in SECRET_PREFIXES or k == "s3_secret")
                and "$" + k in text]
        return held + [base64.b64encode(v.encode()).decode() for v in held]

    def all_secrets(self) -> list[str]:
        return [v for row in ROWS for v in self.secrets_of(row)] + [self.values["s3_secret"]]


def registry_url() -> str:
    env = dict(line.split("=", 1) for line in testbed.ENDPOINTS.read_text().split())
    return env["MODEL_REGISTRY_URL"]


@pytest.fixture(scope="module")
def stage(k8s: client.ApiClient, kubeconfig: str, s3_env: dict[str, str], gpu_nodes: list[str],
          kueue_flavors: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """The demo in a namespace of its own (bf16 and int4 admitted, devstral-2 off), a bucket, a model directory."""
    core = client.CoreV1Api(k8s)
    ns = f"bi-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {**MANAGED, TEST_LABEL: "true"}}})
    other_cq = "other-" + ns
    s3 = s3_client(s3_env)
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="m/keep.json", Body=b"{}")
    tmp = tmp_path_factory.mktemp("bad-inputs")
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}')
    machineset = "bi-" + ns[3:]
    dsc_kueue, queues_before = dsc_kueue_fields(k8s), cluster_queue_names(k8s)
    try:
        create_machineset(k8s, machineset, "g6.4xlarge")
        wait_for(f"ServiceAccount default in {ns}", lambda: core.list_namespaced_service_account(
            ns, field_selector="metadata.name=default").items)
        with ko.queues(k8s, ns) as cq:
            ko.create(k8s, ko.cluster_queue(other_cq, ns + "-none"))  # one no model uses
            ko.create(k8s, ko.inference_service("mistral-3-bf16", ns, 4))
            ko.create(k8s, ko.inference_service("mistral-3-int4", ns, 1))
            ko.create(k8s, ko.inference_service("devstral-2", ns, 4, stopped=True))
            for model in ("mistral-3-bf16", "mistral-3-int4"):
                run_ansible_module("isvc_replicas", {"name": model, "namespace": ns, "state": "started",
                                                     "wait_for": "ready", "wait_timeout": 180}, kubeconfig)
            worker = next(name for name in machineset_names(k8s) if "-worker-" in name)
            values = {
                "ns": ns, "cq": cq, "other_cq": other_cq, "machineset": machineset, "worker": worker, "bucket": bucket,
                "missing_bucket": unique_bucket(), "api": testbed.API, "ca": str(testbed.PKI / "ca.crt"),
                "testbed_ca": (testbed.PKI / "ca.crt").read_text(),
                "closed_https": f"https://127.0.0.1:{closed_port()}", "closed_http": f"http://127.0.0.1:{closed_port()}",
                "registry": registry_url(), "model_dir": str(tmp / "model"), "state_dir": str(tmp / "state"),
                "s3_endpoint": s3_env["AWS_S3_ENDPOINT"], "s3_access": s3_env["AWS_ACCESS_KEY_ID"],
                "s3_secret": s3_env["AWS_SECRET_ACCESS_KEY"], "s3_region": s3_env.get("AWS_DEFAULT_REGION", "us-east-1"),
            }
            yield Stage(values)
    finally:
        # What a row that wrongly got through would leave behind: MachineSets, the DataScienceCluster's defaults.
        for name in [machineset] + [n for n in machineset_names(k8s) if "bad-input" in n]:
            delete_machineset(k8s, name)
        if dsc_kueue_fields(k8s) != dsc_kueue:
            restore_dsc_kueue_fields(k8s, dsc_kueue)  # and the ClusterQueue RHOAI's operator made for the new default:
        for name in cluster_queue_names(k8s) - queues_before:
            ko.delete(k8s, ko.KUEUE, "ClusterQueue", name)
        purge(s3, bucket)
        core.delete_namespace(ns)
        wait_for(f"namespace {ns} deleted", lambda: not core.list_namespace(field_selector=f"metadata.name={ns}").items,
                 timeout=120)


DSC = ("datasciencecluster.opendatahub.io/v2", "DataScienceCluster")


def dsc_kueue_fields(k8s: client.ApiClient) -> dict[str, dict[str, Any]]:
    """Each DataScienceCluster's Kueue component, which local_queue (and the serving role) may change."""
    return {dsc["metadata"]["name"]: dsc["spec"].get("components", {}).get("kueue", {})
            for dsc in ko.dynamic(k8s).resources.get(api_version=DSC[0], kind=DSC[1]).get().to_dict()["items"]}


def restore_dsc_kueue_fields(k8s: client.ApiClient, fields: dict[str, dict[str, Any]]) -> None:
    res = ko.dynamic(k8s).resources.get(api_version=DSC[0], kind=DSC[1])
    for name, kueue in fields.items():
        current = res.get(name=name).to_dict()["spec"].get("components", {}).get("kueue", {})
        patch = {**{k: None for k in current if k not in kueue}, **kueue}
        res.patch(name=name, body={"spec": {"components": {"kueue": patch}}},
                  content_type="application/merge-patch+json")


def cluster_queue_names(k8s: client.ApiClient) -> set[str]:
    return {cq["metadata"]["name"] for cq in ko.dynamic(k8s).resources.get(
        api_version=ko.KUEUE, kind="ClusterQueue").get().to_dict()["items"]}


def machineset_names(k8s: client.ApiClient) -> list[str]:
    items = client.CustomObjectsApi(k8s).list_namespaced_custom_object(
        "machine.openshift.io", "v1beta1", "openshift-machine-api", "machinesets")["items"]
    return sorted(m["metadata"]["name"] for m in items)


# ---------------------------------------------------------------- snapshots


def fingerprint(obj: dict[str, Any]) -> str:
    """What a change by a user (or a module) alters: identity, labels, annotations, spec or data; never status."""
    meta = obj.get("metadata") or {}
    return json.dumps({"uid": meta.get("uid"), "labels": meta.get("labels"), "annotations": meta.get("annotations"),
                       "spec": obj.get("spec"), "data": obj.get("data")}, sort_keys=True, default=str)


def identity(obj: dict[str, Any]) -> str:
    """Pods and Workloads are compared by identity only: Kueue ungates pods and rewrites Workloads on its own."""
    return str((obj.get("metadata") or {}).get("uid"))


def holder(lease: dict[str, Any]) -> str | None:
    """A Lease counts only while held: gpu_handover leaves its lock behind, released, by design."""
    return (lease.get("spec") or {}).get("holderIdentity")


def listing(k8s: client.ApiClient, api_version: str, kind: str, namespace: str | None = None,
            view: Callable[[dict[str, Any]], str | None] = fingerprint) -> dict[str, str]:
    """``kind/namespace/name`` -> ``view(object)`` for every object of a kind whose view is not None."""
    try:
        res = ko.dynamic(k8s).resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:  # an API the testbed does not serve
        return {}
    found = {}
    for item in res.get(namespace=namespace).to_dict()["items"]:
        if item["metadata"].get("deletionTimestamp"):
            continue  # going already (the testbed's canary namespace): a row that deletes shows as a vanished object
        seen = view(item)
        if seen is not None:
            found[f"{kind}/{item['metadata'].get('namespace') or ''}/{item['metadata']['name']}"] = seen
    return found


def registry_listing(url: str) -> dict[str, str]:
    """Every registered model, version and artifact with its last update."""
    found = {}
    for kind in ("registered_models", "model_versions", "model_artifacts"):
        with urllib.request.urlopen(f"{url}{REGISTRY_API}/{kind}?pageSize=100000", timeout=10) as resp:
            for item in json.loads(resp.read()).get("items") or []:
                found[f"{kind}/{item['id']}"] = f"{item.get('name')}@{item.get('lastUpdateTimeSinceEpoch')}"
    return found


def take_snapshot(k8s: client.ApiClient, s3: Any, stage: Stage) -> dict[str, dict[str, Any]]:
    v = stage.values
    ns = v["ns"]
    models: dict[str, Any] = {}
    for api_version, kind in ((ko.ISVC, "InferenceService"), ("apps/v1", "Deployment"), ("v1", "Secret"),
                              ("serving.kserve.io/v1alpha1", "ServingRuntime"), (ko.KUEUE, "LocalQueue")):
        models.update(listing(k8s, api_version, kind, ns))
    models.update(listing(k8s, "v1", "Pod", ns, identity))
    models.update(listing(k8s, ko.KUEUE, "Workload", ns, identity))
    models.update(listing(k8s, "coordination.k8s.io/v1", "Lease", ns, holder))
    cluster: dict[str, Any] = {}
    for api_version, kind in ((ko.KUEUE, "ClusterQueue"), (ko.KUEUE, "ResourceFlavor"), (ko.KUEUE, "LocalQueue"),
                              ("v1", "Namespace"), (ko.ISVC, "InferenceService"),
                              DSC,
                              ("infrastructure.opendatahub.io/v1", "HardwareProfile")):
        cluster.update(listing(k8s, api_version, kind))
    cluster.update(listing(k8s, "v1", "Secret", "private-ai"))
    machinesets = {**listing(k8s, "machine.openshift.io/v1beta1", "MachineSet", "openshift-machine-api"),
                   **listing(k8s, "machine.openshift.io/v1beta1", "Machine", "openshift-machine-api")}
    bucket = {"objects": snapshot(s3, v["bucket"]), "uploads": uploads(s3, v["bucket"]),
              "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"])}
    state = sorted(str(p) for p in Path(v["state_dir"]).rglob("*")) if Path(v["state_dir"]).exists() else []
    return {MODELS: models, CLUSTER: cluster, MACHINESETS: machinesets, BUCKET: bucket,
            REGISTRY: registry_listing(v["registry"]), STATE: state}


def changes(before: Any, after: Any) -> list[str]:
    """What differs: one line per object of a listing (name -> fingerprint), else the area as a whole."""
    listings = [x for x in (before, after) if isinstance(x, dict) and all(isinstance(v, str) for v in x.values())]
    if len(listings) == 2:
        return [f"{key}: {before.get(key)} -> {after.get(key)}" for key in sorted(before.keys() | after.keys())
                if before.get(key) != after.get(key)]
    return [] if before == after else [f"{json.dumps(before, default=str)} -> {json.dumps(after, default=str)}"]


# ---------------------------------------------------------------- the play


# Rows run in lanes, in parallel (hosts of the free strategy); the rows of one module or role share a lane, so
# that two handovers never compete for their Lease.
LANES = 4


def unit(row: Row) -> str:
    """The module or role a row runs."""
    return row.target.split(":")[1] if row.target.startswith("role:") else row.target


def lanes(rows: list[Row]) -> dict[str, int]:
    """Module or role -> lane, the largest first into the emptiest lane."""
    sizes: dict[str, int] = {}
    for row in rows:
        sizes[unit(row)] = sizes.get(unit(row), 0) + (0 if row.slow else 1)
    load, lane_of = [0] * LANES, {}
    for target in sorted(sizes, key=lambda t: -sizes[t]):
        lane = load.index(min(load))
        lane_of[target], load[lane] = lane, load[lane] + sizes[target]
    return lane_of


def lane_name(lane: int) -> str:
    return f"lane-{lane}"


def task_of(index: int, row: Row, stage: Stage, lane: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(background start or None, the row's task) for one row, on its lane only."""
    args, var, when = stage.fill(row, row.args), f"row_{index}", f"inventory_hostname == '{lane_name(lane)}'"
    if row.target.startswith("role:"):
        _, role, *entry = row.target.split(":")
        include = {"name": f"rhoai.gpuaas.{role}", **({"tasks_from": entry[0]} if entry else {})}
        return None, {"name": f"row {row.id}", "when": when, "block": [
            {"name": f"row {row.id}: {role}", "ansible.builtin.include_role": include, "vars": args},
            {"name": f"row {row.id}: the role did not fail", "ansible.builtin.set_fact": {var: {"failed": False}}}],
            "rescue": [{"name": f"row {row.id}: record the failure", "ansible.builtin.set_fact": {
                var: "{{ ansible_failed_result | combine({'failed_task': ansible_failed_task.name}) }}"}}]}
    module = {"name": f"row {row.id}", f"rhoai.gpuaas.{row.target}": args, "environment": stage.fill(row, row.env),
              "register": var, "when": when}
    if not row.slow:
        return None, {**module, "ignore_errors": True}
    start = {**module, "name": f"row {row.id} (in the background)", "register": f"job_{index}", "async": 120, "poll": 0}
    collect = {"name": f"row {row.id}", "ansible.builtin.async_status": {"jid": f"{{{{ job_{index}.ansible_job_id }}}}"},
               "register": var, "until": f"{var}.finished", "retries": 120, "delay": 1, "ignore_errors": True,
               "when": when}
    return start, collect


def playbook(rows: list[Row], stage: Stage, directory: Path) -> list[dict[str, Any]]:
    """One play over the lanes: the slow rows started in the background, the others one after the other, then the
    slow ones collected; each lane records its rows' results in ``results-<lane>.json``."""
    lane_of = lanes(rows)
    starts, tasks, collects = [], [], []
    for index, row in enumerate(rows):
        start, task = task_of(index, row, stage, lane_of[unit(row)])
        (collects if start else tasks).append(task)
        if start:
            starts.append(start)
    # A task skipped on the other lanes registers its variable there too: each lane records only its own rows.
    records = [{"name": f"Record the results of {lane_name(lane)}", "no_log": True,
                "when": f"inventory_hostname == '{lane_name(lane)}'", "ansible.builtin.copy": {
                    "dest": str(directory / f"results-{lane_name(lane)}.json"), "mode": "0600",
                    "content": "{{ {" + ", ".join(f"'{row.id}': row_{i}" for i, row in enumerate(rows)
                                                  if lane_of[unit(row)] == lane) + "} | to_json }}"}}
               for lane in sorted(set(lane_of.values()))]
    return [{"name": "Bad inputs", "hosts": "bad_inputs", "gather_facts": False, "strategy": "free",
             "tasks": starts + tasks + collects + records}]


def lanes_inventory() -> dict[str, Any]:
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python")}
    return {"bad_inputs": {"hosts": {lane_name(lane): host for lane in range(LANES)}}}


@dataclass
class Outcome:
    results: dict[str, dict[str, Any]]
    output: str
    before: dict[str, Any]
    after: dict[str, Any]
    stage: Stage
    directory: Path  # the playbook, its results and its output


@pytest.fixture(scope="module")
def outcome(request: pytest.FixtureRequest, stage: Stage, k8s: client.ApiClient, kubeconfig: str,
            s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Run the play once, with the rows this session selected (`-k up-` runs only those); every row's result,
    the whole -vvv output (kept in the play's directory, which a failure names), the snapshots before and after."""
    selected = {item.callspec.params["row"].id for item in request.session.items
                if getattr(item, "callspec", None) and "row" in item.callspec.params}
    rows = [row for row in ROWS if row.id in selected] or ROWS
    tmp = tmp_path_factory.mktemp("bad-inputs-play")
    book = tmp / "bad_inputs.yml"
    book.write_text(yaml.safe_dump(playbook(rows, stage, tmp), sort_keys=False, width=1000))
    (tmp / "lanes.yml").write_text(yaml.safe_dump(lanes_inventory()))
    s3 = s3_client(s3_env)
    # The testbed's canary (`testbed.up` at the start of the session) empties its namespace in the background.
    core = client.CoreV1Api(k8s)
    wait_for("the testbed's canary namespace to go", lambda: not core.list_namespace(
        label_selector=CANARY_LABEL).items, timeout=120)
    before = take_snapshot(k8s, s3, stage)
    env = ansible_env(kubeconfig)
    env.pop("ANSIBLE_STDOUT_CALLBACK")  # the default callback: what a user reads
    env["GPUAAS_ROOT"] = str(ROOT)  # the inventory finds the testbed from it (the playbook is not in playbooks/)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "-i", str(tmp / "lanes.yml"),
                           "--forks", str(LANES), "-vvv", str(book)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    output = proc.stdout + proc.stderr
    (tmp / "output.txt").write_text(output)
    results: dict[str, Any] = {}
    for path in tmp.glob("results-*.json"):
        results.update(json.loads(path.read_text()))
    assert len(results) == len(rows), f"the play did not finish (rc {proc.returncode}; {tmp}/output.txt):\n{output[-5000:]}"
    return Outcome(results, output, before, take_snapshot(k8s, s3, stage), stage, tmp)


def crashed(result: dict[str, Any]) -> bool:
    """An unhandled exception, as ansible-core reports it (2.19: "Module failed: ...", before: "MODULE FAILURE")."""
    msg = str(result.get("msg", ""))
    return (msg.startswith(("Task failed: Module failed:", "MODULE FAILURE")) or "Traceback" in json.dumps(result)
            or "module_stderr" in result)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_fails_clearly_and_changes_nothing(outcome: Outcome, row: Row) -> None:
    result = outcome.results[row.id]
    msg = str(result.get("msg", ""))
    assert result.get("failed") is True, \
        f"{row.id} did not fail (output in {outcome.directory}): {json.dumps(result, default=str)[:3000]}"
    for words in outcome.stage.fill(row, list(row.says)):
        assert words in msg, f"{row.id}: {words!r} not in {msg!r}"
    assert not crashed(result), f"{row.id} crashed: {json.dumps(result, default=str)[:3000]}"
    assert not result.get("changed"), f"{row.id} reports a change"
    leaked = [s for s in outcome.stage.secrets_of(row) if s in outcome.output]
    assert not leaked, f"{row.id} shows a secret of its own in the -vvv output ({outcome.directory}/output.txt)"
    for area in row.areas:
        assert not changes(outcome.before[area], outcome.after[area]), \
            f"{row.id} may have changed {area}: {changes(outcome.before[area], outcome.after[area])}"


def test_no_secret_and_no_traceback_anywhere_in_the_verbose_output(outcome: Outcome) -> None:
    """The rows' checks name the row that leaks its own secret; this one also catches the shared S3 secret
    wherever it appears, and a traceback of anything the play ran."""
    leaked = [i for i, s in enumerate(outcome.stage.all_secrets()) if s in outcome.output]
    assert not leaked, f"secrets number {leaked} appear in {outcome.directory}/output.txt"
    assert "Traceback" not in outcome.output, f"a traceback in {outcome.directory}/output.txt"


def test_nothing_changed_anywhere(outcome: Outcome) -> None:
    """Also what no row claims to touch: a change here that no row's own check caught is a row's stray write."""
    for area, before in outcome.before.items():
        assert not changes(before, outcome.after[area]), f"{area}: {changes(before, outcome.after[area])}"

