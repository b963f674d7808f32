# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a namespace's model servers trust the CA of a data connection's https S3 endpoint.

On RHOAI 3.0 the storage initializer verifies an https endpoint with the ConfigMap that the
connection's ``storage-config`` entry names in ``cabundle_configmap``: ``odh-kserve-custom-ca-bundle``
(``cabundle.crt``). odh-model-controller makes that ConfigMap from ``odh-trusted-ca-bundle``
(``ca-bundle.crt``: the cluster's trusted bundle; ``odh-ca-bundle.crt``: the DSCInitialization's
``spec.trustedCABundle.customCABundle``, copied by the operator) and ``openshift-service-ca.crt``
(the service CA), and adds ``cabundle_configmap`` to every https entry once the bundle exists.
All of those belong to controllers, so nothing here writes them: this reads, waits until the
controllers have wired the CA in, and when no source holds it says which setting an admin
changes. A model started before that crash-loops in its storage initializer with
CERTIFICATE_VERIFY_FAILED, and a pod created before the entry named the bundle never mounts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_wait import api_source, wait_for

BUNDLE, BUNDLE_KEY = "odh-kserve-custom-ca-bundle", "cabundle.crt"
TRUSTED, SERVICE_CA = "odh-trusted-ca-bundle", "openshift-service-ca.crt"
STORAGE_CONFIG = "storage-config"
# Where a CA can come from, in the words a user acts on (odh-model-controller constants.CABundleConfigMaps).
SOURCES: Tuple[Tuple[str, str, str], ...] = (
    (TRUSTED, "odh-ca-bundle.crt", "the DSCInitialization's spec.trustedCABundle.customCABundle"),
    (TRUSTED, "ca-bundle.crt", "the cluster's trusted CA bundle (Proxy trustedCA)"),
    (SERVICE_CA, "service-ca.crt", "the OpenShift service CA"),
)
DSCI_GROUP = "dscinitialization.opendatahub.io"
DSCI_VERSIONS = ("v2", "v1")
OPT_OUT = "security.opendatahub.io/inject-trusted-ca-bundle"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.S)


def certificates(pem: str) -> List[bytes]:
    """The DER bytes of each certificate in PEM text (anything else in the text is ignored)."""
    out = []
    for body in _PEM.findall(pem or ""):
        try:
            out.append(base64.b64decode("".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            continue
    return out


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def parse_ca(pem: str) -> List[bytes]:
    """The CA certificates asked for; bad input is named before anything is read."""
    found = certificates(pem)
    if not found:
        raise GpuaasError("ca holds no PEM certificate: give the certificate of the CA that signed the S3 endpoint's "
                          "certificate (-----BEGIN CERTIFICATE----- ...), e.g. with lookup('file', 'ca.crt')")
    return found


def holds(text: str, wanted: List[bytes]) -> bool:
    """Whether every wanted certificate is in the PEM text."""
    present = set(certificates(text))
    return all(der in present for der in wanted)


def entry_of(storage_config: Optional[Dict[str, Any]], connection: str) -> Optional[Dict[str, Any]]:
    """The connection's entry of the storage-config Secret, decoded; None when absent or unreadable."""
    raw = ((storage_config or {}).get("data") or {}).get(connection)
    if not raw:
        return None
    try:
        entry = json.loads(base64.b64decode(raw))
    except (binascii.Error, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def assess(configmaps: Dict[str, Dict[str, Any]], storage_config: Optional[Dict[str, Any]], connection: str,
           wanted: List[bytes]) -> Dict[str, Any]:
    """Where the CA stands in one namespace: which sources hold it, the bundle, the connection's entry."""
    data = {name: (cm.get("data") or {}) for name, cm in configmaps.items()}
    entry = entry_of(storage_config, connection)
    return {
        "trusted_by": [label for name, key, label in SOURCES if holds(data.get(name, {}).get(key, ""), wanted)],
        "in_bundle": holds(data.get(BUNDLE, {}).get(BUNDLE_KEY, ""), wanted),
        "ca_configmaps": sorted(name for name in (TRUSTED, SERVICE_CA, BUNDLE) if name in configmaps),
        "connection_entry": None if entry is None else {
            "endpoint_url": entry.get("endpoint_url", ""), "cabundle_configmap": entry.get("cabundle_configmap")},
    }


def wired(state: Dict[str, Any]) -> bool:
    """The goal: the bundle holds the CA and the connection's entry points the storage initializer at it."""
    entry = state["connection_entry"] or {}
    return state["in_bundle"] and entry.get("cabundle_configmap") == BUNDLE


def dsci_api_version(client: Any) -> Optional[str]:
    served = client.served_versions(DSCI_GROUP)
    return next(("{0}/{1}".format(DSCI_GROUP, v) for v in DSCI_VERSIONS if v in served), None)


def dead_end(state: Dict[str, Any], dscis: Optional[List[Dict[str, Any]]], namespace_obj: Dict[str, Any],
             namespace: str, wanted: List[bytes]) -> Optional[str]:
    """Why no controller will ever bring the CA to the storage initializer, or None while one may.

    ``dscis`` is None on a cluster without RHOAI (no DSCInitialization served).
    """
    entry = state["connection_entry"]
    if entry is not None and not entry["endpoint_url"].startswith("https://"):
        return ("its endpoint is {0}, and a CA is only used for https endpoints: set the https URL, or leave the CA "
                "out".format(entry["endpoint_url"]))
    if state["trusted_by"] or state["in_bundle"]:
        return None
    if dscis is None:
        return ("this cluster serves no DSCInitialization ({0}): the CA bundle of the model servers comes from Red Hat "
                "OpenShift AI's odh-model-controller, which is not here".format(DSCI_GROUP))
    if len(dscis) != 1:
        return "{0} DSCInitializations found, the operator needs exactly one".format(len(dscis))
    if SERVICE_CA not in state["ca_configmaps"]:
        return None  # a new namespace OpenShift has yet to give its service CA
    dsci = dscis[0]
    name = dsci["metadata"]["name"]
    trust = (dsci.get("spec") or {}).get("trustedCABundle") or {}
    state_name = trust.get("managementState") or "Removed"
    if ((namespace_obj.get("metadata") or {}).get("annotations") or {}).get(OPT_OUT) in (
            "0", "f", "F", "false", "False", "FALSE"):
        return ("namespace {0} has opted out of the trusted CA bundle (annotation {1}): remove the annotation, then add "
                "the CA to DSCInitialization {2} spec.trustedCABundle.customCABundle".format(namespace, OPT_OUT, name))
    if state_name == "Unmanaged":
        return ("DSCInitialization {0} has trustedCABundle Unmanaged: the operator leaves ConfigMap {1} to you; add the "
                "CA to its key odh-ca-bundle.crt in namespace {2}".format(name, TRUSTED, namespace))
    if state_name != "Managed":
        return ("DSCInitialization {0} has trustedCABundle {1}: set spec.trustedCABundle.managementState to Managed and "
                "add the CA to spec.trustedCABundle.customCABundle".format(name, state_name))
    if holds(trust.get("customCABundle") or "", wanted) or TRUSTED not in state["ca_configmaps"]:
        return None  # the operator has yet to copy the bundle into this namespace
    return ("add the CA to DSCInitialization {0} spec.trustedCABundle.customCABundle (after the certificates already "
            "there); the operator copies it into every namespace and odh-model-controller into {1}".format(name, BUNDLE))


def check(client: Any, params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """connection_ca's whole run; see the module docstring."""
    namespace, connection = params["namespace"], params["connection"]
    wanted = parse_ca(params["ca"])
    fingerprints = [fingerprint(der) for der in wanted]
    namespace_obj = client.get("v1", "Namespace", namespace)
    if namespace_obj is None:
        raise GpuaasError("Namespace {0} does not exist: create it first (the serving role applies it), or fix "
                          "namespace".format(namespace))
    dsci_api = dsci_api_version(client)
    dscis = client.list(dsci_api, "DSCInitialization")[0] if dsci_api else None
    sources = [api_source(client, "configmaps", "v1", "ConfigMap", namespace),
               api_source(client, "storage_config", "v1", "Secret", namespace,
                          field_selector="metadata.name=" + STORAGE_CONFIG)]

    def summary(state: Dict[str, Any]) -> Dict[str, Any]:
        configmaps = {cm["metadata"]["name"]: cm for cm in state["configmaps"]}
        seen = assess(configmaps, (state["storage_config"] or [None])[0], connection, wanted)
        return dict(seen, ca_fingerprints=fingerprints, ready=wired(seen))

    def why_not(state: Dict[str, Any]) -> Optional[str]:
        seen = summary(state)
        reason = dead_end(seen, dscis, namespace_obj, namespace, wanted)
        return None if reason is None else "The model servers in {0} will not trust the CA of data connection {1}: " \
            "{2}. Nothing was changed.".format(namespace, connection, reason)

    # Without waiting (or in check mode, where the connection was only sent as a dry run) the first
    # state listed is the answer; a dead end fails either way.
    waiting = params["wait"] and not check_mode
    done = wait_for(sources, lambda s: not waiting or summary(s)["ready"], failed=why_not, summary=summary,
                    timeout=params["wait_timeout"],
                    description="{0} to hold the CA and data connection {1} to use it".format(BUNDLE, connection))
    return dict(summary(done.state), changed=False)
