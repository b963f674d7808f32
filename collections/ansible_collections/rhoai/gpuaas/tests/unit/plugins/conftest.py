# -*- coding: utf-8 -*-
"""A fake Model Registry REST server (v1alpha3) on 127.0.0.1, for the model_register unit tests.

It speaks HTTP for real, so the module's own HTTP client, headers, TLS and error handling are
exercised. It keeps what the tests need of the real server (kubeflow/model-registry v0.3.0,
internal/server/openapi): JSON errors ``{"code", "message"}``, 404 for a find that matches
nothing, plain-text 404 for an unknown path, 400 for a body field the endpoint's type does not
have (the real decoder disallows unknown fields). It checks what it is sent and records it.
"""

from __future__ import annotations

import datetime
import http.server
import itertools
import json
import ssl
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import parse_qs, urlsplit

import pytest

API = "/api/model_registry/v1alpha3"
_BASE = {"description", "externalId", "customProperties"}
_MODEL = _BASE | {"owner", "state", "readme", "maturity", "language", "tasks", "provider", "logo", "license",
                  "licenseLink", "libraryName"}
_VERSION = _BASE | {"state", "author"}
_ARTIFACT = _BASE | {"artifactType", "modelFormatName", "storageKey", "storagePath", "modelFormatVersion",
                     "serviceAccountName", "modelSourceKind", "modelSourceClass", "modelSourceGroup", "modelSourceId",
                     "modelSourceName", "uri", "state"}
# Fields each endpoint accepts (the create types add the name, and the version its parent).
ACCEPTED = {
    ("POST", "registered_models"): _MODEL | {"name"},
    ("PATCH", "registered_models"): _MODEL,
    ("POST", "versions"): _VERSION | {"name", "registeredModelId"},
    ("PATCH", "model_versions"): _VERSION,
    ("POST", "artifacts"): _ARTIFACT | {"name", "id"},
    ("PATCH", "model_artifacts"): _ARTIFACT,
}


class FakeRegistry:
    """State, request log and knobs of the fake server."""

    def __init__(self) -> None:
        self.models: Dict[str, Dict[str, Any]] = {}
        self.versions: Dict[str, Dict[str, Any]] = {}
        self.artifacts: Dict[str, Dict[str, Any]] = {}
        self.links: Dict[str, List[str]] = {}  # version id -> artifact ids
        self.requests: List[Dict[str, Any]] = []
        self.violations: List[str] = []  # requests that broke the API's rules; checked after each test
        self.token: Optional[str] = None  # when set, requests need "Authorization: Bearer <token>"
        self.redirect_unauthenticated = False  # answer like an OAuth proxy: 302 to its login page
        self.fail: Dict[str, int] = {}  # "<METHOD> <collection>" -> status to answer
        self.url = ""
        self._ids = itertools.count(1)

    def writes(self) -> List[Dict[str, Any]]:
        return [r for r in self.requests if r["method"] != "GET"]

    def new_id(self) -> str:
        return str(next(self._ids))

    def add_model(self, name: str, **fields: Any) -> Dict[str, Any]:
        model = _stamp({"id": self.new_id(), "name": name, "state": "LIVE", "customProperties": {}, **fields})
        self.models[model["id"]] = model
        return model

    def add_version(self, model: Dict[str, Any], name: str, **fields: Any) -> Dict[str, Any]:
        version = _stamp({"id": self.new_id(), "name": name, "registeredModelId": model["id"], "state": "LIVE",
                          "customProperties": {}, **fields})
        self.versions[version["id"]] = version
        self.links[version["id"]] = []
        return version

    def add_artifact(self, version: Dict[str, Any], name: str, **fields: Any) -> Dict[str, Any]:
        artifact = _stamp({"id": self.new_id(), "name": name, "artifactType": "model-artifact", "state": "LIVE",
                           "customProperties": {}, **fields})
        self.artifacts[artifact["id"]] = artifact
        self.links[version["id"]].append(artifact["id"])
        return artifact


def _stamp(obj: Dict[str, Any]) -> Dict[str, Any]:
    now = str(int(datetime.datetime.now().timestamp() * 1000))
    obj.setdefault("createTimeSinceEpoch", now)
    obj["lastUpdateTimeSinceEpoch"] = now
    return obj


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, {"code": http.HTTPStatus(status).phrase, "message": message})


def _handler(reg: FakeRegistry) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            record = {"method": self.command, "path": parts.path,
                      "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                      "headers": {k.lower(): v for k, v in self.headers.items()},
                      "body": json.loads(raw) if raw else None}
            reg.requests.append(record)
            try:
                self._check(record)
                status, body = _route(reg, record)
                self._send(status, json.dumps(body).encode(), "application/json")
            except _Answer as ans:
                body = ans.body if isinstance(ans.body, bytes) else json.dumps(ans.body).encode()
                ctype = "text/plain; charset=utf-8" if isinstance(ans.body, bytes) else "application/json"
                self._send(ans.status, body, ctype, ans.headers)
            except AssertionError as exc:  # a request the real server would not get from a correct client
                reg.violations.append("{0} {1}: {2}".format(self.command, self.path, exc))
                self._send(500, b"fake registry: unexpected request\n", "text/plain")

        def _check(self, record: Dict[str, Any]) -> None:
            if reg.token and record["headers"].get("authorization") != "Bearer " + reg.token:
                if reg.redirect_unauthenticated:
                    raise _Answer(302, b"", {"Location": "https://oauth.example/oauth/start"})
                raise _Answer(401, b"Unauthorized\n")
            assert record["headers"].get("accept") == "application/json", record
            if record["method"] in ("POST", "PATCH"):
                assert record["headers"].get("content-type") == "application/json", record

        def _send(self, status: int, body: bytes, ctype: str, headers: Optional[Dict[str, str]] = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _serve

    return Handler


def _accept(record: Dict[str, Any], key: tuple) -> Dict[str, Any]:
    body = record["body"]
    assert isinstance(body, dict), record
    unknown = sorted(set(body) - ACCEPTED[key])
    if unknown:
        raise _error(400, "json: unknown field \"{0}\"".format(unknown[0]))
    return body


def _route(reg: FakeRegistry, record: Dict[str, Any]) -> tuple:
    method, query = record["method"], record["query"]
    if not record["path"].startswith(API + "/"):
        raise _Answer(404, b"404 page not found\n")
    parts = record["path"][len(API) + 1:].split("/")
    collection = parts[0] if len(parts) < 3 else parts[2]
    status = reg.fail.get("{0} {1}".format(method, collection))
    if status:
        raise _error(status, "injected failure")
    if method == "GET" and parts == ["registered_model"]:
        found = [m for m in reg.models.values() if m["name"] == query.get("name")]
        if not found:
            raise _error(404, "no registered model found for name={0}".format(query.get("name")))
        return 200, found[0]
    if method == "GET" and parts == ["model_version"]:
        assert set(query) == {"name", "parentResourceId"}, query
        found = [v for v in reg.versions.values()
                 if v["name"] == query["name"] and v["registeredModelId"] == query["parentResourceId"]]
        if not found:
            raise _error(404, "no model version found")
        return 200, found[0]
    if method == "GET" and len(parts) == 3 and parts[0] == "model_versions" and parts[2] == "artifacts":
        if parts[1] not in reg.versions:
            raise _error(404, "model version not found")
        items = [reg.artifacts[i] for i in reg.links[parts[1]]]
        if query.get("artifactType"):
            items = [a for a in items if a["artifactType"] == query["artifactType"]]
        return 200, {"items": items, "size": len(items), "pageSize": int(query.get("pageSize", 20)),
                     "nextPageToken": ""}
    if method == "POST" and parts == ["registered_models"]:
        body = _accept(record, ("POST", "registered_models"))
        if any(m["name"] == body.get("name") for m in reg.models.values()):
            raise _error(409, "registered model already exists")
        return 201, reg.add_model(**body)
    if method == "POST" and len(parts) == 3 and parts[0] == "registered_models" and parts[2] == "versions":
        body = _accept(record, ("POST", "versions"))
        assert body.get("registeredModelId") == parts[1], record
        fields = {k: v for k, v in body.items() if k not in ("name", "registeredModelId")}
        return 201, reg.add_version(reg.models[parts[1]], body["name"], **fields)
    if method == "POST" and len(parts) == 3 and parts[0] == "model_versions" and parts[2] == "artifacts":
        body = _accept(record, ("POST", "artifacts"))
        assert body.get("artifactType") == "model-artifact", record
        fields = {k: v for k, v in body.items() if k != "name"}
        return 201, reg.add_artifact(reg.versions[parts[1]], body["name"], **fields)
    if method == "PATCH" and len(parts) == 2:
        store = {"registered_models": reg.models, "model_versions": reg.versions,
                 "model_artifacts": reg.artifacts}.get(parts[0])
        if store is None or parts[1] not in store:
            raise _error(404, "not found")
        store[parts[1]].update(_accept(record, ("PATCH", parts[0])))
        return 200, _stamp(store[parts[1]])
    raise _Answer(404, b"404 page not found\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(reg: FakeRegistry, context: Optional[ssl.SSLContext]) -> Iterator[FakeRegistry]:
    server = _Server(("127.0.0.1", 0), _handler(reg))
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if context else "http"
    reg.url = "{0}://127.0.0.1:{1}".format(scheme, server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield reg
    finally:
        server.shutdown()
        server.server_close()
    assert not reg.violations, reg.violations


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    yield from _serve(FakeRegistry(), None)


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[FakeRegistry]:
    """The fake over HTTPS with a certificate from a throwaway CA; ``reg.ca_path`` is that CA."""
    ca_pem, cert_pem, key_pem = _throwaway_ca_and_cert()
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    reg = FakeRegistry()
    reg.ca_path = str(tmp_path / "ca.pem")
    yield from _serve(reg, context)


def _throwaway_ca_and_cert() -> tuple:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("fake-ca")).issuer_name(name("fake-ca"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
