"""An https data connection on the testbed's RHOAI layer: the CA chain, connection_ca, the storage initializer.

The testbed's S3 serves HTTPS with a certificate from the testbed CA, which `up` put in the
DSCInitialization's trusted CA bundle (as an admin adds an in-cluster MinIO's CA); rhoai_sim copies
it into each namespace's `odh-trusted-ca-bundle` and merges that with the service CA into
`odh-kserve-custom-ca-bundle`, and vllm_sim's storage initializer verifies S3 with what KServe's
webhook mounted from there.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko
import _s3_helpers as s3h
import testbed
from _poll import wait_for
from conftest import MANAGED, new_namespace

pytestmark = pytest.mark.integration

OPT_OUT = "security.opendatahub.io/inject-trusted-ca-bundle"
DSCI_TRUST = "the DSCInitialization's spec.trustedCABundle.customCABundle"


def data_connection(namespace: str, s3_env: dict[str, str], bucket: str) -> dict[str, Any]:
    """The data connection as the serving role (and the RHOAI dashboard) writes it, to the HTTPS port."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "models", "namespace": namespace,
                         "labels": {"opendatahub.io/dashboard": "true", "opendatahub.io/managed": "true"},
                         "annotations": {"opendatahub.io/connection-type": "s3",
                                         "opendatahub.io/connection-type-ref": "s3"}},
            "stringData": {"AWS_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
                           "AWS_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
                           "AWS_S3_ENDPOINT": s3_env["AWS_S3_ENDPOINT_HTTPS"], "AWS_S3_BUCKET": bucket,
                           "AWS_DEFAULT_REGION": s3_env.get("AWS_DEFAULT_REGION", "us-east-1")}}


def storage_entry(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    try:
        secret = core.read_namespaced_secret("storage-config", namespace)
    except client.ApiException as err:
        if err.status == 404:
            return {}
        raise
    raw = (secret.data or {}).get("models")
    return json.loads(base64.b64decode(raw)) if raw else {}


def bundle(core: client.CoreV1Api, namespace: str) -> str:
    try:
        return (core.read_namespaced_config_map("odh-kserve-custom-ca-bundle", namespace).data or {}).get(
            "cabundle.crt", "")
    except client.ApiException as err:
        if err.status == 404:
            return ""
        raise


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> Iterator[str]:
    """A bucket holding a model's config.json, for the storage initializer to list."""
    s3 = s3h.client(s3_env)
    name = "it-ca-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="m/config.json", Body=b'{"architectures": ["MistralForCausalLM"]}')
    try:
        yield name
    finally:
        s3h.purge(s3, name)


def test_the_testbed_ca_reaches_the_connection_through_the_dsci(k8s: client.ApiClient, namespace: str,
                                                                 s3_env: dict[str, str], bucket: str,
                                                                 run_module: Callable[..., dict[str, Any]]) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(namespace, data_connection(namespace, s3_env, bucket))
    testbed_ca = (testbed.PKI / "ca.crt").read_text()
    result = run_module("connection_ca", {"namespace": namespace, "connection": "models", "ca": testbed_ca,
                                          "wait_timeout": 60})
    assert result["ready"] and result["changed"] is False and result["trusted_by"] == [DSCI_TRUST]
    # What a user would look at: the connection's entry names the bundle, and the bundle holds the CA.
    assert storage_entry(core, namespace)["cabundle_configmap"] == "odh-kserve-custom-ca-bundle"
    assert testbed_ca.strip() in bundle(core, namespace)

    service_ca = (testbed.PKI / "service-ca.crt").read_text()
    result = run_module("connection_ca", {"namespace": namespace, "connection": "models", "ca": service_ca})
    assert result["ready"] and result["trusted_by"] == ["the OpenShift service CA"]


def init_state(k8s: client.ApiClient, name: str, namespace: str) -> Any:
    """The storage initializer's status in the predictor pod, or None before there is one."""
    pods = ko.predictor_pods(k8s, name, namespace)
    statuses = (pods[0].status.init_container_statuses or []) if pods else []
    return next((s for s in statuses if s.name == "storage-initializer"), None)


def test_an_opted_out_namespace_is_refused_at_once_and_its_model_fails_tls_until_the_ca_arrives(
        k8s: client.ApiClient, s3_env: dict[str, str], bucket: str, gpu_nodes: list[str],
        run_module: Callable[..., dict[str, Any]]) -> None:
    """The failure connection_ca prevents, reproduced: a model whose storage initializer cannot verify S3."""
    core = client.CoreV1Api(k8s)
    testbed_ca = (testbed.PKI / "ca.crt").read_text()
    with new_namespace(k8s, MANAGED) as ns:
        core.patch_namespace(ns, {"metadata": {"annotations": {OPT_OUT: "false"}}})
        core.create_namespaced_secret(ns, data_connection(ns, s3_env, bucket))
        wait_for("the operator to take odh-trusted-ca-bundle away and the bundle to be the service CA alone",
                 lambda: bundle(core, ns) and testbed_ca.strip() not in bundle(core, ns)
                 and storage_entry(core, ns).get("cabundle_configmap"), timeout=60)

        started = time.monotonic()
        refused = run_module("connection_ca", {"namespace": ns, "connection": "models", "ca": testbed_ca,
                                               "wait_timeout": 120}, expect_fail=True)
        assert time.monotonic() - started < 60 and "Timed out" not in refused["msg"]
        assert refused["msg"].startswith(
            f"The model servers in {ns} will not trust the CA of data connection models: namespace {ns} has opted "
            f"out of the trusted CA bundle (annotation {OPT_OUT}): remove the annotation")

        with ko.queues(k8s, ns):
            isvc = ko.inference_service("tls", ns, 1)
            isvc["spec"]["predictor"]["model"].update(storageUri=f"s3://{bucket}/m/", storage={"key": "models"})
            ko.create(k8s, isvc)

            def crashed() -> Any:
                status = init_state(k8s, "tls", ns)
                term = status.last_state.terminated if status and status.last_state else None
                return term if term and status.restart_count >= 1 else None
            term = wait_for("the storage initializer to crash-loop on TLS", crashed, timeout=120)
            assert term.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in term.message, term.message

            # The admin's fix: the namespace takes the bundle again; the crash-looping pod recovers on its next start.
            core.patch_namespace(ns, {"metadata": {"annotations": {OPT_OUT: None}}})
            result = run_module("connection_ca", {"namespace": ns, "connection": "models", "ca": testbed_ca,
                                                  "wait_timeout": 60})
            assert result["ready"] and result["trusted_by"] == [DSCI_TRUST]

            def initialized() -> bool:
                status = init_state(k8s, "tls", ns)
                return bool(status and status.state.terminated and status.state.terminated.exit_code == 0)
            wait_for("the storage initializer to complete", initialized, timeout=180)
