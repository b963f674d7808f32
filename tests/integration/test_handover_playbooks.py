"""The playbooks as a user runs them: a failed step 3 puts the previous state back and says why."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kubernetes import client

import _kueue_objects as ko
from conftest import ROOT, run_playbook as playbook

NAMESPACE = "private-ai"


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


def stop_annotation(k8s: client.ApiClient, name: str) -> str | None:
    return ko.isvc(k8s, name, NAMESPACE)["metadata"].get("annotations", {}).get(ko.STOP)


@pytest.fixture
def baseline(k8s: client.ApiClient) -> Iterator[None]:
    """GPU nodes provisioned and the demo deployed at its baseline; torn down afterwards, so the
    demo's pods hold no GPU node that the other tests need."""
    try:
        ok(playbook("provision.yml"))
        ok(playbook("upload_model.yml"))
        ok(playbook("deploy.yml", "-e", "serving_enforce_state=true"))
        yield
    finally:
        ok(playbook("teardown.yml"))


def test_step3_refuses_a_handover_that_cannot_succeed_and_changes_nothing(
        k8s: client.ApiClient, baseline: None) -> None:
    # devstral-2 now asks for more GPUs than any flavor has: stopping mistral-3-bf16 could not help.
    ko.dynamic(k8s).resources.get(api_version=ko.ISVC, kind="InferenceService").patch(
        name="devstral-2", namespace=NAMESPACE, content_type="application/merge-patch+json",
        body={"spec": {"predictor": {"model": {"resources": {"requests": {ko.GPU: "5"}, "limits": {ko.GPU: "5"}}}}}})
    step2 = ok(playbook("handover.yml", "-e", "handover_step=2"))
    assert "GPUs: 4 + 1 + 5 = 10 > 5" in step2.stdout
    assert "maximum capacity" in step2.stdout

    step3 = playbook("handover.yml", "-e", "handover_step=3", "-e", "handover_admit_timeout=15")
    assert step3.returncode != 0
    assert "Handover refused before any change (pending for quota alone)" in step3.stdout
    assert "Step 3 refused, nothing changed" in step3.stdout
    assert stop_annotation(k8s, "mistral-3-bf16") in (None, "false")
    assert stop_annotation(k8s, "devstral-2") == "false"
    assert any(p.status.phase == "Running" and not p.metadata.deletion_timestamp
               for p in ko.predictor_pods(k8s, "mistral-3-bf16", NAMESPACE))


def test_step1_on_a_stopped_model_fails_at_once_with_the_reason(k8s: client.ApiClient, baseline: None) -> None:
    """Step 1 once waited its whole timeout for a model somebody had stopped; it must say so at once."""
    ko.dynamic(k8s).resources.get(api_version=ko.ISVC, kind="InferenceService").patch(
        name="mistral-3-bf16", namespace=NAMESPACE, content_type="application/merge-patch+json",
        body={"metadata": {"annotations": {ko.STOP: "true"}}})
    step1 = playbook("handover.yml", "-e", "handover_step=1", "-e", "handover_verify_timeout=60")
    assert step1.returncode != 0
    assert "Not the baseline" in step1.stdout
    assert ("mistral-3-bf16 is OFF, expected ON: only a start or stop changes that (stop annotation set)"
            in step1.stdout), step1.stdout[-4000:]
    assert "Timed out after" not in step1.stdout
    assert stop_annotation(k8s, "devstral-2") == "true", "step 1 only reads"


def test_deploy_reports_a_4_gpu_model_without_tensor_parallelism_with_vllms_message(
        k8s: client.ApiClient, baseline: None, tmp_path: Path) -> None:
    """The demo's first failure on a real cluster: 48 GB of BF16 weights on one 24 GB L4. The deploy's own
    wait must say so at once, with vLLM's words, instead of waiting its whole timeout."""
    models = yaml.safe_load((ROOT / "inventories" / "local" / "group_vars" / "all" / "demo.yml").read_text())["gpuaas_models"]
    for model in models:
        if model["name"] == "mistral-3-bf16":
            model["args"] = [*model.get("args", []), "--tensor-parallel-size=1"]
    extra = tmp_path / "no-tp.json"
    extra.write_text(json.dumps({"gpuaas_models": models, "serving_wait_timeout": 600}))
    deploy = playbook("deploy.yml", "-e", f"@{extra}")
    assert deploy.returncode != 0
    out = deploy.stdout
    assert "mistral-3-bf16 is FAILING" in out and "CrashLoopBackOff" in out, out[-4000:]
    assert "Engine core initialization failed" in out, out[-4000:]  # vLLM's own last words
    assert "Timed out after" not in out, "the wait failed on the crash, not at its timeout"
