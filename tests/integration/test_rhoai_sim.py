"""The simulated RHOAI 3.0 layer (testbed/rhoai_sim.py) against the real kube-apiserver, Kueue and KServe.

Each test shows a behaviour the demo meets on a real RHOAI 3.0 cluster: the operator's LocalQueue
and Kueue's refusal to re-point it, `storage-config` built from data connections, the hardware
profile webhook (and its refusal of a missing profile), the queue-label check, and an
InferenceService written with `RawDeployment` that stops and starts through the annotation.
"""
from __future__ import annotations

import base64
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko
from _poll import wait_for
from conftest import MANAGED, TEST_LABEL, new_namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testbed"))
import rhoai_sim as rs  # noqa: E402

DSC = f"{rs.DSC_GROUP}/{rs.DSC_VERSION}"
HWP = f"{rs.HWP_GROUP}/{rs.HWP_VERSION}"
APPS = rs.APPLICATIONS_NAMESPACE


def res(k8s: client.ApiClient, api_version: str, kind: str) -> Any:
    return ko.dynamic(k8s).resources.get(api_version=api_version, kind=kind)


def message(err: client.ApiException) -> str:
    """The apiserver's message of a refusal (the body is a Status object)."""
    return json.loads(err.body)["message"]


def local_queue(k8s: client.ApiClient, namespace: str, name: str = "default") -> dict | None:
    return ko.get(k8s, ko.KUEUE, "LocalQueue", name, namespace)


@contextlib.contextmanager
def dsc_kueue(k8s: client.ApiClient, **fields: str) -> Iterator[None]:
    """Set Kueue fields of `default-dsc` for the block, as an admin would, and put them back."""
    dscs = res(k8s, DSC, "DataScienceCluster")
    before = dscs.get(name=rs.DEFAULT_DSC).to_dict()["spec"]["components"]["kueue"]
    dscs.patch(name=rs.DEFAULT_DSC, content_type="application/merge-patch+json",
               body={"spec": {"components": {"kueue": fields}}})
    try:
        yield
    finally:
        dscs.patch(name=rs.DEFAULT_DSC, content_type="application/merge-patch+json",
                   body={"spec": {"components": {"kueue": {k: before.get(k) for k in fields}}}})


# ---- the operator's Kueue component -------------------------------------------------------------
def test_operator_local_queue_is_created_once_and_kueue_refuses_to_repoint_it(k8s: client.ApiClient) -> None:
    cq = f"it-main-{uuid.uuid4().hex[:6]}"
    # Whatever the DSC names now (a deploy run earlier on this testbed may have re-pointed it), "default" unset.
    kueue = res(k8s, DSC, "DataScienceCluster").get(name=rs.DEFAULT_DSC).to_dict()["spec"]["components"]["kueue"]
    current = kueue.get("defaultClusterQueueName") or "default"
    with new_namespace(k8s, MANAGED) as ns:
        lq = wait_for(f"the operator's LocalQueue default in {ns}", lambda: local_queue(k8s, ns))
        assert lq["spec"]["clusterQueue"] == current
        assert lq["metadata"]["labels"]["platform.opendatahub.io/part-of"] == "kueue"
        assert ko.get(k8s, ko.KUEUE, "ClusterQueue", current) is not None  # the operator's own
        labels = client.CoreV1Api(k8s).read_namespace(ns).metadata.labels
        assert labels[rs.LEGACY_MANAGED_LABEL] == "true"  # both managed labels, as the operator sets them

        with dsc_kueue(k8s, defaultClusterQueueName=cq):
            # the operator saw the change: it creates the newly named ClusterQueue ...
            wait_for(f"ClusterQueue {cq}", lambda: ko.get(k8s, ko.KUEUE, "ClusterQueue", cq))
            # ... and a namespace labelled now gets a LocalQueue pointing at it, ...
            with new_namespace(k8s, MANAGED) as later:
                assert wait_for(f"LocalQueue default in {later}",
                                lambda: local_queue(k8s, later))["spec"]["clusterQueue"] == cq
            # ... but the existing LocalQueue is not updated,
            assert local_queue(k8s, ns)["spec"]["clusterQueue"] == current
            # and Kueue (its CRD's validation rule) refuses the change the demo's quota step makes.
            with pytest.raises(client.ApiException) as refused:
                client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
                    "kueue.x-k8s.io", "v1beta2", ns, "localqueues", "default", {"spec": {"clusterQueue": cq}})
            assert refused.value.status == 422
            assert message(refused.value) == (f'LocalQueue.kueue.x-k8s.io "default" is invalid: spec.clusterQueue: '
                                              f'Invalid value: "{cq}": field is immutable')
            # Deleted, it comes back at once, now pointing at the DSC's queue: how the demo replaced it.
            ko.delete(k8s, ko.KUEUE, "LocalQueue", "default", ns)
            wait_for("the LocalQueue re-created pointing at the new ClusterQueue",
                     lambda: (local_queue(k8s, ns) or {}).get("spec", {}).get("clusterQueue") == cq)
    ko.delete(k8s, ko.KUEUE, "ClusterQueue", cq)


def test_no_local_queue_in_namespaces_kueue_does_not_manage(k8s: client.ApiClient) -> None:
    with new_namespace(k8s, {}) as plain, new_namespace(k8s, MANAGED) as managed:
        wait_for(f"LocalQueue default in {managed}", lambda: local_queue(k8s, managed))
        assert local_queue(k8s, plain) is None  # the managed one came later than this one would have


# ---- data connections -> storage-config -----------------------------------------------------------
def data_connection(name: str, endpoint: str, bucket: str = "models") -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {rs.ODH_DASHBOARD: "true", rs.ODH_MANAGED: "true"},
                         "annotations": {rs.CONNECTION_TYPE: "s3", "opendatahub.io/connection-type-ref": "s3",
                                         "openshift.io/display-name": name}},
            "stringData": {"AWS_ACCESS_KEY_ID": "it-key", "AWS_SECRET_ACCESS_KEY": "it-secret",
                           "AWS_S3_ENDPOINT": endpoint, "AWS_S3_BUCKET": bucket, "AWS_DEFAULT_REGION": "us-east-1"}}


def storage_config(core: client.CoreV1Api, ns: str) -> dict[str, str] | None:
    try:
        secret = core.read_namespaced_secret("storage-config", ns)
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise
    assert secret.metadata.labels == {"opendatahub.io/managed": "true"}
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_storage_config_follows_the_data_connections(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(namespace, data_connection("minio", "http://minio.minio-storage.svc:9000"))
    entry = ('{"access_key_id":"it-key","bucket":"models","endpoint_url":"http://minio.minio-storage.svc:9000",'
             '"region":"us-east-1","secret_access_key":"it-secret","type":"s3"}')
    wait_for("storage-config with the connection", lambda: storage_config(core, namespace) == {"minio": entry})

    # An https endpoint names the namespace's CA bundle (made from the service CA in every namespace).
    core.patch_namespaced_secret("minio", namespace, {"stringData": {"AWS_S3_ENDPOINT": "https://s3.example:443"}})
    wait_for("storage-config with the https endpoint and the CA bundle", lambda: json.loads(
        (storage_config(core, namespace) or {}).get("minio", "{}")).get("cabundle_configmap")
        == "odh-kserve-custom-ca-bundle")

    core.create_namespaced_secret(namespace, data_connection("second", "http://other:9000", bucket="other"))
    wait_for("a second entry", lambda: sorted(storage_config(core, namespace) or {}) == ["minio", "second"])
    # A hand edit of storage-config is put back.
    core.patch_namespaced_secret("storage-config", namespace, {"data": {"minio": base64.b64encode(b"{}").decode()}})
    wait_for("storage-config restored", lambda: json.loads(
        (storage_config(core, namespace) or {}).get("minio", "{}")).get("endpoint_url") == "https://s3.example:443")

    core.delete_namespaced_secret("minio", namespace)
    wait_for("the deleted connection's entry gone", lambda: sorted(storage_config(core, namespace) or {}) == ["second"])
    core.delete_namespaced_secret("second", namespace)
    wait_for("storage-config deleted with the last connection", lambda: storage_config(core, namespace) is None)


# ---- hardware profiles and the queue-label check ---------------------------------------------------
@contextlib.contextmanager
def hardware_profile(k8s: client.ApiClient, spec: dict) -> Iterator[str]:
    name = f"it-{uuid.uuid4().hex[:6]}"
    res(k8s, HWP, "HardwareProfile").create(namespace=APPS, body={
        "apiVersion": HWP, "kind": "HardwareProfile", "metadata": {"name": name, "namespace": APPS}, "spec": spec})
    try:
        yield name
    finally:
        ko.delete(k8s, HWP, "HardwareProfile", name, APPS)


def profiled_isvc(name: str, namespace: str, profile: str | None) -> dict:
    """An InferenceService as the dashboard writes it: no queue label, no resources, a profile."""
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    if profile:
        annotations.update({rs.HWP_NAME_ANNOTATION: profile, rs.HWP_NAMESPACE_ANNOTATION: APPS})
    return {"apiVersion": ko.ISVC, "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime"}}}}


GPU_IDENTIFIERS = [
    {"identifier": "cpu", "displayName": "CPU", "resourceType": "CPU", "minCount": 1, "defaultCount": "16000m"},
    {"identifier": "memory", "displayName": "Memory", "resourceType": "Memory", "minCount": "1Gi",
     "defaultCount": "64Gi", "maxCount": "131072Mi"},
    {"identifier": "nvidia.com/gpu", "displayName": "GPU", "resourceType": "Accelerator", "minCount": 1,
     "defaultCount": 4, "maxCount": 4}]


def test_queue_profile_sets_the_queue_label_and_resources(k8s: client.ApiClient, namespace: str) -> None:
    isvcs = res(k8s, ko.ISVC, "InferenceService")
    ko.create(k8s, ko.serving_runtime(namespace))
    # Without a profile, the dashboard's InferenceService has no queue label: refused in a Kueue namespace.
    with pytest.raises(client.ApiException) as refused:
        isvcs.create(namespace=namespace, body=profiled_isvc("plain", namespace, None))
    assert refused.value.status == 403
    assert message(refused.value) == (f'admission webhook "{rs.KUEUE_LABEL_WEBHOOK}" denied the request: Kueue label '
                                      'validation failed: missing required label "kueue.x-k8s.io/queue-name"')

    spec = {"identifiers": GPU_IDENTIFIERS, "scheduling": {"type": "Queue", "kueue": {"localQueueName": "default"}}}
    with hardware_profile(k8s, spec) as profile:
        created = isvcs.create(namespace=namespace, body=profiled_isvc("llm", namespace, profile)).to_dict()
        assert created["metadata"]["labels"][ko.QUEUE_LABEL] == "default"
        assert created["spec"]["predictor"]["model"]["resources"] == {
            "requests": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"},
            "limits": {"memory": "128Gi", "nvidia.com/gpu": "4"}}
        assert "tolerations" not in created["spec"]["predictor"]
        # KServe copies the label to the predictor, so Kueue queues it in the operator's LocalQueue.
        apps = client.AppsV1Api(k8s)
        deployment = wait_for("the predictor Deployment", lambda: next(iter(apps.list_namespaced_deployment(
            namespace, label_selector=f"{ko.QUEUE_LABEL}=default").items), None))
        assert deployment.metadata.name == "llm-predictor"

    # The webhook also runs on every UPDATE: once the profile is gone, nothing can change the
    # InferenceService any more, not even the stop annotation of a handover (nor KServe's own updates).
    with pytest.raises(client.ApiException) as refused:
        isvcs.patch(name="llm", namespace=namespace, content_type="application/merge-patch+json",
                    body={"metadata": {"annotations": {ko.STOP: "true"}}})
    assert (refused.value.status, message(refused.value)) == (400, (
        f'admission webhook "{rs.HWP_WEBHOOK}" denied the request: hardware profile \'{profile}\' not found in '
        f"namespace '{APPS}'"))


def test_node_profile_sets_node_selector_and_tolerations(k8s: client.ApiClient, namespace: str) -> None:
    spec = {"identifiers": GPU_IDENTIFIERS[2:],
            "scheduling": {"type": "Node", "node": {
                "nodeSelector": {"node.kubernetes.io/instance-type": "g6.12xlarge"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}
    with hardware_profile(k8s, spec) as profile:
        body = profiled_isvc("llm", namespace, profile)
        body["metadata"]["labels"] = {ko.QUEUE_LABEL: "default"}
        created = res(k8s, ko.ISVC, "InferenceService").create(namespace=namespace, body=body).to_dict()
    predictor = created["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"node.kubernetes.io/instance-type": "g6.12xlarge"}
    assert predictor["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert predictor["model"]["resources"] == {"requests": {"nvidia.com/gpu": "4"}, "limits": {"nvidia.com/gpu": "4"}}


def test_missing_profile_is_refused_as_the_operator_does(k8s: client.ApiClient, namespace: str) -> None:
    with pytest.raises(client.ApiException) as refused:
        res(k8s, ko.ISVC, "InferenceService").create(namespace=namespace,
                                                    body=profiled_isvc("llm", namespace, "no-such-profile"))
    assert refused.value.status == 400
    assert message(refused.value) == (f'admission webhook "{rs.HWP_WEBHOOK}" denied the request: hardware profile '
                                      f"'no-such-profile' not found in namespace '{APPS}'")


def test_profile_schema_rules(k8s: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as refused:
        with hardware_profile(k8s, {"scheduling": {"type": "Queue", "node": {"nodeSelector": {"a": "b"}}}}):
            pass
    assert refused.value.status == 422
    assert ("When schedulingType is 'Queue', the 'kueue.localQueueName' field must be specified"
            in message(refused.value))
    assert ko.get(k8s, HWP, "HardwareProfile", "default-profile", APPS) is not None  # the DSCI's


# ---- RawDeployment, stopped and started -----------------------------------------------------------
def test_rawdeployment_isvc_stops_and_starts(k8s: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(k8s)
    isvcs = res(k8s, ko.ISVC, "InferenceService")
    with ko.queues(k8s, namespace):
        body = ko.inference_service("llm", namespace, 1)
        assert body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        assert body["spec"]["predictor"]["deploymentStrategy"] == {"type": "Recreate"}
        ko.create(k8s, body)

        def predictor() -> client.V1Deployment | None:
            return next((d for d in apps.list_namespaced_deployment(namespace).items
                         if d.metadata.name == "llm-predictor"), None)
        assert wait_for("the predictor Deployment", predictor).spec.strategy.type == "Recreate"
        wait_for("KServe to record the mode", lambda: ko.isvc(k8s, "llm", namespace).get("status", {}).get(
            "deploymentMode"))

        # Re-applied as a playbook writes it: RawDeployment again, plus the stop annotation.
        for stop, present in (("true", False), ("false", True)):
            isvcs.patch(name="llm", namespace=namespace, content_type="application/merge-patch+json",
                        body={"metadata": {"annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                                           ko.STOP: stop}}})
            wait_for(f"the predictor Deployment {'back' if present else 'gone'} with stop={stop}",
                     lambda: (predictor() is not None) == present)
