# -*- coding: utf-8 -*-
"""ca_bundle: where a data connection's CA stands in RHOAI's bundle, and when waiting cannot help."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Dict, Optional

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import ca_bundle as cc
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

NS = "private-ai"


def pem(der: bytes) -> str:
    body = base64.b64encode(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(body[i:i + 64] for i in range(0, len(body), 64)) \
        + "\n-----END CERTIFICATE-----\n"


# Stand-ins for DER certificates: this code compares bytes and never parses ASN.1.
S3_CA, SERVICE, OTHER = b"\x30\x82s3-ca", b"\x30\x82service-ca", b"\x30\x82other-ca"


def configmap(name: str, data: Dict[str, str]) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}


def storage_config(endpoint: str = "https://minio.minio-storage.svc:9000", bundle: Optional[str] = cc.BUNDLE) -> Dict[str, Any]:
    entry = {"type": "s3", "endpoint_url": endpoint, "access_key_id": "ak", "secret_access_key": "sk"}
    if bundle:
        entry["cabundle_configmap"] = bundle
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "storage-config", "namespace": NS},
            "data": {"models": base64.b64encode(json.dumps(entry).encode()).decode()}}


def dsci(state: Optional[str] = "Managed", custom: str = "") -> Dict[str, Any]:
    spec = {} if state is None else {"trustedCABundle": {"managementState": state, "customCABundle": custom}}
    return {"apiVersion": "dscinitialization.opendatahub.io/v2", "kind": "DSCInitialization",
            "metadata": {"name": "default-dsci"}, "spec": spec}


def namespace(annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "annotations": annotations or {}}}


def cluster(*objs: Dict[str, Any], rhoai: bool = True) -> FakeCluster:
    c = FakeCluster(served={"dscinitialization.opendatahub.io": ["v2", "v1"]} if rhoai else {})
    c.add(namespace(), *objs)
    return c


def params(ca: str, wait: bool = True, timeout: int = 20) -> Dict[str, Any]:
    return {"namespace": NS, "connection": "models", "ca": ca, "wait": wait, "wait_timeout": timeout}


def platform(custom: str = "") -> list:
    """A namespace as RHOAI leaves it: the operator's copy of the DSCI bundle, the service CA, the merged bundle."""
    bundle = "\n\n".join(t.strip() for t in (custom, pem(SERVICE)) if t.strip())
    return [dsci("Managed", custom), configmap(cc.TRUSTED, {"odh-ca-bundle.crt": custom.strip() + "\n"}),
            configmap(cc.SERVICE_CA, {"service-ca.crt": pem(SERVICE)}),
            configmap(cc.BUNDLE, {cc.BUNDLE_KEY: bundle}), storage_config()]


def test_certificates_reads_every_pem_block_and_ignores_the_rest() -> None:
    text = "subject=CN=x\n" + pem(S3_CA) + "garbage\n" + pem(OTHER).replace("\n", "\r\n")
    assert cc.certificates(text) == [S3_CA, OTHER]
    assert cc.certificates("-----BEGIN CERTIFICATE-----\n!!notbase64\n-----END CERTIFICATE-----") == []


def test_no_certificate_in_ca_names_the_option() -> None:
    with pytest.raises(GpuaasError, match=r"^ca holds no PEM certificate"):
        cc.parse_ca("/etc/pki/minio-ca.crt")   # a path instead of the text


def test_fingerprint_as_openssl_prints_it() -> None:
    assert cc.fingerprint(b"abc") == ("BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:"
                                      "61:F2:00:15:AD")


def test_every_certificate_asked_for_must_be_there() -> None:
    assert cc.holds(pem(S3_CA) + pem(OTHER), [S3_CA, OTHER])
    assert not cc.holds(pem(S3_CA), [S3_CA, OTHER])
    assert not cc.holds("", [S3_CA])


def test_ready_in_a_namespace_where_the_dsci_bundle_reached_the_connection() -> None:
    result = cc.check(cluster(*platform(pem(S3_CA))), params(pem(S3_CA)), False)
    assert result["ready"] and result["in_bundle"] and result["changed"] is False
    assert result["trusted_by"] == ["the DSCInitialization's spec.trustedCABundle.customCABundle"]
    assert result["connection_entry"] == {"endpoint_url": "https://minio.minio-storage.svc:9000",
                                          "cabundle_configmap": cc.BUNDLE}
    assert result["ca_fingerprints"] == [cc.fingerprint(S3_CA)]


def test_the_service_ca_is_named_when_it_signs_the_endpoint() -> None:
    result = cc.check(cluster(*platform()), params(pem(SERVICE)), False)
    assert result["ready"] and result["trusted_by"] == ["the OpenShift service CA"]


def test_a_ca_no_source_holds_fails_at_once_naming_the_dsci_field() -> None:
    started = time.monotonic()
    with pytest.raises(GpuaasError) as err:
        cc.check(cluster(*platform()), params(pem(S3_CA), timeout=60), False)
    assert time.monotonic() - started < 20
    assert err.value.msg.startswith("The model servers in private-ai will not trust the CA of data connection models: "
                                    "add the CA to DSCInitialization default-dsci spec.trustedCABundle.customCABundle")
    assert "Timed out" not in err.value.msg and err.value.result["in_bundle"] is False


@pytest.mark.parametrize("the_dsci,annotations,says", [
    (dsci("Removed"), {}, "DSCInitialization default-dsci has trustedCABundle Removed: set "
                          "spec.trustedCABundle.managementState to Managed"),
    (dsci(None), {}, "DSCInitialization default-dsci has trustedCABundle Removed"),
    (dsci("Unmanaged"), {}, "the operator leaves ConfigMap odh-trusted-ca-bundle to you; add the CA to its key "
                            "odh-ca-bundle.crt in namespace private-ai"),
    (dsci("Managed"), {cc.OPT_OUT: "false"}, "namespace private-ai has opted out of the trusted CA bundle"),
])
def test_the_admins_setting_is_named(the_dsci: Dict[str, Any], annotations: Dict[str, str], says: str) -> None:
    c = FakeCluster(served={"dscinitialization.opendatahub.io": ["v2"]})
    c.add(namespace(annotations), the_dsci, configmap(cc.SERVICE_CA, {"service-ca.crt": pem(SERVICE)}))
    with pytest.raises(GpuaasError, match=says):
        cc.check(c, params(pem(S3_CA)), False)


def test_without_rhoai_it_says_the_bundle_comes_from_rhoai() -> None:
    with pytest.raises(GpuaasError, match="serves no DSCInitialization"):
        cc.check(cluster(storage_config(), rhoai=False), params(pem(S3_CA)), False)


def test_an_http_connection_fails_at_once() -> None:
    c = cluster(*platform(pem(S3_CA))[:-1], storage_config("http://minio.minio-storage.svc:9000", bundle=None))
    with pytest.raises(GpuaasError, match="its endpoint is http://minio.minio-storage.svc:9000, and a CA is only used "
                                          "for https endpoints"):
        cc.check(c, params(pem(S3_CA)), False)


def test_a_missing_namespace_is_named() -> None:
    c = FakeCluster(served={"dscinitialization.opendatahub.io": ["v2"]})
    with pytest.raises(GpuaasError, match="Namespace private-ai does not exist"):
        cc.check(c, params(pem(S3_CA)), False)


def test_a_new_namespace_without_its_platform_configmaps_is_waited_for_not_refused() -> None:
    """Right after the namespace is made, OpenShift and the operator have yet to add their ConfigMaps."""
    c = cluster(dsci("Managed"), storage_config(bundle=None))

    def platform_catches_up() -> None:
        time.sleep(0.3)
        c.add(configmap(cc.SERVICE_CA, {"service-ca.crt": pem(SERVICE)}),
              configmap(cc.BUNDLE, {cc.BUNDLE_KEY: pem(SERVICE)}))
        time.sleep(0.3)
        c.update(storage_config())
    threading.Thread(target=platform_catches_up, daemon=True).start()
    result = cc.check(c, params(pem(SERVICE)), False)
    assert result["ready"] and result["trusted_by"] == ["the OpenShift service CA"]
    with pytest.raises(GpuaasError, match="Timed out after 1s") as err:   # the operator's copy is missing: no verdict
        cc.check(c, params(pem(S3_CA), timeout=1), False)
    assert err.value.result["ca_configmaps"] == [cc.BUNDLE, cc.SERVICE_CA]


def test_waits_while_the_controllers_copy_the_ca_then_returns() -> None:
    """The DSCI holds the CA; the operator, odh-model-controller and the storage-config rewrite follow."""
    c = cluster(dsci("Managed", pem(S3_CA)), configmap(cc.SERVICE_CA, {"service-ca.crt": pem(SERVICE)}),
                configmap(cc.BUNDLE, {cc.BUNDLE_KEY: pem(SERVICE)}), storage_config(bundle=None))

    def controllers() -> None:
        time.sleep(0.3)
        c.add(configmap(cc.TRUSTED, {"odh-ca-bundle.crt": pem(S3_CA)}))
        time.sleep(0.3)
        c.update(configmap(cc.BUNDLE, {cc.BUNDLE_KEY: pem(S3_CA) + "\n" + pem(SERVICE)}))
        time.sleep(0.3)
        c.update(storage_config())
    threading.Thread(target=controllers, daemon=True).start()
    result = cc.check(c, params(pem(S3_CA)), False)
    assert result["ready"] and result["connection_entry"]["cabundle_configmap"] == cc.BUNDLE


def test_a_ca_just_added_to_the_dsci_is_waited_for_until_the_operator_copies_it() -> None:
    c = cluster(dsci("Managed", pem(S3_CA)), configmap(cc.TRUSTED, {"odh-ca-bundle.crt": "\n"}),
                configmap(cc.SERVICE_CA, {"service-ca.crt": pem(SERVICE)}),
                configmap(cc.BUNDLE, {cc.BUNDLE_KEY: pem(SERVICE)}), storage_config())

    def operator() -> None:
        time.sleep(0.5)
        c.update(configmap(cc.TRUSTED, {"odh-ca-bundle.crt": pem(S3_CA)}))
        c.update(configmap(cc.BUNDLE, {cc.BUNDLE_KEY: pem(S3_CA) + "\n" + pem(SERVICE)}))
    threading.Thread(target=operator, daemon=True).start()
    result = cc.check(c, params(pem(S3_CA)), False)
    assert result["ready"] and result["trusted_by"] == ["the DSCInitialization's spec.trustedCABundle.customCABundle"]


def test_a_bundle_that_has_the_ca_but_an_entry_without_it_is_waited_for_then_timed_out() -> None:
    c = cluster(*platform(pem(S3_CA))[:-1], storage_config(bundle=None))
    with pytest.raises(GpuaasError) as err:
        cc.check(c, params(pem(S3_CA), timeout=2), False)
    assert err.value.msg.startswith("Timed out after 2s waiting for odh-kserve-custom-ca-bundle to hold the CA and "
                                    "data connection models to use it")
    assert err.value.result["in_bundle"] is True and err.value.result["connection_entry"]["cabundle_configmap"] is None


@pytest.mark.parametrize("wait,check_mode", [(False, False), (True, True)])
def test_without_waiting_the_state_found_is_returned(wait: bool, check_mode: bool) -> None:
    c = cluster(*platform(pem(S3_CA))[:-1])   # the connection was only sent as a dry run: no entry yet
    result = cc.check(c, params(pem(S3_CA), wait=wait, timeout=60), check_mode)
    assert result["ready"] is False and result["in_bundle"] and result["connection_entry"] is None
    assert c.writes == []
