"""Unit tests of the RHOAI simulator's pure logic (no cluster needed).

Expected quantity strings were printed by k8s.io/apimachinery v0.36.3's own
resource.ParseQuantity(...).String() and Quantity.Add; the storage-config JSON layout is the one
odh-model-controller odh-v3.0's test data holds (keys sorted, no spaces).
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testbed"))

import rhoai_sim as rs  # noqa: E402


# ---- quantities ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,printed", [
    ("2", "2"), ("1000", "1k"), ("4Gi", "4Gi"), ("8Gi", "8Gi"), ("1024Mi", "1Gi"), ("1025Mi", "1025Mi"),
    ("1.5Gi", "1536Mi"), ("0.5Gi", "512Mi"), ("0.5", "500m"), ("1000m", "1"), ("1500m", "1500m"),
    ("1e3", "1e3"), ("1.5e3", "1500"), ("05", "05"), ("+5", "+5"), ("0.1Ki", "102400m"), ("00", "0"),
    ("0.0000000001", "1n"), ("3.33333333333", "3333333334n"), ("200000m", "200"), ("1.G", "1.G"),
    ("12345678901234567890", "12345678901234567890"),
])
def test_quantity_prints_as_apimachinery(text: str, printed: str) -> None:
    assert str(rs.parse_quantity(text)) == printed


@pytest.mark.parametrize("text,error", [
    ("bogus", rs.QUANTITY_FORMAT_ERROR), ("1x", rs.QUANTITY_FORMAT_ERROR), ("", rs.QUANTITY_FORMAT_ERROR),
    ("1e", rs.QUANTITY_SUFFIX_ERROR),
])
def test_quantity_refuses_as_apimachinery(text: str, error: str) -> None:
    with pytest.raises(ValueError) as err:
        rs.parse_quantity(text)
    assert str(err.value) == error


def test_integer_counts_are_decimal_si() -> None:
    assert [rs.count_string(n) for n in (4, 1000, 0)] == ["4", "1k", "0"]


@pytest.mark.parametrize("parts,total", [
    (["48", "4", "96"], "148"), (["192Gi", "16Gi"], "208Gi"), ([], "0"), (["0", "192Gi"], "192Gi"),
    (["47500m", "500m"], "48"), (["1Gi", "1000Mi"], "2024Mi"), (["1024", "1Ki"], "2048"), (["1Ki", "1024"], "2Ki"),
])
def test_sum_keeps_the_first_format(parts: list[str], total: str) -> None:
    assert rs.sum_quantities(parts) == total


# ---- hardware profiles ---------------------------------------------------------------------------
def isvc(annotations: dict | None = None, model: dict | None = None, labels: dict | None = None) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": "team", "labels": dict(labels or {}),
                         "annotations": dict(annotations or {})},
            "spec": {"predictor": {"model": model if model is not None else {"modelFormat": {"name": "vLLM"}}}}}


GPU = {"identifier": "nvidia.com/gpu", "displayName": "GPU", "resourceType": "Accelerator",
       "minCount": 1, "defaultCount": 4, "maxCount": 4}
CPU = {"identifier": "cpu", "displayName": "CPU", "resourceType": "CPU", "minCount": 1, "defaultCount": "16000m"}
MEMORY = {"identifier": "memory", "displayName": "Memory", "minCount": "1Gi", "defaultCount": "64Gi",
          "maxCount": "131072Mi"}
QUEUE = {"type": "Queue", "kueue": {"localQueueName": "default"}}
TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule", "value": ""}
NODE = {"type": "Node", "node": {"nodeSelector": {"node.kubernetes.io/instance-type": "g6.12xlarge"},
                                 "tolerations": [TAINT]}}


class Profiles:
    """A fake profile store that records every lookup, so the namespace used is checked too."""

    def __init__(self, **profiles: dict) -> None:
        self.profiles, self.asked = profiles, []

    def __call__(self, namespace: str, name: str) -> dict:
        self.asked.append((namespace, name))
        if f"{namespace}/{name}" not in self.profiles:
            raise rs.NotFound(name)
        return {"spec": self.profiles[f"{namespace}/{name}"]}


PROFILE = {rs.HWP_NAME_ANNOTATION: "gpu-4", rs.HWP_NAMESPACE_ANNOTATION: "redhat-ods-applications"}


def test_queue_profile_sets_label_and_resources_but_no_node_scheduling() -> None:
    fetch = Profiles(**{"redhat-ods-applications/gpu-4": {"identifiers": [CPU, MEMORY, GPU], "scheduling": QUEUE}})
    verdict = rs.inject_hardware_profile(isvc(PROFILE), fetch)
    assert verdict.allowed and fetch.asked == [("redhat-ods-applications", "gpu-4")]
    out = verdict.patched
    assert out["metadata"]["labels"] == {rs.QUEUE_LABEL: "default"}
    assert out["spec"]["predictor"]["model"]["resources"] == {
        "requests": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"},
        "limits": {"memory": "128Gi", "nvidia.com/gpu": "4"}}  # no maxCount for cpu: no limit
    assert "tolerations" not in out["spec"]["predictor"] and "nodeSelector" not in out["spec"]["predictor"]


def test_resources_already_set_are_kept_and_limits_are_created_empty() -> None:
    model = {"modelFormat": {"name": "vLLM"}, "resources": {"requests": {"cpu": "2"}}}
    fetch = Profiles(**{"team/small": {"identifiers": [CPU]}})
    out = rs.inject_hardware_profile(isvc({rs.HWP_NAME_ANNOTATION: "small"}, model), fetch).patched
    assert out["spec"]["predictor"]["model"]["resources"] == {"requests": {"cpu": "2"}, "limits": {}}


def test_profile_namespace_defaults_to_the_object_namespace_and_is_recorded() -> None:
    fetch = Profiles(**{"team/gpu-4": {"identifiers": [GPU]}})
    out = rs.inject_hardware_profile(isvc({rs.HWP_NAME_ANNOTATION: "gpu-4"}), fetch).patched
    assert fetch.asked == [("team", "gpu-4")]
    assert out["metadata"]["annotations"][rs.HWP_NAMESPACE_ANNOTATION] == "team"


def test_node_profile_replaces_selector_and_tolerations() -> None:
    body = isvc(PROFILE)
    body["spec"]["predictor"]["tolerations"] = [{"key": "old", "operator": "Exists"}]
    fetch = Profiles(**{"redhat-ods-applications/gpu-4": {"scheduling": NODE}})
    predictor = rs.inject_hardware_profile(body, fetch).patched["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"node.kubernetes.io/instance-type": "g6.12xlarge"}
    assert predictor["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_queue_wins_over_node_scheduling() -> None:
    """Upstream returns after the queue label: a profile with both (refused by the CRD's rules) gets no node part."""
    body = isvc()
    rs.apply_hardware_profile(body, {"scheduling": dict(QUEUE, node=NODE["node"])})
    assert body["metadata"]["labels"] == {rs.QUEUE_LABEL: "default"} and "nodeSelector" not in body["spec"]["predictor"]


def test_missing_profile_is_refused_with_400() -> None:
    verdict = rs.inject_hardware_profile(isvc(PROFILE), Profiles())
    assert (verdict.allowed, verdict.code, verdict.message) == (
        False, 400, "hardware profile 'gpu-4' not found in namespace 'redhat-ods-applications'")


def test_other_lookup_failures_are_500_with_the_cause() -> None:
    def broken(namespace: str, name: str) -> dict:
        raise RuntimeError("connection refused")
    verdict = rs.inject_hardware_profile(isvc(PROFILE), broken)
    assert (verdict.allowed, verdict.code, verdict.message) == (
        False, 500, "failed to get hardware profile 'gpu-4' from namespace 'redhat-ods-applications': "
                    "connection refused")


def test_bad_count_is_refused_with_the_quantity_error() -> None:
    fetch = Profiles(**{"redhat-ods-applications/gpu-4": {"identifiers": [dict(GPU, defaultCount="four")]}})
    verdict = rs.inject_hardware_profile(isvc(PROFILE), fetch)
    assert (verdict.allowed, verdict.code) == (False, 500)
    assert verdict.message == ("failed to apply resource requirements: failed to apply resources to model: failed to "
                               f"convert resource quantity for nvidia.com/gpu: {rs.QUANTITY_FORMAT_ERROR}")


def test_without_annotation_or_configuration_nothing_changes() -> None:
    fetch = Profiles(**{"redhat-ods-applications/empty": {}})
    plain = rs.inject_hardware_profile(isvc(), fetch)
    empty = rs.inject_hardware_profile(isvc({rs.HWP_NAME_ANNOTATION: "empty",
                                             rs.HWP_NAMESPACE_ANNOTATION: "redhat-ods-applications"}), fetch)
    assert plain.allowed and plain.patched is None and fetch.asked == [("redhat-ods-applications", "empty")]
    assert empty.allowed and empty.patched is None


def test_review_checks_kind_deletion_and_operation_first() -> None:
    decided = []

    def decide(obj: dict) -> rs.Verdict:
        decided.append(obj["metadata"]["name"])
        return rs.denied("no")
    req = {"uid": "1", "kind": rs.ISVC_KIND, "operation": "CREATE", "object": isvc()}
    assert not rs.review_isvc(req, decide).allowed
    wrong = rs.review_isvc(dict(req, kind={"group": "apps", "version": "v1", "kind": "Deployment"}), decide)
    assert (wrong.allowed, wrong.code, wrong.message) == (False, 400, "unexpected kind: Deployment")
    assert rs.review_isvc(dict(req, operation="DELETE"), decide).allowed
    assert decided == ["m"]


# ---- the Kueue queue-label webhook ----------------------------------------------------------------
def kueue_check(labels: dict, ns_labels: dict, state: str | None) -> rs.Verdict:
    return rs.check_kueue_label(isvc(labels=labels), "team", lambda ns: ns_labels, lambda: state)


MANAGED = {rs.MANAGED_LABEL: "true"}


def test_queue_label_is_required_in_kueue_namespaces() -> None:
    missing = kueue_check({}, MANAGED, "Unmanaged")
    assert (missing.allowed, missing.code, missing.reason, missing.message) == (
        False, 403, "Forbidden", 'Kueue label validation failed: missing required label "kueue.x-k8s.io/queue-name"')
    empty = kueue_check({rs.QUEUE_LABEL: ""}, {rs.LEGACY_MANAGED_LABEL: "true"}, "Unmanaged")
    assert empty.message == 'Kueue label validation failed: label "kueue.x-k8s.io/queue-name" is set but empty'
    assert kueue_check({rs.QUEUE_LABEL: "default"}, MANAGED, "Unmanaged").allowed


@pytest.mark.parametrize("ns_labels,state", [({}, "Unmanaged"), (MANAGED, None), (MANAGED, "Removed"), (MANAGED, "")])
def test_queue_label_not_required_elsewhere(ns_labels: dict, state: str | None) -> None:
    assert kueue_check({}, ns_labels, state).allowed


def test_namespace_lookup_failure_is_500() -> None:
    def gone(name: str) -> dict:
        raise RuntimeError(f'namespaces "{name}" not found')
    verdict = rs.check_kueue_label(isvc(), "team", gone, lambda: "Unmanaged")
    assert (verdict.code, verdict.message) == (
        500, 'failed to check if namespace "team" is labeled for Kueue: namespaces "team" not found')


# ---- the testbed's deployment-mode mapping -------------------------------------------------------
def test_rawdeployment_becomes_standard_and_nothing_else_changes() -> None:
    body = isvc({rs.DEPLOYMENT_MODE: "RawDeployment"})
    verdict = rs.map_deployment_mode(body)
    assert rs.json_patch(body, verdict.patched) == [
        {"op": "replace", "path": "/metadata/annotations/serving.kserve.io~1deploymentMode", "value": "Standard"}]
    assert body["metadata"]["annotations"][rs.DEPLOYMENT_MODE] == "RawDeployment"  # the request is not mutated
    for other in ({rs.DEPLOYMENT_MODE: "Standard"}, {rs.DEPLOYMENT_MODE: "Serverless"}, {}):
        assert rs.map_deployment_mode(isvc(other)).patched is None


# ---- the operator's Kueue component -------------------------------------------------------------
def dsc(state: str = "Unmanaged", **names: str) -> dict:
    return {"metadata": {"name": "default-dsc"},
            "spec": {"components": {"kueue": {"managementState": state, **names}}}}


def namespace(name: str, labels: dict, phase: str = "Active") -> dict:
    return {"metadata": {"name": name, "labels": labels}, "status": {"phase": phase}}


def node(**alloc: str) -> dict:
    return {"status": {"allocatable": alloc}}


NAMESPACES = [namespace("team", MANAGED), namespace("legacy", {rs.LEGACY_MANAGED_LABEL: "true"}),
              namespace("other", {}), namespace("going", MANAGED, "Terminating")]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_local_queue_per_managed_namespace_points_at_the_dsc_cluster_queue() -> None:
    relabel, objects = rs.kueue_objects(dsc(defaultClusterQueueName="rhoai-main-queue"), NAMESPACES, [])
    lqs = by_kind(objects, "LocalQueue")
    assert [(q["metadata"]["namespace"], q["metadata"]["name"], q["spec"]["clusterQueue"]) for q in lqs] == [
        ("legacy", "default", "rhoai-main-queue"), ("team", "default", "rhoai-main-queue")]
    assert lqs[0]["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert lqs[0]["metadata"]["labels"] == {"platform.opendatahub.io/part-of": "kueue"}
    assert sorted(relabel) == ["going", "legacy", "team"]  # both labels get set on every managed namespace


def test_local_queue_name_follows_the_dsc() -> None:
    _, objects = rs.kueue_objects(dsc(defaultLocalQueueName="batch"), NAMESPACES[:1], [])
    assert [q["metadata"]["name"] for q in by_kind(objects, "LocalQueue")] == ["batch"]


def test_default_cluster_queue_is_sized_to_the_nodes() -> None:
    nodes = [node(cpu="48", memory="192Gi", **{"nvidia.com/gpu": "4"}), node(cpu="16", memory="64Gi"),
             node(cpu="16", memory="64Gi", **{"nvidia.com/gpu": "1"})]
    _, objects = rs.kueue_objects(dsc(), [], nodes)
    flavors = [f["metadata"]["name"] for f in by_kind(objects, "ResourceFlavor")]
    assert flavors == ["default-flavor", "nvidia-gpu-flavor"]
    (cq,) = by_kind(objects, "ClusterQueue")
    assert cq["metadata"]["name"] == "default"
    assert cq["spec"] == {"namespaceSelector": {"matchLabels": {rs.MANAGED_LABEL: "true"}}, "resourceGroups": [
        {"coveredResources": ["cpu", "memory"], "flavors": [{"name": "default-flavor", "resources": [
            {"name": "cpu", "nominalQuota": "80"}, {"name": "memory", "nominalQuota": "320Gi"}]}]},
        {"coveredResources": ["nvidia.com/gpu"], "flavors": [{"name": "nvidia-gpu-flavor", "resources": [
            {"name": "nvidia.com/gpu", "nominalQuota": "5"}]}]}]}


@pytest.mark.parametrize("state", ["Removed", "Managed", ""])
def test_only_unmanaged_creates_anything(state: str) -> None:
    assert rs.kueue_objects(dsc(state), NAMESPACES, [node(cpu="1")]) == ([], [])
    assert rs.kueue_objects(None, NAMESPACES, []) == ([], [])


def test_existing_objects_are_never_touched() -> None:
    _, objects = rs.kueue_objects(dsc(), [namespace("team", MANAGED), namespace("new", MANAGED)], [])
    existing = {("LocalQueue", "team", "default"), ("ClusterQueue", "", "default")}
    assert [rs.object_key(o) for o in rs.missing(objects, existing)] == [
        ("ResourceFlavor", "", "default-flavor"), ("LocalQueue", "new", "default")]


# ---- storage-config -------------------------------------------------------------------------------
def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def connection(name: str, endpoint: str, annotations: dict | None = None, **extra: str) -> dict:
    data = {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "s<&>k", "AWS_S3_ENDPOINT": endpoint,
            "AWS_S3_BUCKET": "models", "AWS_DEFAULT_REGION": "us-east-1", **extra}
    return {"metadata": {"name": name, "annotations": {"opendatahub.io/connection-type": "s3"}
                         if annotations is None else annotations,
                         "labels": {rs.ODH_MANAGED: "true", rs.ODH_DASHBOARD: "true"}},
            "data": {k: b64(v) for k, v in data.items()}}


def test_storage_config_entry_is_go_json() -> None:
    data = rs.storage_config_data([connection("minio", "http://minio.minio-storage.svc:9000")], "")
    assert data == {"minio": '{"access_key_id":"ak","bucket":"models","endpoint_url":"http://minio.minio-storage.svc'
                             ':9000","region":"us-east-1","secret_access_key":"s\\u003c\\u0026\\u003ek","type":"s3"}'}
    assert json.loads(data["minio"])["secret_access_key"] == "s<&>k"


def test_ca_bundle_only_for_https_and_type_only_from_connection_type() -> None:
    conns = [connection("secure", "https://s3.example:443"), connection("plain", "http://s3.example:80"),
             connection("ref-only", "https://s3.example", {"opendatahub.io/connection-type-ref": "s3"})]
    with_ca = {k: json.loads(v) for k, v in rs.storage_config_data(conns, "-----BEGIN CERTIFICATE-----").items()}
    assert with_ca["secure"]["cabundle_configmap"] == "odh-kserve-custom-ca-bundle"
    assert "cabundle_configmap" not in with_ca["plain"]
    assert with_ca["ref-only"]["type"] == "" and "cabundle_configmap" in with_ca["ref-only"]
    without = json.loads(rs.storage_config_data(conns[:1], "")["secure"])
    assert "cabundle_configmap" not in without


def storage_config(data: dict, labels: dict | None = None) -> dict:
    return {"metadata": {"name": "storage-config", "labels": {rs.ODH_MANAGED: "true"} if labels is None else labels},
            "data": data}


def test_storage_config_create_update_delete() -> None:
    conns = [connection("minio", "http://minio:9000")]
    action, desired = rs.storage_config_change(conns, "", None)
    assert action == "create"
    assert desired["metadata"] == {"name": "storage-config", "labels": {rs.ODH_MANAGED: "true"}}
    assert set(desired["data"]) == {"minio"}
    assert rs.storage_config_change(conns, "", storage_config(desired["data"]))[0] == "none"
    assert rs.storage_config_change(conns, "", storage_config(desired["data"], {"mine": "x"}))[0] == "update"
    assert rs.storage_config_change(conns + [connection("b", "http://b")], "", storage_config(desired["data"]))[0] \
        == "update"
    assert rs.storage_config_change([], "", storage_config(desired["data"])) == ("delete", None)
    assert rs.storage_config_change([], "", storage_config(desired["data"], {})) == ("none", None)
    assert rs.storage_config_change([], "", None) == ("none", None)


def test_event_filter_is_the_managed_label() -> None:
    assert rs.triggers_storage_config(connection("a", "http://a"))
    assert rs.triggers_storage_config(storage_config({}))
    assert not rs.triggers_storage_config(storage_config({}, {}))
    assert not rs.triggers_storage_config({"metadata": {"name": "ray-tls", "labels": {rs.ODH_MANAGED: "true"}}})


# ---- trusted CA chain ----------------------------------------------------------------------------
def ca_namespace(name: str, annotations: dict | None = None, phase: str = "Active") -> dict:
    return {"metadata": {"name": name, "annotations": annotations or {}}, "status": {"phase": phase}}


def dsci(state: str | None, custom: str = "") -> dict:
    trust = None if state is None else {"managementState": state, "customCABundle": custom}
    return {"metadata": {"name": "default-dsci"}, "spec": {} if trust is None else {"trustedCABundle": trust}}


def test_trusted_ca_bundle_holds_the_custom_bundle_trimmed_with_one_newline() -> None:
    action, desired = rs.trusted_ca_bundle_action(dsci("Managed", "\n  PEM-A\nPEM-B  \n\n"), ca_namespace("models"))
    assert action == "apply"
    assert desired["metadata"] == {"name": "odh-trusted-ca-bundle", "namespace": "models", "labels": {
        "app.kubernetes.io/part-of": "opendatahub-operator", "config.openshift.io/inject-trusted-cabundle": "true"}}
    assert desired["data"] == {"odh-ca-bundle.crt": "PEM-A\nPEM-B\n"}
    assert rs.trusted_ca_bundle_action(dsci("Managed"), ca_namespace("models"))[1]["data"] == {"odh-ca-bundle.crt": "\n"}


@pytest.mark.parametrize("name", ["openshift-config", "kube-system", "default", "openshift"])
def test_reserved_namespaces_are_left_alone(name: str) -> None:
    assert rs.trusted_ca_bundle_action(dsci("Managed", "PEM"), ca_namespace(name)) == ("none", None)


@pytest.mark.parametrize("the_dsci,ns,action", [
    (dsci("Removed", "PEM"), ca_namespace("m"), "delete"),
    (dsci(None), ca_namespace("m"), "delete"),
    (dsci("Managed", "PEM"), ca_namespace("m", {"security.opendatahub.io/inject-trusted-ca-bundle": "false"}), "delete"),
    (dsci("Managed", "PEM"), ca_namespace("m", {"security.opendatahub.io/inject-trusted-ca-bundle": "F"}), "delete"),
    # strconv.ParseBool fails on anything else, and the operator then injects
    (dsci("Managed", "PEM"), ca_namespace("m", {"security.opendatahub.io/inject-trusted-ca-bundle": "no"}), "apply"),
    (dsci("Managed", "PEM"), ca_namespace("m", {"security.opendatahub.io/inject-trusted-ca-bundle": "true"}), "apply"),
    (dsci("Unmanaged", "PEM"), ca_namespace("m"), "none"),
    (None, ca_namespace("m"), "none"),
    (dsci("Managed", "PEM"), ca_namespace("m", phase="Terminating"), "none"),
])
def test_trusted_ca_bundle_follows_the_dsci_and_the_namespace(the_dsci: dict | None, ns: dict, action: str) -> None:
    assert rs.trusted_ca_bundle_action(the_dsci, ns)[0] == action


def configmap(data: dict) -> dict:
    return {"metadata": {}, "data": data}


def test_kserve_ca_bundle_joins_every_source_trimmed() -> None:
    sources = {"odh-trusted-ca-bundle": configmap({"ca-bundle.crt": " CLUSTER \n", "odh-ca-bundle.crt": "\nCUSTOM\n"}),
               "openshift-service-ca.crt": configmap({"service-ca.crt": "SERVICE\n"}),
               "unrelated": configmap({"ca.crt": "OTHER"})}
    assert rs.kserve_ca_bundle(sources) == "CLUSTER\n\nCUSTOM\n\nSERVICE"
    assert rs.kserve_ca_bundle({"odh-trusted-ca-bundle": configmap({"odh-ca-bundle.crt": "\n"})}) == ""
    assert rs.kserve_ca_bundle({"openshift-service-ca.crt": configmap({"service-ca.crt": "S"})}) == "S"


def test_kserve_ca_bundle_create_update_delete() -> None:
    existing = configmap({"cabundle.crt": "A"})
    assert rs.kserve_ca_bundle_change("A", None) == "create"
    assert rs.kserve_ca_bundle_change("A", existing) == "none"
    assert rs.kserve_ca_bundle_change("A\n\nB", existing) == "update"
    assert rs.kserve_ca_bundle_change("", existing) == "delete"
    assert rs.kserve_ca_bundle_change("", None) == "none"


def test_ca_event_filter_is_the_three_names() -> None:
    for name in ("odh-trusted-ca-bundle", "odh-kserve-custom-ca-bundle", "openshift-service-ca.crt"):
        assert rs.triggers_ca_bundle({"metadata": {"name": name, "namespace": "m"}})
    assert not rs.triggers_ca_bundle({"metadata": {"name": "kube-root-ca.crt", "namespace": "m"}})


# ---- admission plumbing -------------------------------------------------------------------------
def test_json_patch_turns_before_into_after() -> None:
    before = {"metadata": {"labels": {"a": "1", "b/c": "2"}}, "spec": {"x": [1]}}
    after = {"metadata": {"labels": {"a": "1", "d": "4"}, "annotations": {"e": "5"}}, "spec": {"x": [1, 2]}}
    assert rs.json_patch(before, after) == [
        {"op": "remove", "path": "/metadata/labels/b~1c"},
        {"op": "add", "path": "/metadata/labels/d", "value": "4"},
        {"op": "add", "path": "/metadata/annotations", "value": {"e": "5"}},
        {"op": "replace", "path": "/spec/x", "value": [1, 2]}]


def test_admission_response_shapes() -> None:
    request = {"uid": "u1", "object": isvc()}
    denied = rs.admission_response(request, rs.denied("nope"))
    assert denied == {"uid": "u1", "allowed": False, "status": {"code": 403, "reason": "Forbidden", "message": "nope"}}
    patched_obj = isvc(labels={"x": "y"})
    patched = rs.admission_response(request, rs.Verdict(True, patched=patched_obj))
    assert patched["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(patched["patch"])) == [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]
    assert "patch" not in rs.admission_response(request, rs.Verdict(True, patched=isvc()))
