# -*- coding: utf-8 -*-
"""model_registry against a fake registry over real HTTP: what is sent, in which order, and when nothing is."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any, Dict
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.model_registry import (
    API_PATH,
    artifact_uri,
    base_url,
    changed_fields,
    run,
)
from ansible_collections.rhoai.gpuaas.plugins.modules.model_register import ARGUMENT_SPEC

S3 = "http://127.0.0.1:18333"
S3_URI = "s3://models/mistral-small/bf16?endpoint=http%3A%2F%2F127.0.0.1%3A18333&defaultRegion=us-east-1"


def params(url: str, **given: Any) -> Dict[str, Any]:
    out = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    out.update(url=url, name="mistral-small", version="2501", uri="s3://models/mistral-small/bf16",
               s3_endpoint=S3, s3_region="us-east-1")
    out.update(given)
    return out


def module(url: str, check: bool = False, diff: bool = False, **given: Any) -> SimpleNamespace:
    warnings: list = []
    return SimpleNamespace(params=params(url, **given), check_mode=check, _diff=diff, warn=warnings.append,
                           warnings=warnings)


def writes(reg) -> list:
    return [(r["method"], r["path"][len(API_PATH):]) for r in reg.writes()]


# --- input, before any request ---

@pytest.mark.parametrize("url, base", [
    ("https://reg-rest.apps.example.com", "https://reg-rest.apps.example.com"),
    ("https://reg-rest.apps.example.com/", "https://reg-rest.apps.example.com"),
    ("https://reg-rest.apps.example.com" + API_PATH + "/", "https://reg-rest.apps.example.com"),
    ("http://127.0.0.1:18090/prefix", "http://127.0.0.1:18090/prefix"),
])
def test_base_url_drops_the_api_path_and_trailing_slash(url: str, base: str) -> None:
    assert base_url(url) == base


@pytest.mark.parametrize("url", ["reg-rest.apps.example.com", "ftp://host", "https://", "https://h/?x=1"])
def test_a_bad_url_names_the_option(url: str) -> None:
    with pytest.raises(GpuaasError, match="^url must"):
        base_url(url)


def test_s3_uri_carries_endpoint_and_region_as_the_dashboard_encodes_them() -> None:
    uri = artifact_uri("s3://models/mistral-small/bf16/", S3, "us-east-1")
    assert uri == S3_URI
    parts = urlsplit(uri)
    # read back the way the dashboard's uriToStorageFields does: bucket, path, endpoint, defaultRegion
    assert (parts.netloc, parts.path) == ("models", "/mistral-small/bf16")
    assert parse_qs(parts.query) == {"endpoint": [S3], "defaultRegion": ["us-east-1"]}


def test_s3_uri_without_region_has_only_the_endpoint() -> None:
    assert artifact_uri("s3://models/m", "https://s3.example.com", None) == \
        "s3://models/m?endpoint=https%3A%2F%2Fs3.example.com"


def test_an_s3_uri_already_carrying_its_endpoint_is_kept() -> None:
    assert artifact_uri(S3_URI, None, None) == S3_URI
    assert artifact_uri(S3_URI, S3, "us-east-1") == S3_URI


def test_oci_and_other_uris_are_stored_exactly_as_given() -> None:
    oci = "oci://registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5"
    assert artifact_uri(oci, None, None) == oci
    assert artifact_uri(oci, S3, "us-east-1") == oci  # the connection's endpoint, passed to every model
    assert artifact_uri("hf://mistralai/Mistral-Small-24B-Instruct-2501", None, None) == \
        "hf://mistralai/Mistral-Small-24B-Instruct-2501"


@pytest.mark.parametrize("uri, endpoint, region, message", [
    ("s3://models/m", None, None, "^s3_endpoint is required"),
    ("s3://models/m", "minio:9000", None, "^s3_endpoint must be an http"),
    ("s3://models", S3, None, "needs a bucket and a path"),
    ("s3://oci://registry.redhat.io/x:1", S3, None, "nests a second scheme"),
    ("s3://models/oci://registry.redhat.io/x:1", S3, None, "nests a second scheme"),
    ("quay.io/org/modelcar:1", None, None, "^uri must carry its scheme"),
    ("models/mistral", None, None, "^uri must carry its scheme"),
    (S3_URI, "https://other.example.com", None, "give one"),
])
def test_bad_uris_name_the_option(uri: str, endpoint: str, region: str, message: str) -> None:
    with pytest.raises(GpuaasError, match=message):
        artifact_uri(uri, endpoint, region)


def test_changed_fields_merges_custom_properties_and_never_sends_the_name() -> None:
    have = {"name": "old", "state": "LIVE", "customProperties": {
        "team": {"metadataType": "MetadataStringValue", "string_value": "ml"}}}
    want = {"name": "new", "state": "LIVE", "customProperties": {
        "precision": {"metadataType": "MetadataStringValue", "string_value": "bf16"}}}
    assert changed_fields(have, want) == {"customProperties": {
        "team": {"metadataType": "MetadataStringValue", "string_value": "ml"},
        "precision": {"metadataType": "MetadataStringValue", "string_value": "bf16"}}}
    assert changed_fields(dict(have, customProperties=dict(have["customProperties"], **want["customProperties"])),
                          want) == {}


def test_empty_name_fails_before_any_request(fake_registry) -> None:
    with pytest.raises(GpuaasError, match="^version must not be empty"):
        run(module(fake_registry.url, version=" "))
    assert fake_registry.requests == []


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_request_timeout_of_zero_or_less_names_the_option_before_any_request(fake_registry, timeout: int) -> None:
    with pytest.raises(GpuaasError, match="^request_timeout must be a positive number of seconds, got {0}$".format(
            timeout)):
        run(module(fake_registry.url, request_timeout=timeout))
    assert fake_registry.requests == []


# --- against the fake registry ---

def test_first_run_creates_model_version_and_artifact_in_order(fake_registry) -> None:
    result = run(module(fake_registry.url, description="Mistral Small", author="ci", storage_key="models-conn",
                        model_format_name="vLLM", version_properties={"precision": "bf16", "tp": 4}))
    assert result["changed"] is True
    assert writes(fake_registry) == [("POST", "/registered_models"), ("POST", "/registered_models/1/versions"),
                                     ("POST", "/model_versions/2/artifacts")]
    model_body, version_body, artifact_body = [r["body"] for r in fake_registry.writes()]
    assert model_body == {"name": "mistral-small", "state": "LIVE", "description": "Mistral Small"}
    assert version_body == {"name": "2501", "state": "LIVE", "author": "ci", "registeredModelId": "1",
                            "customProperties": {
                                "precision": {"metadataType": "MetadataStringValue", "string_value": "bf16"},
                                "tp": {"metadataType": "MetadataStringValue", "string_value": "4"}}}
    assert artifact_body == {"artifactType": "model-artifact", "name": "2501", "state": "LIVE", "uri": S3_URI,
                             "storageKey": "models-conn", "modelFormatName": "vLLM"}
    assert result["model_artifact"]["id"] == "3" and result["model_version"]["registeredModelId"] == "1"
    assert result["changes"] == ["create registered_model: description, name, state",
                                 "create model_version: author, customProperties, name, state",
                                 "create model_artifact: artifactType, modelFormatName, name, state, storageKey, uri"]


def test_second_run_reads_only_and_reports_no_change(fake_registry) -> None:
    run(module(fake_registry.url, storage_key="models-conn"))
    before = len(fake_registry.requests)
    result = run(module(fake_registry.url, storage_key="models-conn", diff=True))
    assert result["changed"] is False and result["changes"] == []
    assert all(r["method"] == "GET" for r in fake_registry.requests[before:])
    assert result["diff"]["before"] == result["diff"]["after"]


def test_check_mode_writes_nothing_and_shows_the_plan(fake_registry) -> None:
    result = run(module(fake_registry.url, check=True, diff=True))
    assert result["changed"] is True
    assert fake_registry.writes() == []
    # no parent yet: the version and artifact lookups are not even possible
    assert [r["path"][len(API_PATH):] for r in fake_registry.requests] == ["/registered_model"]
    assert result["diff"]["before"] == {"registered_model": {}, "model_version": {}, "model_artifact": {}}
    assert result["diff"]["after"]["model_artifact"]["uri"] == S3_URI
    assert "id" not in result["model_artifact"]


def test_a_changed_uri_patches_only_the_artifact_and_only_that_field(fake_registry) -> None:
    run(module(fake_registry.url))
    new_uri = "oci://registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5"
    mark = len(fake_registry.requests)
    check = run(module(fake_registry.url, uri=new_uri, check=True, diff=True))
    assert check["changed"] and len(fake_registry.writes()) == 3  # still only the first run's writes
    assert check["diff"]["before"]["model_artifact"]["uri"] == S3_URI
    assert check["diff"]["after"]["model_artifact"]["uri"] == new_uri
    result = run(module(fake_registry.url, uri=new_uri))
    patch = [r for r in fake_registry.requests[mark:] if r["method"] != "GET"]
    assert [(r["method"], r["path"][len(API_PATH):], r["body"]) for r in patch] == [
        ("PATCH", "/model_artifacts/3", {"uri": new_uri})]
    assert result["model_artifact"]["uri"] == new_uri
    assert result["changes"] == ["update model_artifact: uri"]


def test_an_archived_model_is_made_live_again(fake_registry) -> None:
    model = fake_registry.add_model("mistral-small", state="ARCHIVED")
    version = fake_registry.add_version(model, "2501")
    fake_registry.add_artifact(version, "2501", uri=S3_URI)
    result = run(module(fake_registry.url))
    assert [(r["method"], r["path"][len(API_PATH):], r["body"]) for r in fake_registry.writes()] == [
        ("PATCH", "/registered_models/1", {"state": "LIVE"})]
    assert result["registered_model"]["state"] == "LIVE"


def test_properties_set_elsewhere_are_kept(fake_registry) -> None:
    team = {"metadataType": "MetadataStringValue", "string_value": "ml-platform"}
    fake_registry.add_model("mistral-small", customProperties={"team": team})
    run(module(fake_registry.url, model_properties={"license": "apache-2.0"}))
    patch = fake_registry.writes()[0]
    assert patch["method"] == "PATCH"
    assert patch["body"] == {"customProperties": {
        "team": team, "license": {"metadataType": "MetadataStringValue", "string_value": "apache-2.0"}}}


def test_the_only_artifact_of_a_version_is_managed_whatever_its_name(fake_registry) -> None:
    model = fake_registry.add_model("mistral-small")
    version = fake_registry.add_version(model, "2501")
    fake_registry.add_artifact(version, "mistral-small", uri="s3://old/place?endpoint=http%3A%2F%2Fx")
    run(module(fake_registry.url))
    assert [(r["method"], r["body"]) for r in fake_registry.writes()] == [("PATCH", {"uri": S3_URI})]


def test_several_artifacts_and_none_named_fails_naming_artifact_name(fake_registry) -> None:
    model = fake_registry.add_model("mistral-small")
    version = fake_registry.add_version(model, "2501")
    fake_registry.add_artifact(version, "a")
    fake_registry.add_artifact(version, "b")
    with pytest.raises(GpuaasError, match="has 2 model artifacts .a, b. and none named '2501': set artifact_name"):
        run(module(fake_registry.url))
    assert fake_registry.writes() == []


def test_the_token_is_sent_as_a_bearer_header(fake_registry) -> None:
    fake_registry.token = "sha256~secret-token"
    run(module(fake_registry.url, api_key="sha256~secret-token"))
    assert {r["headers"]["authorization"] for r in fake_registry.requests} == {"Bearer sha256~secret-token"}


def test_a_plain_http_url_with_a_token_warns(fake_registry) -> None:
    fake_registry.token = "t0ken"
    mod = module(fake_registry.url, api_key="t0ken")
    run(mod)
    assert mod.warnings == ["api_key is sent to {0} over plain HTTP".format(fake_registry.url)]


@pytest.mark.parametrize("api_key, message", [
    (None, "answered 401 Unauthorized: set api_key to a bearer token"),
    ("wrong-t0ken", "answered 401 Unauthorized: api_key was refused"),
])
def test_401_names_api_key_and_never_shows_it(fake_registry, api_key: str, message: str) -> None:
    fake_registry.token = "right-t0ken"
    with pytest.raises(GpuaasError, match=message) as err:
        run(module(fake_registry.url, api_key=api_key))
    assert "t0ken" not in err.value.msg


def test_an_oauth_proxy_redirect_is_reported_not_followed(fake_registry) -> None:
    fake_registry.token = "right-t0ken"
    fake_registry.redirect_unauthenticated = True
    with pytest.raises(GpuaasError, match="redirected GET /registered_model to 'https://oauth.example/oauth/start'.*"
                                          "set api_key"):
        run(module(fake_registry.url))
    assert len(fake_registry.requests) == 1


def test_a_url_that_is_not_the_registry_names_url(fake_registry) -> None:
    with pytest.raises(GpuaasError, match=r"^url: .*/elsewhere has no /api/model_registry/v1alpha3/registered_model "
                                          r"\(HTTP 404\)"):
        run(module(fake_registry.url + "/elsewhere"))


def test_an_unreachable_registry_names_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(GpuaasError, match=r"^url: cannot reach the Model Registry at http://127.0.0.1:{0} ".format(port)):
        run(module("http://127.0.0.1:{0}".format(port)))


def test_a_server_error_while_writing_says_what_was_being_done(fake_registry) -> None:
    fake_registry.fail["POST artifacts"] = 503
    with pytest.raises(GpuaasError, match=r"refused creating model artifact '2501' \(POST /model_versions/2/artifacts\): "
                                          r"HTTP 503: injected failure"):
        run(module(fake_registry.url))
    # what came before stays; the next run finds it and creates only the artifact
    del fake_registry.fail["POST artifacts"]
    result = run(module(fake_registry.url))
    assert result["changes"] == ["create model_artifact: artifactType, name, state, uri"]


def test_tls_is_verified_by_default_and_the_error_names_ca_path(tls_registry) -> None:
    with pytest.raises(GpuaasError, match="^url: TLS verification of https://127.0.0.1:.* failed .*set ca_path"):
        run(module(tls_registry.url))
    assert tls_registry.requests == []  # the handshake failed: nothing was sent


def test_tls_with_ca_path_or_without_verification_works(tls_registry) -> None:
    assert run(module(tls_registry.url, ca_path=tls_registry.ca_path))["changed"] is True
    assert run(module(tls_registry.url, validate_certs=False))["changed"] is False
