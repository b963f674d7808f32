"""SIMULATED: the Red Hat OpenShift AI 3.0 layer above Kubernetes, Kueue and KServe.

None of this is Red Hat's code. Each behaviour is re-written from the upstream source named
beside it (read with git, facts only, nothing copied), so the testbed meets what a real RHOAI 3.0
cluster does to the demo, failures and messages included:

- opendatahub-operator v3.0.0, the Kueue component with the DataScienceCluster's
  `kueue.managementState: Unmanaged` (internal/controller/components/kueue/): ResourceFlavor
  `default-flavor` (and one per GPU vendor present), ClusterQueue `defaultClusterQueueName` sized
  to the nodes of that moment, LocalQueue `defaultLocalQueueName` in every managed namespace;
  each created when missing and never updated.
- opendatahub-operator v3.0.0 webhooks on InferenceServices: hardware profile injection
  (internal/webhook/hardwareprofile/mutating.go) and the Kueue queue-label check
  (internal/webhook/kueue/validating.go); the DSCInitialization's `default-profile`.
- odh-model-controller odh-v3.0: data connections merged into `storage-config`
  (internal/controller/core/secret_controller.go); `odh-kserve-custom-ca-bundle` made from the
  namespace's `odh-trusted-ca-bundle` and `openshift-service-ca.crt`, `storage-config` deleted to be
  made again when it changes (internal/controller/core/configmap_controller.go).
- opendatahub-operator v3.0.0: the DSCInitialization (`default-dsci`, trustedCABundle Managed) and
  `odh-trusted-ca-bundle` in every active, non-reserved namespace that has not opted out, holding
  `trustedCABundle.customCABundle` as `odh-ca-bundle.crt`
  (internal/controller/services/certconfigmapgenerator/).
- OpenShift, not RHOAI: ConfigMap `openshift-service-ca.crt` (`service-ca.crt`: the service CA) in
  every namespace. The cluster network operator's injection of the cluster trust into
  `odh-trusted-ca-bundle`'s `ca-bundle.crt` is NOT simulated: the testbed has no cluster proxy CA.
- A testbed deviation, NOT an RHOAI behaviour: `serving.kserve.io/deploymentMode: RawDeployment`
  becomes `Standard` on the way in, because the testbed runs upstream KServe 0.16, which renamed
  the mode (testbed/README.md says why).

Run: .venv/bin/python testbed/rhoai_sim.py --kubeconfig K --port P --cert C --key K
"""
from __future__ import annotations

import argparse
import base64
import copy
import http.server
import json
import logging
import math
import signal
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

Obj = dict[str, Any]
log = logging.getLogger("rhoai_sim")

# opendatahub-operator v3.0.0: pkg/cluster/const.go, pkg/cluster/gvk/gvk.go, pkg/metadata/.
DSC_GROUP, DSC_VERSION = "datasciencecluster.opendatahub.io", "v2"  # v2 is stored, v1 also served
HWP_GROUP, HWP_VERSION = "infrastructure.opendatahub.io", "v1"  # v1 is stored, v1alpha1 deprecated
KUEUE_GROUP = "kueue.x-k8s.io"
OPERATOR_KUEUE_VERSION = "v1beta1"  # the version the operator writes LocalQueues and ClusterQueues in
MANAGED_LABEL, LEGACY_MANAGED_LABEL = "kueue.openshift.io/managed", "kueue-managed"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
HWP_NAME_ANNOTATION = "opendatahub.io/hardware-profile-name"
HWP_NAMESPACE_ANNOTATION = "opendatahub.io/hardware-profile-namespace"
APPLICATIONS_NAMESPACE = "redhat-ods-applications"  # RHOAI's DSCInitialization default
DEFAULT_DSC = "default-dsc"
KUEUE_INSTANCE = "default-kueue"  # the Kueue component CR the DSC controller derives
DEFAULT_FLAVOR = "default-flavor"
GPU_FLAVORS = {"nvidia.com/gpu": "nvidia-gpu-flavor", "amd.com/gpu": "amd-gpu-flavor"}
# What the operator's deploy action stamps on what it creates (pkg/controller/actions/deploy).
OPERATOR_LABELS = {"platform.opendatahub.io/part-of": "kueue"}
OPERATOR_ANNOTATIONS = {"platform.opendatahub.io/instance.name": KUEUE_INSTANCE,
                        "platform.opendatahub.io/type": "OpenShift AI Self-Managed",
                        "platform.opendatahub.io/version": "3.0.0"}
# odh-model-controller odh-v3.0: internal/controller/constants/constants.go.
STORAGE_CONFIG = "storage-config"
CA_BUNDLE_CONFIGMAP, CA_BUNDLE_KEY = "odh-kserve-custom-ca-bundle", "cabundle.crt"
ODH_MANAGED, ODH_DASHBOARD = "opendatahub.io/managed", "opendatahub.io/dashboard"
CONNECTION_TYPE = "opendatahub.io/connection-type"
RAY_SECRETS = ("ray-ca-tls", "ray-tls")  # skipped by the controller's event filter
# odh-model-controller odh-v3.0 constants.CABundleConfigMaps(): where cabundle.crt is gathered from,
# in this order here (a Go map there: the real order varies between reconciles).
TRUSTED_CA_CONFIGMAP, SERVICE_CA_CONFIGMAP = "odh-trusted-ca-bundle", "openshift-service-ca.crt"
CA_SOURCES = ((TRUSTED_CA_CONFIGMAP, ("ca-bundle.crt", "odh-ca-bundle.crt")), (SERVICE_CA_CONFIGMAP, ("service-ca.crt",)))
# opendatahub-operator v3.0.0: api/dscinitialization/v2, certconfigmapgenerator_support.go,
# pkg/metadata/annotations/annotations.go, pkg/upgrade/upgrade.go (CreateDefaultDSCI).
DSCI_GROUP, DSCI_VERSION = "dscinitialization.opendatahub.io", "v2"  # v2 is stored, v1 also served
DEFAULT_DSCI = "default-dsci"
CUSTOM_CA_KEY = "odh-ca-bundle.crt"
CA_OPT_OUT_ANNOTATION = "security.opendatahub.io/inject-trusted-ca-bundle"
TRUSTED_CA_LABELS = {"app.kubernetes.io/part-of": "opendatahub-operator",
                     "config.openshift.io/inject-trusted-cabundle": "true"}
# KServe
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
ISVC_KIND = {"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"}

# Webhook paths (the first two as the operator serves them) and names (in the apiserver's messages).
HWP_PATH, KUEUE_LABEL_PATH, MODE_PATH = "/mutate-hardware-profile", "/validate-kueue", "/mutate-deployment-mode"
HWP_WEBHOOK = "hardwareprofile-isvc-injector.opendatahub.io"
KUEUE_LABEL_WEBHOOK = "kserve-isvc-kueuelabels-validator.opendatahub.io"
MODE_WEBHOOK = "rawdeployment-to-standard.testbed.rhoai-gpuaas.local"

WATCH_SECONDS = 60
REQUEST_TIMEOUT = (5, WATCH_SECONDS + 15)
RESYNC_SECONDS = 30.0


# ---- resource.Quantity, as k8s.io/apimachinery v0.36.3 pkg/api/resource prints it ------------------
# The hardware profile webhook writes `quantity.String()` of each count; this reproduces
# ParseQuantity (suffixes, rounding up to 1n, keeping input that is already canonical) and
# CanonicalizeBytes, so requests read as they would on a real cluster ("1000m" -> "1").
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {e: s for s, e in _DECIMAL.items()}
_BINARY_BY_EXP = {e: s for s, e in _BINARY.items()}
_DIGITS = "0123456789"
QUANTITY_FORMAT_ERROR = ("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
_INT64_MAX = 2 ** 63 - 1


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    fmt: str  # DecimalSI, BinarySI or DecimalExponent
    kept: str | None = None  # the input, when apimachinery keeps it as the string form

    def __str__(self) -> str:
        return self.kept if self.kept is not None else _canonical(self.value, self.fmt)


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Sign, integer digits (leading zeros dropped), fraction digits, suffix; as parseQuantityString."""
    pos, end, positive = 0, len(text), True
    if text[0] in "+-":
        positive, pos = text[0] == "+", 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    start = pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    return positive, num, denom, text[start:]


def _suffix(suffix: str) -> tuple[int, int, str]:
    if suffix in _DECIMAL:
        return 10, _DECIMAL[suffix], "DecimalSI"
    if suffix in _BINARY:
        return 2, _BINARY[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:]), "DecimalExponent"
        except ValueError:
            pass
    raise ValueError(QUANTITY_SUFFIX_ERROR)


def parse_quantity(text: str) -> Quantity:
    """resource.ParseQuantity: raises ValueError with apimachinery's message."""
    if not text:
        raise ValueError(QUANTITY_FORMAT_ERROR)
    if text == "0":
        return Quantity(Fraction(0), "DecimalSI", "0")
    positive, num, denom, suffix = _scan(text)
    base, exponent, fmt = _suffix(suffix)
    # The fast path: small exact values keep the input as their string form when it looks canonical.
    mantissa, scale, precision = 1, exponent, 18 - (len(num) + len(denom))
    if fmt == "BinarySI":
        scale = 0
        if exponent >= 0 and not denom:
            mantissa, precision = 1 << exponent, 15 - len(num) - int(exponent * 3 / 10) - 1
        else:
            precision = -1
    if precision >= 0 and scale - len(denom) >= -9:
        scale -= len(denom)
        shifted = num + denom
        result = int(shifted) * mantissa
        if result <= _INT64_MAX:
            if fmt == "BinarySI":
                keep = exponent % 10 == 0 and int(shifted) & 7 != 0
            else:
                keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
            value = Fraction(result if positive else -result) * Fraction(10) ** scale
            return Quantity(value, fmt, text if keep else None)
    amount = Fraction(int(num + denom), 10 ** len(denom))
    amount *= Fraction(10) ** exponent if base == 10 else 2 ** exponent
    if amount:
        amount = Fraction(math.ceil(amount * 10 ** 9), 10 ** 9)  # rounded up to 1n
    if fmt == "BinarySI":
        amount = min(amount, Fraction(_INT64_MAX))
        if 0 < amount < 1:
            fmt = "DecimalSI"
    return Quantity(amount if positive else -amount, fmt)


def _canonical(value: Fraction, fmt: str) -> str:
    if value == 0:
        return "0"
    sign, value = ("-" if value < 0 else ""), abs(value)
    if fmt == "BinarySI":
        if value < 1024 or value.denominator != 1:
            fmt = "DecimalSI"
        else:
            mantissa, exp = value.numerator, 0
            while mantissa % 1024 == 0:
                mantissa, exp = mantissa // 1024, exp + 10
            return f"{sign}{mantissa}{_BINARY_BY_EXP.get(exp, '')}"
    exp = 0
    while value.denominator != 1:
        value, exp = value * 10, exp - 1
    mantissa = value.numerator
    while mantissa % 10 == 0:
        mantissa, exp = mantissa // 10, exp + 1
    shift = exp % 3  # down to a multiple of 3
    mantissa, exp = mantissa * 10 ** shift, exp - shift
    if fmt == "DecimalSI":
        suffix = _DECIMAL_BY_EXP.get(exp, "")
    else:
        suffix = f"e{exp}" if exp else ""
    return f"{sign}{mantissa}{suffix}"


def count_string(count: int | str) -> str:
    """An IntOrString count as a quantity string: integers are DecimalSI (resource.NewQuantity)."""
    if isinstance(count, int):
        return _canonical(Fraction(count), "DecimalSI")
    return str(parse_quantity(count))


def sum_quantities(texts: list[str]) -> str:
    """Quantity.Add over `texts`: the sum keeps the format of the first non-zero addend."""
    total, fmt = Fraction(0), "DecimalSI"
    for text in texts:
        q = parse_quantity(text)
        if total == 0:
            fmt = q.fmt
        total += q.value
    return _canonical(total, fmt)


# ---- admission decisions ------------------------------------------------------------------------
@dataclass
class Verdict:
    """An admission answer, shaped like controller-runtime's Allowed/Denied/Errored/Patch responses."""
    allowed: bool
    code: int = 200
    message: str = ""
    reason: str = ""
    patched: Obj | None = None


def denied(message: str) -> Verdict:
    return Verdict(False, 403, message, "Forbidden")


def errored(code: int, message: str) -> Verdict:
    return Verdict(False, code, message)


class NotFound(Exception):
    """The object looked up does not exist."""


def inject_hardware_profile(obj: Obj, fetch: Callable[[str, str], Obj]) -> Verdict:
    """The operator's hardware profile webhook on one InferenceService CREATE or UPDATE.

    opendatahub-operator v3.0.0 internal/webhook/hardwareprofile/mutating.go,
    performHardwareProfileInjection: no name annotation, nothing to do; the profile is read from
    the namespace annotation, else the object's namespace; a missing profile refuses with 400.
    `fetch(namespace, name)` returns the profile or raises NotFound.
    """
    md = obj.get("metadata") or {}
    annotations = md.get("annotations") or {}
    name = annotations.get(HWP_NAME_ANNOTATION, "")
    if not name:
        return Verdict(True, message="No hardware profile annotation found")
    namespace = annotations.get(HWP_NAMESPACE_ANNOTATION) or md.get("namespace", "")
    if not namespace:
        return errored(400, "unable to determine hardware profile namespace")
    try:
        profile = fetch(namespace, name)
    except NotFound:
        return errored(400, f"hardware profile '{name}' not found in namespace '{namespace}'")
    except Exception as err:  # any other API failure is a 500 with the cause, as upstream
        return errored(500, f"failed to get hardware profile '{name}' from namespace '{namespace}': {err}")
    spec = profile.get("spec") or {}
    if not spec.get("identifiers") and spec.get("scheduling") is None:
        return Verdict(True, message="HardwareProfile has no configuration to apply")
    out = copy.deepcopy(obj)
    if not annotations.get(HWP_NAMESPACE_ANNOTATION):
        out["metadata"].setdefault("annotations", {})[HWP_NAMESPACE_ANNOTATION] = namespace
    try:
        apply_hardware_profile(out, spec)
    except ValueError as err:
        return errored(500, str(err))
    return Verdict(True, patched=out)


def apply_hardware_profile(isvc: Obj, spec: Obj) -> None:
    """Apply a profile's spec to an InferenceService in place (applyHardwareProfileToWorkload).

    Identifiers go to `spec.predictor.model.resources` only (not `containers`): requests get
    `defaultCount`, limits get `maxCount` when it is set, and a resource already present is kept.
    A Queue profile then sets the queue label and stops there; a Node profile replaces
    `nodeSelector` and `tolerations` of the predictor.
    """
    identifiers = spec.get("identifiers") or []
    model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model")
    if identifiers and isinstance(model, dict):
        try:
            _apply_identifiers(model, identifiers)
        except ValueError as err:
            raise ValueError(f"failed to apply resource requirements: failed to apply resources to model: {err}") \
                from None
    scheduling = spec.get("scheduling")
    if not scheduling:
        return
    queue = (scheduling.get("kueue") or {}).get("localQueueName", "")
    if queue:
        isvc["metadata"].setdefault("labels", {})[QUEUE_LABEL] = queue
        return
    node = scheduling.get("node")
    if node is None:
        return
    predictor = isvc.setdefault("spec", {}).setdefault("predictor", {})
    if node.get("nodeSelector"):
        predictor["nodeSelector"] = dict(node["nodeSelector"])
    if node.get("tolerations"):
        # corev1.Toleration re-encoded: empty strings and nulls are omitted
        predictor["tolerations"] = [{k: v for k, v in t.items() if v not in ("", None)} for t in node["tolerations"]]


def _apply_identifiers(container: Obj, identifiers: list[Obj]) -> None:
    resources = container.setdefault("resources", {})
    for key, field in (("requests", "defaultCount"), ("limits", "maxCount")):
        target = resources.get(key)
        if not isinstance(target, dict):
            target = resources[key] = {}
        for ident in identifiers:
            rid = ident.get("identifier", "")
            if rid in target or ident.get(field) is None:
                continue
            try:
                target[rid] = count_string(ident[field])
            except ValueError as err:
                raise ValueError(f"failed to convert resource quantity for {rid}: {err}") from None


def check_kueue_label(obj: Obj, namespace: str, namespace_labels: Callable[[str], dict[str, str]],
                      dsc_kueue_state: Callable[[], str | None]) -> Verdict:
    """The operator's validating webhook: queue label required on InferenceServices in Kueue namespaces.

    opendatahub-operator v3.0.0 internal/webhook/kueue/validating.go, performLabelValidation:
    namespace labelled `kueue.openshift.io/managed` or `kueue-managed`, one DataScienceCluster
    whose status says Kueue is Managed or Unmanaged, and no (or an empty) queue label: denied.
    `dsc_kueue_state()` returns None when there is no DataScienceCluster.
    """
    try:
        labels = namespace_labels(namespace)
    except Exception as err:
        return errored(500, f'failed to check if namespace "{namespace}" is labeled for Kueue: {err}')
    if labels.get(MANAGED_LABEL) != "true" and labels.get(LEGACY_MANAGED_LABEL) != "true":
        return Verdict(True, message=f'Namespace "{namespace}" is not labeled for Kueue ("{MANAGED_LABEL}"), '
                                     "skipping Kueue label validation")
    try:
        state = dsc_kueue_state()
    except Exception as err:
        return errored(500, f"failed to check if Kueue is enabled: {err}")
    if state is None:
        return Verdict(True, message="No DataScienceCluster found, skipping Kueue label validation")
    if state not in ("Managed", "Unmanaged"):
        return Verdict(True, message="Kueue is not enabled in DSC, skipping Kueue label validation")
    queue = ((obj.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
    if queue is None:
        return denied(f'Kueue label validation failed: missing required label "{QUEUE_LABEL}"')
    if queue == "":
        return denied(f'Kueue label validation failed: label "{QUEUE_LABEL}" is set but empty')
    return Verdict(True, message=f'Kueue label validation passed for "InferenceService" in namespace "{namespace}"')


def map_deployment_mode(obj: Obj) -> Verdict:
    """TESTBED DEVIATION (not RHOAI): `RawDeployment` -> `Standard`, upstream KServe 0.16's name.

    RHOAI 3.0's KServe fork (opendatahub-io/kserve odh-v3.0, pkg/constants/constants.go) calls raw
    mode `RawDeployment`; upstream 0.16 renamed it `Standard`, and its validating webhook refuses
    `deploymentStrategy` and any update that keeps `RawDeployment`. Mapping it on the way in lets
    the inventories write what RHOAI users write.
    """
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DEPLOYMENT_MODE) != "RawDeployment":
        return Verdict(True)
    out = copy.deepcopy(obj)
    out["metadata"]["annotations"][DEPLOYMENT_MODE] = "Standard"
    return Verdict(True, patched=out)


# ---- the operator's Kueue component -------------------------------------------------------------
def kueue_settings(dsc: Obj | None) -> tuple[str, str, str]:
    """(managementState, ClusterQueue name, LocalQueue name) of the DSC; names default to `default`."""
    kueue = (((dsc or {}).get("spec") or {}).get("components") or {}).get("kueue") or {}
    return (kueue.get("managementState") or "Removed", kueue.get("defaultClusterQueueName") or "default",
            kueue.get("defaultLocalQueueName") or "default")


def is_managed_namespace(ns: Obj) -> bool:
    labels = ns["metadata"].get("labels") or {}
    return labels.get(MANAGED_LABEL) == "true" or labels.get(LEGACY_MANAGED_LABEL) == "true"


def _operator_meta(name: str, namespace: str | None = None) -> Obj:
    md: Obj = {"name": name, "labels": dict(OPERATOR_LABELS), "annotations": dict(OPERATOR_ANNOTATIONS)}
    if namespace:
        md["namespace"] = namespace
    return md


def kueue_objects(dsc: Obj | None, namespaces: list[Obj], nodes: list[Obj]) -> tuple[list[str], list[Obj]]:
    """What the operator's Kueue reconcile wants: (namespaces missing a managed label, objects).

    opendatahub-operator v3.0.0 internal/controller/components/kueue/kueue_controller_actions.go
    (manageDefaultKueueResourcesAction) and kueue_support.go. Only with `Unmanaged`: `Removed`
    creates nothing and `Managed` stops the reconcile ("not supported"). The objects carry
    `opendatahub.io/managed: "false"` in the operator, so its deploy action creates them when
    missing and never patches them: that is the caller's part (`missing`).
    """
    state, cq_name, lq_name = kueue_settings(dsc)
    if state != "Unmanaged":
        return [], []
    cpu, memory, gpus = [], [], {}
    for node in nodes:
        alloc = (node.get("status") or {}).get("allocatable") or {}
        cpu.append(alloc.get("cpu", "0"))
        memory.append(alloc.get("memory", "0"))
        for resource in GPU_FLAVORS:
            if resource in alloc:
                gpus.setdefault(resource, []).append(alloc[resource])
    groups = [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": DEFAULT_FLAVOR, "resources": [
        {"name": "cpu", "nominalQuota": sum_quantities(cpu)},
        {"name": "memory", "nominalQuota": sum_quantities(memory)}]}]}]
    for resource in sorted(gpus):
        groups.append({"coveredResources": [resource], "flavors": [{"name": GPU_FLAVORS[resource], "resources": [
            {"name": resource, "nominalQuota": sum_quantities(gpus[resource])}]}]})
    api = f"{KUEUE_GROUP}/{OPERATOR_KUEUE_VERSION}"
    objects: list[Obj] = [{"apiVersion": api, "kind": "ResourceFlavor", "metadata": _operator_meta(name), "spec": {}}
                          for name in [DEFAULT_FLAVOR] + [GPU_FLAVORS[r] for r in sorted(gpus)]]
    objects.append({"apiVersion": api, "kind": "ClusterQueue", "metadata": _operator_meta(cq_name),
                    "spec": {"namespaceSelector": {"matchLabels": {MANAGED_LABEL: "true"}},
                             "resourceGroups": groups}})
    managed = sorted(ns["metadata"]["name"] for ns in namespaces
                     if is_managed_namespace(ns) and (ns.get("status") or {}).get("phase") != "Terminating")
    objects += [{"apiVersion": api, "kind": "LocalQueue", "metadata": _operator_meta(lq_name, ns),
                 "spec": {"clusterQueue": cq_name}} for ns in managed]
    relabel = [ns["metadata"]["name"] for ns in namespaces if is_managed_namespace(ns)
               and not all((ns["metadata"].get("labels") or {}).get(k) == "true"
                           for k in (MANAGED_LABEL, LEGACY_MANAGED_LABEL))]
    return relabel, objects


def object_key(obj: Obj) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def missing(wanted: list[Obj], existing: set[tuple[str, str, str]]) -> list[Obj]:
    """Create-only: what is absent is created, what exists is left exactly as it is."""
    return [obj for obj in wanted if object_key(obj) not in existing]


# ---- odh-model-controller: data connections -> storage-config -----------------------------------
def go_json(entry: dict[str, str]) -> str:
    """encoding/json's Marshal of a map[string]string: sorted keys, no spaces, HTML-safe escapes."""
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _secret_value(secret: Obj, key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    return base64.b64decode(raw).decode("utf-8", errors="replace") if raw else ""


def storage_config_data(connections: list[Obj], ca_bundle: str) -> dict[str, str]:
    """One JSON entry per data connection, keyed by its Secret's name (newStorageSecret).

    Every Secret of the namespace labelled managed and dashboard counts, whatever its type
    annotation; `type` comes from `opendatahub.io/connection-type` only (not `-type-ref`);
    `cabundle_configmap` is added for https endpoints when the namespace's
    `odh-kserve-custom-ca-bundle` ConfigMap has a `cabundle.crt`.
    """
    out = {}
    for secret in connections:
        entry = {"type": (secret["metadata"].get("annotations") or {}).get(CONNECTION_TYPE, ""),
                 "access_key_id": _secret_value(secret, "AWS_ACCESS_KEY_ID"),
                 "secret_access_key": _secret_value(secret, "AWS_SECRET_ACCESS_KEY"),
                 "endpoint_url": _secret_value(secret, "AWS_S3_ENDPOINT"),
                 "bucket": _secret_value(secret, "AWS_S3_BUCKET"),
                 "region": _secret_value(secret, "AWS_DEFAULT_REGION")}
        if ca_bundle and entry["endpoint_url"].startswith("https://"):
            entry["cabundle_configmap"] = CA_BUNDLE_CONFIGMAP
        out[secret["metadata"]["name"]] = go_json(entry)
    return out


def storage_config_change(connections: list[Obj], ca_bundle: str, current: Obj | None) -> tuple[str, Obj | None]:
    """("create" | "update" | "delete" | "none", desired Secret) for one namespace (reconcileSecret).

    No connection left: delete `storage-config` if it carries `opendatahub.io/managed: "true"`,
    else leave it. Otherwise its data and labels are made exactly the desired ones.
    """
    if not connections:
        labels = ((current or {}).get("metadata") or {}).get("labels") or {}
        return ("delete", None) if current and labels.get(ODH_MANAGED) == "true" else ("none", None)
    data = {k: base64.b64encode(v.encode()).decode() for k, v in storage_config_data(connections, ca_bundle).items()}
    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": STORAGE_CONFIG,
                                                                  "labels": {ODH_MANAGED: "true"}}, "data": data}
    if current is None:
        return "create", desired
    same_data = {k: base64.b64decode(v) for k, v in (current.get("data") or {}).items()} == \
        {k: base64.b64decode(v) for k, v in data.items()}
    if same_data and (current["metadata"].get("labels") or {}) == desired["metadata"]["labels"]:
        return "none", desired
    return "update", desired


# ---- the trusted CA chain: DSCI -> odh-trusted-ca-bundle -> odh-kserve-custom-ca-bundle ------------
def is_reserved_namespace(name: str) -> bool:
    """cluster.IsReservedNamespace (opendatahub-operator v3.0.0 pkg/cluster/cluster_config.go)."""
    return name.startswith(("openshift-", "kube-")) or name in ("default", "openshift")


def opted_out(ns: Obj) -> bool:
    """ShouldInjectTrustedCABundle negated: only an annotation that parses as false opts out."""
    value = ((ns.get("metadata") or {}).get("annotations") or {}).get(CA_OPT_OUT_ANNOTATION)
    return value in ("0", "f", "F", "false", "False", "FALSE")  # strconv.ParseBool's false; anything else injects


def trusted_ca_bundle_action(dsci: Obj | None, ns: Obj) -> tuple[str, Obj | None]:
    """What the operator's CertConfigmapGenerator does to one namespace's `odh-trusted-ca-bundle`:
    ("apply", desired) | ("delete", None) | ("none", None) (Reconcile and CreateOdhTrustedCABundleConfigMap)."""
    name = ns["metadata"]["name"]
    if (ns.get("status") or {}).get("phase", "Active") != "Active" or is_reserved_namespace(name) or dsci is None:
        return "none", None
    trust = (dsci.get("spec") or {}).get("trustedCABundle")
    if trust is None or opted_out(ns) or trust.get("managementState") == "Removed":
        return "delete", None
    if trust.get("managementState") == "Unmanaged":
        return "none", None
    return "apply", {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": TRUSTED_CA_CONFIGMAP, "namespace": name, "labels": dict(TRUSTED_CA_LABELS)},
                     "data": {CUSTOM_CA_KEY: (trust.get("customCABundle") or "").strip() + "\n"}}


def kserve_ca_bundle(configmaps: dict[str, Obj]) -> str:
    """cabundle.crt: each source file trimmed, joined by a blank line (ConfigMapReconciler.reconcileConfigMap)."""
    cert_data = ""
    for name, files in CA_SOURCES:
        data = (configmaps.get(name) or {}).get("data") or {}
        for file_name in files:
            text = (data.get(file_name) or "").strip()
            if text:
                cert_data = (cert_data + "\n\n" + text).removeprefix("\n\n")
    return cert_data


def kserve_ca_bundle_change(cert_data: str, existing: Obj | None) -> str:
    """"create" | "update" | "delete" | "none" (isAdded, isUpdated, isRemoved); any change also deletes
    the namespace's managed storage-config so that it is made again with or without the bundle."""
    if not cert_data:
        return "delete" if existing is not None else "none"
    if existing is None:
        return "create"
    return "update" if (existing.get("data") or {}) != {CA_BUNDLE_KEY: cert_data} else "none"


def triggers_ca_bundle(configmap: Obj) -> bool:
    """The ConfigMapReconciler's event filter: the three names, in any namespace."""
    return (configmap.get("metadata") or {}).get("name") in (TRUSTED_CA_CONFIGMAP, CA_BUNDLE_CONFIGMAP,
                                                            SERVICE_CA_CONFIGMAP)


def triggers_storage_config(secret: Obj) -> bool:
    """The controller's event filter: Secrets labelled managed, except Ray's TLS Secrets."""
    md = secret.get("metadata") or {}
    return (md.get("labels") or {}).get(ODH_MANAGED) == "true" and md.get("name") not in RAY_SECRETS


# ---- JSON patch and the admission server --------------------------------------------------------
def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(before: Any, after: Any, path: str = "") -> list[Obj]:
    """RFC 6902 operations turning `before` into `after` (maps walked, anything else replaced)."""
    if isinstance(before, dict) and isinstance(after, dict):
        ops = [{"op": "remove", "path": f"{path}/{_pointer(k)}"} for k in before if k not in after]
        for key, value in after.items():
            sub = f"{path}/{_pointer(key)}"
            if key in before:
                ops += json_patch(before[key], value, sub)
            else:
                ops.append({"op": "add", "path": sub, "value": value})
        return ops
    if json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True):
        return []
    return [{"op": "replace", "path": path, "value": after}]


def admission_response(request: Obj, verdict: Verdict) -> Obj:
    status: Obj = {"code": verdict.code}
    if verdict.reason:
        status["reason"] = verdict.reason
    if verdict.message:
        status["message"] = verdict.message
    response: Obj = {"uid": request["uid"], "allowed": verdict.allowed, "status": status}
    if verdict.patched is not None:
        ops = json_patch(request["object"], verdict.patched)
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return response


def review_isvc(request: Obj, decide: Callable[[Obj], Verdict]) -> Verdict:
    """The checks both operator webhooks make before deciding: kind, deletion, operation."""
    kind = request.get("kind") or {}
    if kind != ISVC_KIND:
        return errored(400, f"unexpected kind: {kind.get('kind', '')}")
    obj = request.get("object") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Verdict(True, message="Object marked for deletion, skipping")
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return Verdict(True, message=f"Operation {request.get('operation')} on {kind['kind']} allowed")
    return decide(obj)


class AdmissionServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, cert: Path, key: Path, hooks: dict[str, Callable[[Obj], Verdict]]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.hooks = hooks
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.socket = ctx.wrap_socket(self.socket, server_side=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: AdmissionServer
    protocol_version = "HTTP/1.1"

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/healthz":
            self._send(200, b"ok", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        hook = self.server.hooks.get(self.path.split("?", 1)[0])
        if hook is None:
            self._send(404, b"not found", "text/plain")
            return
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        request = review["request"]
        try:
            verdict = hook(request)
        except Exception as err:  # an answer, not a dropped connection: the apiserver shows it
            log.exception("webhook %s failed", self.path)
            verdict = errored(500, f"{type(err).__name__}: {err}")
        obj_md = (request.get("object") or {}).get("metadata") or {}
        log.info("%s %s %s/%s: %s%s", self.path.split("?", 1)[0], request.get("operation"), request.get("namespace"),
                 obj_md.get("name") or obj_md.get("generateName"), "allowed" if verdict.allowed else "refused",
                 f" ({verdict.code} {verdict.message})" if not verdict.allowed else "")
        self._send(200, json.dumps({"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                                    "kind": "AdmissionReview",
                                    "response": admission_response(request, verdict)}).encode())

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)


# ---- talking to the API -------------------------------------------------------------------------
def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
    """Call the API and return plain JSON, so every object is handled as a dict."""
    resp = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    return json.loads(resp.data or b"{}")


class Watcher(threading.Thread):
    """List+watch one resource forever and hand every object seen to `seen(event_type, obj)`.

    The (re)list reports each item as "SYNC"; reconnects with backoff after any error (apiserver
    restart), re-lists on 410 Gone and ends each watch after WATCH_SECONDS, as cloud_sim.py does.
    """

    def __init__(self, name: str, list_call: Callable[..., Any], seen: Callable[[str, Obj], None],
                 stop: threading.Event) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.kind, self.list_call, self.seen, self.stop_event = name, list_call, seen, stop

    def run(self) -> None:
        rv: str | None = None
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    listed = raw(self.list_call)
                    for item in listed.get("items") or []:
                        self.seen("SYNC", item)
                    rv = listed["metadata"]["resourceVersion"]
                rv = self._watch(rv)
                backoff = 1.0
                continue
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning("watch %s: API error %s %s; retrying in %.0fs", self.kind, exc.status, exc.reason, backoff)
            except Exception as exc:  # a daemon thread must outlive any single failure
                log.warning("watch %s: %s: %s; retrying in %.0fs", self.kind, type(exc).__name__,
                            str(exc).splitlines()[0][:200] if str(exc) else "", backoff)
            rv = None
            self.stop_event.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _watch(self, rv: str) -> str | None:
        resp = self.list_call(watch=True, resource_version=rv, allow_watch_bookmarks=True,
                              timeout_seconds=WATCH_SECONDS, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        try:
            for line in iter_resp_lines(resp):
                if self.stop_event.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                if event.get("type") != "BOOKMARK":
                    self.seen(event["type"], obj)
        finally:
            resp.release_conn()
        return rv


class Simulator:
    """The controllers (operator's Kueue component, DSCI profile, storage-config) and the webhooks' reads."""

    def __init__(self, api: client.ApiClient, applications_namespace: str, service_ca: str = "") -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apps_ns = applications_namespace
        self.service_ca = service_ca
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.kueue_due = self.profile_due = self.trust_all_due = True
        self.storage_due: set[str] = set()
        self.trust_due: set[str] = set()     # namespaces whose CA ConfigMaps the operator reconciles
        self.ca_bundle_due: set[str] = set()  # namespaces whose odh-kserve-custom-ca-bundle is due

    # -- events: what each watch makes due (level-triggered: the reconcile re-reads everything)
    def kueue_event(self, _type: str, _obj: Obj) -> None:
        with self.lock:
            self.kueue_due = True
        self.wake.set()

    def profile_event(self, _type: str, _obj: Obj) -> None:
        with self.lock:
            self.profile_due = True
        self.wake.set()

    def secret_event(self, _type: str, obj: Obj) -> None:
        if triggers_storage_config(obj):
            with self.lock:
                self.storage_due.add(obj["metadata"]["namespace"])
            self.wake.set()

    def namespace_event(self, _type: str, obj: Obj) -> None:
        with self.lock:
            self.kueue_due = True
            self.trust_due.add(obj["metadata"]["name"])
        self.wake.set()

    def dsci_event(self, _type: str, _obj: Obj) -> None:
        with self.lock:
            self.trust_all_due = True
        self.wake.set()

    def configmap_event(self, _type: str, obj: Obj) -> None:
        if triggers_ca_bundle(obj):
            with self.lock:
                self.ca_bundle_due.add(obj["metadata"]["namespace"])
            self.wake.set()

    def watchers(self, stop: threading.Event) -> list[Watcher]:
        c = self.custom

        def custom(group: str, version: str, plural: str) -> Callable[..., Any]:
            return lambda **kw: c.list_cluster_custom_object(group, version, plural, **kw)
        kueue = [("datascienceclusters", custom(DSC_GROUP, DSC_VERSION, "datascienceclusters"))]
        kueue += [(p, custom(KUEUE_GROUP, OPERATOR_KUEUE_VERSION, p))
                  for p in ("localqueues", "clusterqueues", "resourceflavors")]
        out = [Watcher(name, call, self.kueue_event, stop) for name, call in kueue]
        out.append(Watcher("namespaces", self.core.list_namespace, self.namespace_event, stop))
        out.append(Watcher("dscinitializations", custom(DSCI_GROUP, DSCI_VERSION, "dscinitializations"),
                           self.dsci_event, stop))
        out.append(Watcher("configmaps", self.core.list_config_map_for_all_namespaces, self.configmap_event, stop))
        out.append(Watcher("hardwareprofiles", lambda **kw: c.list_namespaced_custom_object(
            HWP_GROUP, HWP_VERSION, self.apps_ns, "hardwareprofiles", **kw), self.profile_event, stop))
        out.append(Watcher("secrets", self.core.list_secret_for_all_namespaces, self.secret_event, stop))
        return out

    def reconcile_due(self) -> None:
        """Run what is due; whatever fails stays due and is retried by the caller."""
        with self.lock:
            kueue, profile, namespaces = self.kueue_due, self.profile_due, self.storage_due
            trust_all, trust, bundles = self.trust_all_due, self.trust_due, self.ca_bundle_due
            self.kueue_due = self.profile_due = self.trust_all_due = False
            self.storage_due, self.trust_due, self.ca_bundle_due = set(), set(), set()
        try:
            if kueue:
                self.reconcile_kueue()
                kueue = False
            if profile:
                self.ensure_default_profile()
                profile = False
            if trust_all or trust:
                self.reconcile_trust(None if trust_all else trust)
                trust_all, trust = False, set()
            while bundles:
                ns = next(iter(bundles))
                self.reconcile_ca_bundle(ns)
                bundles.discard(ns)
            while namespaces:
                ns = next(iter(namespaces))
                self.reconcile_storage_config(ns)
                namespaces.discard(ns)
        finally:
            with self.lock:
                self.kueue_due |= kueue
                self.profile_due |= profile
                self.storage_due |= namespaces
                self.trust_all_due |= trust_all
                self.trust_due |= trust
                self.ca_bundle_due |= bundles

    def dscs(self) -> list[Obj]:
        return raw(self.custom.list_cluster_custom_object, DSC_GROUP, DSC_VERSION, "datascienceclusters")["items"]

    def reconcile_kueue(self) -> None:
        dscs = self.dscs()
        for dsc in dscs:
            self._dsc_status(dsc)
        if len(dscs) != 1:
            return
        namespaces = raw(self.core.list_namespace)["items"]
        relabel, wanted = kueue_objects(dscs[0], namespaces, raw(self.core.list_node)["items"])
        for name in relabel:
            labels = {MANAGED_LABEL: "true", LEGACY_MANAGED_LABEL: "true"}
            self.core.patch_namespace(name, {"metadata": {"labels": labels}}, _request_timeout=REQUEST_TIMEOUT)
            log.info("namespace %s: labelled %s and %s", name, MANAGED_LABEL, LEGACY_MANAGED_LABEL)
        existing = set()
        for kind, plural in (("ResourceFlavor", "resourceflavors"), ("ClusterQueue", "clusterqueues"),
                             ("LocalQueue", "localqueues")):
            listed = raw(self.custom.list_cluster_custom_object, KUEUE_GROUP, OPERATOR_KUEUE_VERSION, plural)
            for item in listed["items"]:
                existing.add((kind, item["metadata"].get("namespace", ""), item["metadata"]["name"]))
        for obj in missing(wanted, existing):
            self._create_kueue_object(obj)

    def _create_kueue_object(self, obj: Obj) -> None:
        kind, namespace, name = object_key(obj)
        plural = kind.lower() + "s"
        try:
            if namespace:
                self.custom.create_namespaced_custom_object(KUEUE_GROUP, OPERATOR_KUEUE_VERSION, namespace, plural, obj,
                                                            _request_timeout=REQUEST_TIMEOUT)
            else:
                self.custom.create_cluster_custom_object(KUEUE_GROUP, OPERATOR_KUEUE_VERSION, plural, obj,
                                                         _request_timeout=REQUEST_TIMEOUT)
            log.info("%s %s created%s", kind, f"{namespace}/{name}" if namespace else name,
                     f" -> ClusterQueue {obj['spec']['clusterQueue']}" if kind == "LocalQueue" else "")
        except ApiException as exc:
            # 409: it exists (left as it is); 403/404: its namespace is going or gone
            if exc.status not in (403, 404, 409):
                raise

    def _dsc_status(self, dsc: Obj) -> None:
        """The DSC controller's status: `status.components.kueue.managementState` (UpdateDSCStatus)."""
        state = kueue_settings(dsc)[0]
        have = (((dsc.get("status") or {}).get("components") or {}).get("kueue") or {}).get("managementState")
        if have != state:
            self.custom.patch_cluster_custom_object_status(
                DSC_GROUP, DSC_VERSION, "datascienceclusters", dsc["metadata"]["name"],
                {"status": {"components": {"kueue": {"managementState": state}}}}, _request_timeout=REQUEST_TIMEOUT)

    def ensure_default_profile(self) -> None:
        """The DSCInitialization's `default-profile`, created when missing
        (opendatahub-operator v3.0.0 internal/controller/dscinitialization/hardwareprofile.go and
        config/hardwareprofiles/default-profile.yaml: 2 CPUs (1-4) and 4Gi (2Gi-8Gi), no scheduling)."""
        body = {"apiVersion": f"{HWP_GROUP}/{HWP_VERSION}", "kind": "HardwareProfile",
                "metadata": {"name": "default-profile", "namespace": self.apps_ns,
                             "annotations": {"opendatahub.io/display-name": "default-profile",
                                             "opendatahub.io/disabled": "false"}},
                "spec": {"identifiers": [
                    {"identifier": "cpu", "displayName": "CPU", "resourceType": "CPU",
                     "minCount": 1, "defaultCount": 2, "maxCount": 4},
                    {"identifier": "memory", "displayName": "Memory", "resourceType": "Memory",
                     "minCount": "2Gi", "defaultCount": "4Gi", "maxCount": "8Gi"}]}}
        try:
            self.custom.create_namespaced_custom_object(HWP_GROUP, HWP_VERSION, self.apps_ns, "hardwareprofiles",
                                                        body, _request_timeout=REQUEST_TIMEOUT)
            log.info("HardwareProfile %s/default-profile created", self.apps_ns)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def reconcile_storage_config(self, namespace: str) -> None:
        connections = raw(self.core.list_namespaced_secret, namespace,
                          label_selector=f"{ODH_MANAGED}=true,{ODH_DASHBOARD}=true")["items"]
        ca_bundle = ""
        if connections:
            try:
                cm = raw(self.core.read_namespaced_config_map, CA_BUNDLE_CONFIGMAP, namespace)
                ca_bundle = (cm.get("data") or {}).get(CA_BUNDLE_KEY, "")
            except ApiException as exc:
                if exc.status != 404:
                    raise
        current = self._get_secret(namespace, STORAGE_CONFIG)
        action, desired = storage_config_change(connections, ca_bundle, current)
        if action == "create":
            try:
                self.core.create_namespaced_secret(namespace, desired, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status not in (403, 409):  # namespace terminating; created meanwhile
                    raise
        elif action == "update":
            current["metadata"]["labels"] = desired["metadata"]["labels"]
            current["data"] = desired["data"]
            try:
                self.core.replace_namespaced_secret(STORAGE_CONFIG, namespace, current,
                                                    _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status == 409:  # changed meanwhile: read again
                    with self.lock:
                        self.storage_due.add(namespace)
                    return
                raise
        elif action == "delete":
            try:
                self.core.delete_namespaced_secret(STORAGE_CONFIG, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        if action != "none":
            log.info("storage-config %s/%s: %s (%d data connections)", namespace, STORAGE_CONFIG, action,
                     len(connections))

    def reconcile_trust(self, names: set[str] | None) -> None:
        """OpenShift's `openshift-service-ca.crt` and the operator's `odh-trusted-ca-bundle`, in the
        namespaces named (all when None: a DSCI changed, or the periodic resync)."""
        dscis = raw(self.custom.list_cluster_custom_object, DSCI_GROUP, DSCI_VERSION, "dscinitializations")["items"]
        dsci = dscis[0] if len(dscis) == 1 else None  # cluster.GetDSCI: none, or more than one, is an error
        for ns in raw(self.core.list_namespace)["items"]:
            name = ns["metadata"]["name"]
            if names is not None and name not in names:
                continue
            if self.service_ca and (ns.get("status") or {}).get("phase", "Active") == "Active":
                self._apply_configmap({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                    "name": SERVICE_CA_CONFIGMAP, "namespace": name,
                    "annotations": {"service.beta.openshift.io/inject-cabundle": "true"}},
                    "data": {"service-ca.crt": self.service_ca}}, "openshift-service-ca-publisher")
            action, desired = trusted_ca_bundle_action(dsci, ns)
            if action == "apply":
                self._apply_configmap(desired, "opendatahub-operator/trustedcabundle")
            elif action == "delete":
                self._delete_configmap(name, TRUSTED_CA_CONFIGMAP)

    def reconcile_ca_bundle(self, namespace: str) -> None:
        """odh-model-controller's ConfigMapReconciler for one namespace."""
        sources = {}
        for name, _files in CA_SOURCES:
            found = self._get_configmap(namespace, name)
            if found is not None:
                sources[name] = found
        cert_data = kserve_ca_bundle(sources)
        existing = self._get_configmap(namespace, CA_BUNDLE_CONFIGMAP)
        action = kserve_ca_bundle_change(cert_data, existing)
        if action == "none":
            return
        try:
            if action == "create":
                self.core.create_namespaced_config_map(namespace, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CA_BUNDLE_CONFIGMAP, "labels": {ODH_MANAGED: "true"}},
                    "data": {CA_BUNDLE_KEY: cert_data}}, _request_timeout=REQUEST_TIMEOUT)
            elif action == "update":
                existing["data"] = {CA_BUNDLE_KEY: cert_data}
                self.core.replace_namespaced_config_map(CA_BUNDLE_CONFIGMAP, namespace, existing,
                                                        _request_timeout=REQUEST_TIMEOUT)
            else:
                self.core.delete_namespaced_config_map(CA_BUNDLE_CONFIGMAP, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 409:  # created or changed meanwhile: read again
                with self.lock:
                    self.ca_bundle_due.add(namespace)
                return
            if exc.status not in (403, 404):  # namespace terminating; deleted meanwhile
                raise
        log.info("ConfigMap %s/%s: %s", namespace, CA_BUNDLE_CONFIGMAP, action)
        # processDelta's deleteStorageSecret: the Secret reconciler makes it again, with the new bundle
        current = self._get_secret(namespace, STORAGE_CONFIG)
        if current is not None and (current["metadata"].get("labels") or {}).get(ODH_MANAGED) == "true":
            try:
                self.core.delete_namespaced_secret(STORAGE_CONFIG, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            log.info("storage-config %s/%s: deleted to be made again with the CA bundle", namespace, STORAGE_CONFIG)

    def _get_configmap(self, namespace: str, name: str) -> Obj | None:
        try:
            return raw(self.core.read_namespaced_config_map, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _apply_configmap(self, desired: Obj, manager: str) -> None:
        """Server-side apply with force, as the operator's resources.Apply; unchanged objects are not written."""
        md = desired["metadata"]
        current = self._get_configmap(md["namespace"], md["name"])
        if current is not None:
            have = {"data": current.get("data") or {}, "labels": current["metadata"].get("labels") or {},
                    "annotations": current["metadata"].get("annotations") or {}}
            want = {"data": desired["data"], "labels": md.get("labels") or {}, "annotations": md.get("annotations") or {}}
            if all(have[part].get(key) == value for part, fields in want.items() for key, value in fields.items()):
                return  # what this manager sets is there (others' fields, e.g. ca-bundle.crt, stay as they are)
        try:
            self.core.patch_namespaced_config_map(md["name"], md["namespace"], desired, field_manager=manager,
                                                  force=True, _content_type="application/apply-patch+yaml",
                                                  _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status not in (403, 404):  # namespace terminating or gone
                raise

    def _delete_configmap(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_config_map(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            log.info("ConfigMap %s/%s: deleted", namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _get_secret(self, namespace: str, name: str) -> Obj | None:
        try:
            return raw(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- what the webhooks read (with the operator's API reader: uncached, as here)
    def fetch_profile(self, namespace: str, name: str) -> Obj:
        try:
            return raw(self.custom.get_namespaced_custom_object, HWP_GROUP, HWP_VERSION, namespace,
                       "hardwareprofiles", name)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(name) from None
            raise RuntimeError(exc.reason) from None

    def namespace_labels(self, name: str) -> dict[str, str]:
        try:
            return raw(self.core.read_namespace, name)["metadata"].get("labels") or {}
        except ApiException as exc:
            raise RuntimeError(f'namespaces "{name}" not found' if exc.status == 404 else exc.reason) from None

    def dsc_kueue_state(self) -> str | None:
        """cluster.GetDSC, then the status' Kueue managementState; None when there is no DSC."""
        dscs = self.dscs()
        if not dscs:
            return None
        if len(dscs) > 1:
            raise RuntimeError(f"failed to get a valid {DSC_GROUP}/{DSC_VERSION}, Kind=DataScienceCluster instance, "
                               f"expected to find 1 instance, found {len(dscs)}")
        return (((dscs[0].get("status") or {}).get("components") or {}).get("kueue") or {}).get("managementState", "")

    def hooks(self) -> dict[str, Callable[[Obj], Verdict]]:
        return {
            HWP_PATH: lambda req: review_isvc(req, lambda obj: inject_hardware_profile(obj, self.fetch_profile)),
            KUEUE_LABEL_PATH: lambda req: review_isvc(req, lambda obj: check_kueue_label(
                obj, req.get("namespace", ""), self.namespace_labels, self.dsc_kueue_state)),
            MODE_PATH: lambda req: map_deployment_mode(req.get("object") or {}),
        }


def run(sim: Simulator, stop: threading.Event) -> None:
    for watcher in sim.watchers(stop):
        watcher.start()
    backoff, next_resync = 1.0, time.monotonic() + RESYNC_SECONDS
    while not stop.is_set():
        sim.wake.wait(1.0)
        sim.wake.clear()
        if time.monotonic() >= next_resync:
            sim.kueue_event("RESYNC", {})
            sim.dsci_event("RESYNC", {})
            next_resync = time.monotonic() + RESYNC_SECONDS
        try:
            sim.reconcile_due()
            backoff = 1.0
        except Exception as exc:  # the daemon must survive apiserver restarts and odd objects
            log.warning("reconcile: %s: %s; retrying in %.0fs", type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", backoff)
            stop.wait(backoff)
            sim.wake.set()
            backoff = min(backoff * 2, 10.0)


# ---- what install.py registers ------------------------------------------------------------------
def _dsc_schema(states: list[str]) -> Obj:
    kueue = {"type": "object", "properties": {
        "managementState": {"type": "string", "enum": states, "pattern": "^(Managed|Unmanaged|Force|Removed)$"},
        "defaultClusterQueueName": {"type": "string", "default": "default"},
        "defaultLocalQueueName": {"type": "string", "default": "default"}}}
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        # the other components are kept as written, unvalidated: the testbed acts on Kueue only
        "spec": {"type": "object", "properties": {"components": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"kueue": kueue}}},
            "x-kubernetes-preserve-unknown-fields": True},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}


def _hwp_schema() -> Obj:
    count = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    toleration = {"type": "object", "properties": {
        "effect": {"type": "string"}, "key": {"type": "string"}, "operator": {"type": "string"},
        "tolerationSeconds": {"type": "integer", "format": "int64"}, "value": {"type": "string"}}}
    scheduling = {
        "type": "object", "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["Queue", "Node"]},
            "kueue": {"type": "object", "required": ["localQueueName"], "properties": {
                "localQueueName": {"type": "string", "minLength": 1}, "priorityClass": {"type": "string"}}},
            "node": {"type": "object", "properties": {
                "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                "tolerations": {"type": "array", "items": toleration}}}},
        # the two CEL rules of api/infrastructure/v1/hardwareprofile_types.go, with their messages
        "x-kubernetes-validations": [
            {"rule": "self.type == 'Queue' ? (has(self.kueue) && has(self.kueue.localQueueName) && !has(self.node)) "
                     ": true",
             "message": "When schedulingType is 'Queue', the 'kueue.localQueueName' field must be specified and "
                        "non-empty, and the 'node' field must not be set"},
            {"rule": "self.type == 'Node' ? (has(self.node) && !has(self.kueue)) : true",
             "message": "When schedulingType is 'Node', the 'node' field must be set, and the 'kueue' field must "
                        "not be set"}]}
    identifier = {"type": "object", "required": ["defaultCount", "displayName", "identifier", "minCount"],
                  "properties": {"defaultCount": count, "maxCount": count, "minCount": count,
                                 "displayName": {"type": "string"}, "identifier": {"type": "string"},
                                 "resourceType": {"type": "string", "enum": ["CPU", "Memory", "Accelerator"]}}}
    return {"type": "object", "required": ["spec"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"identifiers": {"type": "array", "items": identifier},
                                                  "scheduling": scheduling}},
        "status": {"type": "object"}}}


def _dsci_schema() -> Obj:
    trust = {"type": "object", "required": ["managementState"], "properties": {
        "managementState": {"type": "string", "enum": ["Managed", "Removed", "Unmanaged"], "default": "Removed"},
        "customCABundle": {"type": "string", "default": ""}}}
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        # the other fields are kept as written, unvalidated: the testbed acts on the trusted CA bundle only
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"applicationsNamespace": {"type": "string"}, "trustedCABundle": trust}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}


def crds() -> list[Obj]:
    """DataScienceCluster and DSCInitialization (v1 and v2, v2 stored) and HardwareProfile (v1 stored,
    v1alpha1 deprecated), with the fields of opendatahub-operator v3.0.0's config/crd/bases that the
    testbed acts on."""
    ready = [{"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}]
    dsc_versions = [{"name": "v1", "served": True, "storage": False, "subresources": {"status": {}},
                     "additionalPrinterColumns": ready,
                     "schema": {"openAPIV3Schema": _dsc_schema(["Managed", "Unmanaged", "Removed"])}},
                    {"name": "v2", "served": True, "storage": True, "subresources": {"status": {}},
                     "additionalPrinterColumns": ready,
                     "schema": {"openAPIV3Schema": _dsc_schema(["Unmanaged", "Removed"])}}]
    hwp_versions = [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": _hwp_schema()}},
                    {"name": "v1alpha1", "served": True, "storage": False, "deprecated": True,
                     "deprecationWarning": "infrastructure.opendatahub.io/v1alpha1 is deprecated; please use "
                                           "infrastructure.opendatahub.io/v1",
                     "subresources": {"status": {}}, "schema": {"openAPIV3Schema": _hwp_schema()}}]
    return [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": f"datascienceclusters.{DSC_GROUP}"},
         "spec": {"group": DSC_GROUP, "scope": "Cluster", "versions": dsc_versions,
                  "names": {"kind": "DataScienceCluster", "listKind": "DataScienceClusterList",
                            "plural": "datascienceclusters", "singular": "datasciencecluster", "shortNames": ["dsc"]}}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": f"dscinitializations.{DSCI_GROUP}"},
         "spec": {"group": DSCI_GROUP, "scope": "Cluster",
                  "versions": [{"name": v, "served": True, "storage": v == DSCI_VERSION, "subresources": {"status": {}},
                                "schema": {"openAPIV3Schema": _dsci_schema()}} for v in ("v1", "v2")],
                  "names": {"kind": "DSCInitialization", "listKind": "DSCInitializationList",
                            "plural": "dscinitializations", "singular": "dscinitialization", "shortNames": ["dsci"]}}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": f"hardwareprofiles.{HWP_GROUP}"},
         "spec": {"group": HWP_GROUP, "scope": "Namespaced", "versions": hwp_versions,
                  "names": {"kind": "HardwareProfile", "listKind": "HardwareProfileList",
                            "plural": "hardwareprofiles", "singular": "hardwareprofile"}}},
    ]


def webhook_configurations(port: int, ca_bundle: str) -> list[Obj]:
    """One configuration per webhook, named like it, as OLM installs the operator's (generateName).

    The apiserver calls mutating configurations in name order, so the hardware profile injector
    runs before KServe's defaulter (`inferenceservice.serving.kserve.io`), as on RHOAI; every
    mutating webhook runs before any validating one (kube-apiserver 1.36 admission plugin order).
    """
    def hook(name: str, path: str) -> Obj:
        return {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle},
                "rules": [{"apiGroups": ["serving.kserve.io"], "apiVersions": ["v1beta1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["inferenceservices"]}]}
    reg = "admissionregistration.k8s.io/v1"
    return [
        {"apiVersion": reg, "kind": "MutatingWebhookConfiguration", "metadata": {"name": HWP_WEBHOOK},
         "webhooks": [hook(HWP_WEBHOOK, HWP_PATH)]},
        {"apiVersion": reg, "kind": "MutatingWebhookConfiguration", "metadata": {"name": MODE_WEBHOOK},
         "webhooks": [hook(MODE_WEBHOOK, MODE_PATH)]},
        {"apiVersion": reg, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": KUEUE_LABEL_WEBHOOK},
         "webhooks": [hook(KUEUE_LABEL_WEBHOOK, KUEUE_LABEL_PATH)]},
    ]


def default_dsc() -> Obj:
    """The DataScienceCluster `up` creates once: Kueue Unmanaged (the Red Hat build of Kueue runs it)."""
    return {"apiVersion": f"{DSC_GROUP}/{DSC_VERSION}", "kind": "DataScienceCluster",
            "metadata": {"name": DEFAULT_DSC},
            "spec": {"components": {"kueue": {"managementState": "Unmanaged"}}}}


def default_dsci(custom_ca: str = "", applications_namespace: str = APPLICATIONS_NAMESPACE) -> Obj:
    """The DSCInitialization the operator creates once (CreateDefaultDSCI: trusted CA bundle Managed), with
    `custom_ca` in `customCABundle` as an admin adds the CA of an in-cluster S3 with its own certificate."""
    return {"apiVersion": f"{DSCI_GROUP}/{DSCI_VERSION}", "kind": "DSCInitialization",
            "metadata": {"name": DEFAULT_DSCI},
            "spec": {"applicationsNamespace": applications_namespace,
                     "trustedCABundle": {"managementState": "Managed", "customCABundle": custom_ca}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int, help="webhook port on 127.0.0.1")
    parser.add_argument("--cert", required=True, type=Path, help="serving certificate (testbed CA)")
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--applications-namespace", default=APPLICATIONS_NAMESPACE)
    parser.add_argument("--service-ca", type=Path, help="the CA published as openshift-service-ca.crt")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s rhoai_sim %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim = Simulator(config.new_client_from_config(config_file=str(args.kubeconfig)), args.applications_namespace,
                    args.service_ca.read_text() if args.service_ca else "")
    server = AdmissionServer(args.port, args.cert, args.key, sim.hooks())
    threading.Thread(target=server.serve_forever, name="webhooks", daemon=True).start()
    log.info("started: webhooks on https://127.0.0.1:%d (kubeconfig %s)", args.port, args.kubeconfig)
    run(sim, stop)
    server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
