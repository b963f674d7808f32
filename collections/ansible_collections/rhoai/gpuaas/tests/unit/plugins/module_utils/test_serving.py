# -*- coding: utf-8 -*-
"""The serving role's plan and preflight (filters serving_plan and serving_problems)."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.plugins.module_utils import serving
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o

FLAVORS = [{"name": "nvidia-l4-1gpu", "quota": {o.GPU: 1, "cpu": 16, "memory": "64Gi"}},
           {"name": "nvidia-l4-4gpu", "quota": {o.GPU: 4, "cpu": 48, "memory": "192Gi"}}]
COVERED = ["cpu", "memory", o.GPU]


def model(name, gpus, flavor, state="on", **kw):
    return dict({"name": name, "gpus": gpus, "flavor": flavor, "state": state, "cpu": "8", "memory": "48Gi",
                 "storage_uri": "s3://models/" + name + "/"}, **kw)


MODELS = [model("bf16", 4, "nvidia-l4-4gpu"), model("int4", 1, "nvidia-l4-1gpu", cpu="4", memory="16Gi"),
          model("dev", 4, "nvidia-l4-4gpu", state="off")]


def test_new_models_take_the_inventory_state_existing_ones_keep_theirs() -> None:
    live = [o.isvc("bf16", stopped=True)]
    plan = serving.plan_states(live, MODELS, enforce=False, restore_after_teardown=True)
    assert plan == [{"name": "bf16", "exists": True, "on": False, "set_state": False},
                    {"name": "int4", "exists": False, "on": True, "set_state": True},
                    {"name": "dev", "exists": False, "on": False, "set_state": True}]


def test_enforce_and_after_teardown_apply_the_inventory_again() -> None:
    live = [o.isvc("bf16", stopped=True), o.isvc("int4", stopped=True), o.isvc("dev", stopped=True)]
    for enforce, restore in ((True, False), (False, True)):
        plan = serving.plan_states(live, MODELS, enforce, restore)
        assert [(p["on"], p["set_state"]) for p in plan] == [(True, True), (True, True), (False, True)]
    kept = serving.plan_states(live, MODELS, False, False)
    assert [p["on"] for p in kept] == [False, False, False]


def test_preflight_passes_the_demo() -> None:
    plan = serving.plan_states([], MODELS, False, True)
    assert serving.problems(MODELS, FLAVORS, COVERED, o.GPU, "q", plan) == []


def test_preflight_names_every_problem() -> None:
    bad = [model("a", 4, "nvidia-l4-4gpu", state="maybe"), model("b", 1, "nope"),
           model("c", 1, "nvidia-l4-1gpu", requests={"ephemeral-storage": "10Gi"}),
           model("d", 1, "nvidia-l4-1gpu", storage_uri="https://x")]
    flavors = FLAVORS + [{"name": "nope", "quota": {o.GPU: 1}}]
    plan = [{"name": m["name"], "on": False} for m in bad]
    found = serving.problems(bad, flavors, COVERED, o.GPU, "q", plan)
    assert 'a: state must be "on" or "off", not "maybe"' in found
    assert any(f.startswith("c requests ephemeral-storage, which ClusterQueue q does not cover") for f in found)
    assert "d: storage_uri must start with s3:// or oci://, not https://x" in found
    assert "flavor nope has no quota for covered resource cpu" in found


def test_preflight_adds_quantities_with_units_per_flavor() -> None:
    on = [model("x", 2, "nvidia-l4-4gpu", memory="100Gi"), model("y", 2, "nvidia-l4-4gpu", memory="100Gi")]
    plan = serving.plan_states([], on, False, True)
    found = serving.problems(on, FLAVORS, COVERED, o.GPU, "q", plan)
    assert found == ["the models that will be on do not fit flavor nvidia-l4-4gpu: memory 100Gi (x) + 100Gi (y) > quota 192Gi"]
    off = [dict(m, state="off") for m in on]
    assert serving.problems(off, FLAVORS, COVERED, o.GPU, "q", serving.plan_states([], off, False, True)) == []


SETTINGS = {"namespace": "private-ai", "local_queue": "default", "deployment_mode": "RawDeployment",
            "runtime": "vllm-runtime", "connection": "models", "gpu_resource": o.GPU,
            "hardware_profile_namespace": "redhat-ods-applications"}


def test_a_four_gpu_model_gets_tensor_parallelism_unless_its_args_set_it() -> None:
    bf16 = model("bf16", 4, "nvidia-l4-4gpu", args=["--tool-call-parser=mistral"])
    manifest = serving.isvc_manifest(bf16, SETTINGS, {"on": True, "set_state": True})
    assert manifest["spec"]["predictor"]["model"]["args"] == ["--tool-call-parser=mistral", "--tensor-parallel-size=4"]
    given = model("x", 4, "nvidia-l4-4gpu", args=["-tp", "2"])
    assert serving.isvc_manifest(given, SETTINGS, {"on": True, "set_state": False})["spec"]["predictor"]["model"]["args"] == ["-tp", "2"]
    one = serving.isvc_manifest(model("y", 1, "nvidia-l4-1gpu"), SETTINGS, {"on": True, "set_state": False})
    assert "args" not in one["spec"]["predictor"]["model"]


def test_the_manifest_carries_queue_profile_limits_connection_and_state() -> None:
    m = model("bf16", 4, "nvidia-l4-4gpu", cpu="16", memory="64Gi", cpu_limit=32, memory_limit="128Gi",
              hardware_profile="nvidia-l4-4gpu", env={"LD_LIBRARY_PATH": "/usr/local/nvidia/lib64"})
    manifest = serving.isvc_manifest(m, SETTINGS, {"on": False, "set_state": True})
    meta, pred = manifest["metadata"], manifest["spec"]["predictor"]
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "default"
    assert meta["annotations"] == {"serving.kserve.io/deploymentMode": "RawDeployment", "openshift.io/display-name": "bf16",
                                   "serving.kserve.io/stop": "true",
                                   "opendatahub.io/hardware-profile-name": "nvidia-l4-4gpu",
                                   "opendatahub.io/hardware-profile-namespace": "redhat-ods-applications"}
    assert pred["deploymentStrategy"] == {"type": "Recreate"}
    assert pred["model"]["resources"] == {"requests": {"cpu": "16", "memory": "64Gi", o.GPU: "4"},
                                          "limits": {"cpu": "32", "memory": "128Gi", o.GPU: "4"}}
    assert pred["model"]["storage"] == {"key": "models"}
    assert pred["model"]["env"] == [{"name": "LD_LIBRARY_PATH", "value": "/usr/local/nvidia/lib64"}]


def test_an_oci_model_has_no_data_connection_and_a_kept_state_is_not_written() -> None:
    m = model("int4", 1, "nvidia-l4-1gpu", storage_uri="oci://registry.redhat.io/rhelai1/modelcar-x:1.5")
    manifest = serving.isvc_manifest(m, SETTINGS, {"on": True, "set_state": False})
    assert "storage" not in manifest["spec"]["predictor"]["model"]
    assert "serving.kserve.io/stop" not in manifest["metadata"]["annotations"]
