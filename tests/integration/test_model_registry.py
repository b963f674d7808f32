"""The testbed's Model Registry (kubeflow/model-registry v0.3.0 on MariaDB) and rhoai.gpuaas.model_register.

The REST server and its database are the real ones; the module is run through `ansible` as a
playbook task would run it.

Bad input (wrong types, missing objects, unreachable endpoints, ...) is in test_bad_inputs.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

import testbed
from _poll import wait_for
from processes import pid_of, start, stop, wait_healthy

API = "/api/model_registry/v1alpha3"
OCI = "oci://registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5"


@pytest.fixture(scope="session")
def registry_url() -> str:
    """The registry's base URL, read where playbooks read it: `.testbed/endpoints.env`."""
    env = dict(line.split("=", 1) for line in testbed.ENDPOINTS.read_text().split())
    return env["MODEL_REGISTRY_URL"]


def call(base: str, method: str, path: str, body: dict | None = None, **query: str) -> tuple[int, Any]:
    url = base + API + path + ("?" + urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def restart(name: str) -> None:
    comp = next(c for c in testbed.components() if c.name == name)
    stop(testbed.RUN, name)
    start(testbed.RUN, testbed.LOGS, comp)
    wait_healthy(comp, time.monotonic() + 120, testbed.RUN)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- the registry itself ---

def test_the_rest_api_creates_and_reads_back_a_model_a_version_and_an_artifact(registry_url: str) -> None:
    name = unique("it-model")
    status, model = call(registry_url, "POST", "/registered_models", {"name": name, "owner": "it"})
    assert status == 201, model
    status, version = call(registry_url, "POST", f"/registered_models/{model['id']}/versions",
                           {"name": "v1", "registeredModelId": model["id"], "author": "it"})
    assert status == 201, version
    status, artifact = call(registry_url, "POST", f"/model_versions/{version['id']}/artifacts",
                            {"artifactType": "model-artifact", "name": "v1", "uri": OCI})
    assert status in (200, 201), artifact

    assert call(registry_url, "GET", "/registered_model", name=name) == (200, model)
    status, found = call(registry_url, "GET", "/model_version", name="v1", parentResourceId=model["id"])
    assert (status, found["id"], found["registeredModelId"]) == (200, version["id"], model["id"])
    status, listing = call(registry_url, "GET", f"/model_versions/{version['id']}/artifacts")
    assert status == 200 and [a["uri"] for a in listing["items"]] == [OCI]
    # the real server's answers the module relies on: a find that matches nothing, an unknown field
    status, missing = call(registry_url, "GET", "/registered_model", name=unique("absent"))
    assert status == 404 and set(missing) == {"code", "message"}
    status, refused = call(registry_url, "PATCH", f"/registered_models/{model['id']}", {"name": "renamed"})
    assert status == 400 and "unknown field" in refused["message"]


def test_the_registry_keeps_its_data_across_restarts_of_itself_and_of_its_database(registry_url: str) -> None:
    name = unique("it-durable")
    status, model = call(registry_url, "POST", "/registered_models", {"name": name})
    assert status == 201, model
    restart("model-registry")
    assert call(registry_url, "GET", "/registered_model", name=name) == (200, model)
    restart("mariadb")
    # the registry's connection pool reconnects to the restarted database by itself
    assert call(registry_url, "GET", "/registered_model", name=name) == (200, model)


def test_up_recovers_a_killed_database_and_registry_with_the_data(registry_url: str) -> None:
    name = unique("it-crash")
    status, model = call(registry_url, "POST", "/registered_models", {"name": name})
    assert status == 201, model
    for victim in ("mariadb", "model-registry"):
        os.kill(pid_of(testbed.RUN, victim), signal.SIGKILL)
        wait_for(f"{victim} gone", lambda v=victim: not pid_of(testbed.RUN, v), timeout=10)
    result = subprocess.run([sys.executable, str(testbed.HERE / "testbed.py"), "up"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mariadb: started" in result.stdout and "model-registry: started" in result.stdout
    assert "database model_registry created" not in result.stdout  # recovered, not made anew
    assert call(registry_url, "GET", "/registered_model", name=name) == (200, model)


# --- the module against it ---

@pytest.fixture
def register(registry_url: str, run_module: Callable[..., dict]) -> Callable[..., dict]:
    def run(check: bool = False, expect_fail: bool = False, **args: Any) -> dict:
        return run_module("model_register", {"url": registry_url, **args}, check=check, diff=True,
                          expect_fail=expect_fail)
    return run


def test_module_registers_an_s3_model_idempotently_and_check_mode_changes_nothing(
        register: Callable[..., dict], registry_url: str, s3_env: dict[str, str]) -> None:
    name = unique("it-mistral-bf16")
    args = {"name": name, "version": "2501", "uri": "s3://models/mistral-small-24b-instruct-2501",
            "s3_endpoint": s3_env["AWS_S3_ENDPOINT"], "s3_region": s3_env["AWS_DEFAULT_REGION"],
            "storage_key": "models-connection", "model_format_name": "vLLM", "author": "it",
            "version_properties": {"precision": "bf16"}}
    first = register(**args)
    assert first["changed"] is True
    assert first["diff"]["before"] == {"registered_model": {}, "model_version": {}, "model_artifact": {}}
    uri = first["model_artifact"]["uri"]
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("s3", "models", "/mistral-small-24b-instruct-2501")
    assert parse_qs(parts.query) == {"endpoint": [s3_env["AWS_S3_ENDPOINT"]],
                                     "defaultRegion": [s3_env["AWS_DEFAULT_REGION"]]}
    assert first["model_artifact"]["storageKey"] == "models-connection"

    again = register(**args)
    assert again["changed"] is False and again["changes"] == []
    assert again["model_artifact"]["id"] == first["model_artifact"]["id"]

    checked = register(check=True, **{**args, "description": "changed in check mode only"})
    assert checked["changed"] is True and checked["changes"] == ["update registered_model: description"]
    status, model = call(registry_url, "GET", "/registered_model", name=name)
    assert status == 200 and model.get("description") is None


def test_module_stores_an_oci_modelcar_as_given_and_check_mode_creates_nothing(
        register: Callable[..., dict], registry_url: str, s3_env: dict[str, str]) -> None:
    name = unique("it-mistral-w4a16")
    planned = register(check=True, name=name, version="1.5", uri=OCI)
    assert planned["changed"] is True and planned["model_artifact"]["uri"] == OCI
    assert call(registry_url, "GET", "/registered_model", name=name)[0] == 404

    # a loop over the models table passes the data connection's endpoint to every model
    done = register(name=name, version="1.5", uri=OCI, s3_endpoint=s3_env["AWS_S3_ENDPOINT"])
    assert done["changed"] is True and done["model_artifact"]["uri"] == OCI
    status, listing = call(registry_url, "GET", f"/model_versions/{done['model_version']['id']}/artifacts")
    assert [a["uri"] for a in listing["items"]] == [OCI]
    assert register(name=name, version="1.5", uri=OCI)["changed"] is False
