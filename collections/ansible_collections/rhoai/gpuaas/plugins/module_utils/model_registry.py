# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registering a model, its version and its artifact in a Kubeflow Model Registry (REST v1alpha3).

Spoken directly over HTTP with ansible-core's ``Request`` rather than the PyPI ``model-registry``
client: that client is asynchronous (aiohttp), pulls a dozen dependencies onto the host, refuses
an existing version instead of reconciling it, and has no dry run; three finds and at most three
writes are all a declarative, check-mode-capable registration needs.

What is written follows what RHOAI 3.0's dashboard writes when a user registers a model
(odh-dashboard v3.0.0, frontend/src/pages/modelRegistry/screens/RegisterModel/utils.ts and
frontend/src/concepts/modelRegistry/utils.ts): objects in state ``LIVE``, the artifact named after
the version, its ``storageKey`` the data connection's name, and for object storage the location
in the URI itself: ``s3://<bucket>/<path>?endpoint=<endpoint>&defaultRegion=<region>``
(form-encoded query). The dashboard's "Deploy" reads the endpoint, bucket, region and path back
from that URI and preselects the connection named by ``storageKey``. Other URIs (``oci://``,
``https://``, ``hf://``) are stored exactly as given.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any, Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit

from ansible.module_utils.urls import Request

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError

API_PATH = "/api/model_registry/v1alpha3"
LIVE = "LIVE"
MODEL_ARTIFACT = "model-artifact"
# Enough for any version: the dashboard makes one artifact per version.
ARTIFACT_PAGE = 100


def base_url(url: str) -> str:
    """The registry's base URL without a trailing slash or the API path, checked."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GpuaasError(
            "url must be the Model Registry's REST address, http(s)://host[:port] (on RHOAI the route "
            "https://<registry>-rest.<apps domain>), got {0!r}".format(url))
    if parts.query or parts.fragment:
        raise GpuaasError("url must not carry a query or fragment, got {0!r}".format(url))
    path = parts.path.rstrip("/")
    if path.endswith(API_PATH):
        path = path[:-len(API_PATH)]
    return "{0}://{1}{2}".format(parts.scheme, parts.netloc, path)


def artifact_uri(uri: str, s3_endpoint: Optional[str], s3_region: Optional[str]) -> str:
    """The artifact URI as RHOAI's dashboard records it; input errors name the option to fix.

    The S3 options are ignored for other schemes, so that a loop over a models table can pass
    the data connection's endpoint to every model, modelcars included.
    """
    uri = (uri or "").strip()
    scheme = urlsplit(uri).scheme
    if not scheme or "://" not in uri:
        raise GpuaasError(
            "uri must carry its scheme: s3://<bucket>/<path> for object storage, oci://<registry>/<image>:<tag> "
            "for a modelcar, got {0!r}".format(uri))
    if scheme != "s3":
        return uri
    location, query = (uri[len("s3://"):].split("?", 1) + [""])[:2]
    bucket, path = (location.split("/", 1) + [""])[:2]
    path = path.strip("/")
    if "://" in location:
        raise GpuaasError(
            "uri {0!r} nests a second scheme inside s3://: give a modelcar as oci://... as is, and object "
            "storage as s3://<bucket>/<path>".format(uri))
    if not bucket or not path:
        raise GpuaasError("uri {0!r} needs a bucket and a path: s3://<bucket>/<path>".format(uri))
    given = dict(parse_qsl(query))
    endpoint = s3_endpoint or given.get("endpoint")
    if s3_endpoint and given.get("endpoint") and given["endpoint"] != s3_endpoint:
        raise GpuaasError("uri names endpoint {0!r} and s3_endpoint is {1!r}; give one".format(
            given["endpoint"], s3_endpoint))
    if not endpoint:
        raise GpuaasError(
            "s3_endpoint is required with an s3:// uri: RHOAI reads the S3 endpoint from the registered URI "
            "(the data connection's AWS_S3_ENDPOINT, e.g. https://s3.us-east-1.amazonaws.com)")
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise GpuaasError("s3_endpoint must be an http(s):// URL, got {0!r}".format(endpoint))
    params = [("endpoint", endpoint)]
    region = s3_region or given.get("defaultRegion")
    if region:
        params.append(("defaultRegion", region))
    return "s3://{0}/{1}?{2}".format(bucket, path, urlencode(params))


def metadata_values(values: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, str]]:
    """Custom properties as the API types them; values become strings, as the dashboard's are."""
    out = {}
    for key, value in (values or {}).items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[str(key)] = {"metadataType": "MetadataStringValue", "string_value": text}
    return out


def changed_fields(current: Dict[str, Any], desired: Dict[str, Any]) -> Dict[str, Any]:
    """The fields of ``desired`` that ``current`` lacks or holds differently.

    Custom properties are merged: keys the task does not name (set in the dashboard, say) stay,
    and the whole map is sent because a PATCH replaces it. The name is the object's identity
    (it was found by it) and the API's update types do not accept it.
    """
    patch = {}
    for key, value in desired.items():
        if key == "name":
            continue
        if key == "customProperties":
            have = current.get(key) or {}
            if any(have.get(k) != v for k, v in value.items()):
                patch[key] = dict(have, **value)
        elif current.get(key) != value:
            patch[key] = value
    return patch


class Client:
    """JSON over HTTP(S) to one registry; every failure becomes one line naming the option to fix."""

    def __init__(self, url: str, api_key: Optional[str], validate_certs: bool, ca_path: Optional[str],
                 timeout: int) -> None:
        # The socket refuses a negative timeout with a bare ValueError, and 0 makes it non-blocking.
        if timeout <= 0:
            raise GpuaasError("request_timeout must be a positive number of seconds, got {0}".format(timeout))
        self.base = base_url(url)
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = "Bearer " + api_key
        # No redirects: an OAuth proxy answers an unauthenticated call with one to its login page.
        self._request = Request(headers=headers, timeout=timeout, validate_certs=validate_certs, ca_path=ca_path,
                                follow_redirects="none", use_netrc=False)
        self.has_token = bool(api_key)

    def find(self, path: str, query: Dict[str, str], what: str) -> Optional[Dict[str, Any]]:
        """GET one object, or None when the registry answers that it has none."""
        return self._call("GET", path, query, None, what, missing_ok=True)

    def get(self, path: str, query: Dict[str, str], what: str) -> Dict[str, Any]:
        return self._call("GET", path, query, None, what)

    def post(self, path: str, body: Dict[str, Any], what: str) -> Dict[str, Any]:
        return self._call("POST", path, None, body, what)

    def patch(self, path: str, body: Dict[str, Any], what: str) -> Dict[str, Any]:
        return self._call("PATCH", path, None, body, what)

    def _call(self, method: str, path: str, query: Optional[Dict[str, str]], body: Optional[Dict[str, Any]],
              what: str, missing_ok: bool = False) -> Any:
        url = self.base + API_PATH + path + ("?" + urlencode(query) if query else "")
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            resp = self._request.open(method, url, data=data, headers=headers)
            raw = resp.read()
        except HTTPError as exc:
            if missing_ok and exc.code == 404 and _registry_error(exc) is not None:
                return None
            raise GpuaasError(self._http_failure(exc, method, path, what)) from None
        except URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise GpuaasError(self._tls_failure(exc.reason)) from None
            raise GpuaasError("url: cannot reach the Model Registry at {0} ({1}): check url, the registry's REST "
                              "route".format(self.base, exc.reason)) from None
        except ssl.SSLError as exc:  # a TLS failure after the handshake (while reading) is not wrapped
            raise GpuaasError(self._tls_failure(exc)) from None
        except (socket.timeout, TimeoutError):
            raise GpuaasError("url: the Model Registry at {0} did not answer {1} {2} within request_timeout={3}s"
                              .format(self.base, method, path, self.timeout)) from None
        except (ConnectionError, OSError) as exc:
            raise GpuaasError("url: cannot reach the Model Registry at {0} ({1}): check url".format(
                self.base, exc)) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise GpuaasError(
                "url: {0} answered {1} {2} with something other than JSON ({3!r}...): not the Model Registry "
                "REST API; give the registry's REST route".format(self.base, method, path, raw[:60])) from None

    def _tls_failure(self, exc: Any) -> str:
        return ("url: TLS verification of {0} failed ({1}): set ca_path to the CA bundle that signed the "
                "registry's certificate (on OpenShift the ingress CA), or validate_certs=false to skip the check "
                "(not recommended)".format(self.base, exc))

    def _http_failure(self, exc: HTTPError, method: str, path: str, what: str) -> str:
        code = exc.code
        where = "the Model Registry at {0}".format(self.base)
        if 300 <= code < 400:
            return ("{0} redirected {1} {2} to {3!r}: an authenticating proxy sends calls without a valid "
                    "token to its login page; set api_key to a bearer token (e.g. `oc whoami -t`)".format(
                        where, method, path, exc.headers.get("Location") if exc.headers else None))
        if code == 401:
            return ("{0} answered 401 Unauthorized: {1}".format(
                where, "api_key was refused (expired or for another cluster?)" if self.has_token
                else "set api_key to a bearer token the registry's proxy accepts (e.g. `oc whoami -t`)"))
        message = _registry_error(exc)
        if code == 403:
            return ("{0} answered 403 Forbidden while {1}: the token's user may not use this registry; grant "
                    "it access (RHOAI: the registry's user group or a RoleBinding){2}".format(
                        where, what, ": " + message if message else ""))
        if code == 404 and message is None:
            return ("url: {0} has no {1} (HTTP 404): it does not serve the Model Registry REST API {2}; give "
                    "the registry's REST route".format(self.base, API_PATH + path.split("?")[0], API_PATH))
        return "{0} refused {1} ({2} {3}): HTTP {4}: {5}".format(
            where, what, method, path, code, message or exc.reason)


def _registry_error(exc: HTTPError) -> Optional[str]:
    """The registry's own error message ({"code", "message"}), or None for anything else."""
    try:
        body = json.loads(exc.read() or b"")
    except (ValueError, OSError, AttributeError):
        return None
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return None


class Registration:
    """The three objects a task declares, found, compared and written in order."""

    KINDS = ("registered_model", "model_version", "model_artifact")

    def __init__(self, params: Dict[str, Any]) -> None:
        for option in ("name", "version"):
            if not (params[option] or "").strip():
                raise GpuaasError("{0} must not be empty".format(option))
        self.name = params["name"]
        self.version = params["version"]
        self.artifact_name = params["artifact_name"] or params["version"]
        self.desired = {
            "registered_model": _given(
                name=self.name, state=LIVE, description=params["description"], owner=params["owner"],
                customProperties=metadata_values(params["model_properties"]) or None),
            "model_version": _given(
                name=self.version, state=LIVE, description=params["version_description"], author=params["author"],
                customProperties=metadata_values(params["version_properties"]) or None),
            "model_artifact": _given(
                artifactType=MODEL_ARTIFACT, name=self.artifact_name, state=LIVE,
                uri=artifact_uri(params["uri"], params["s3_endpoint"], params["s3_region"]),
                storageKey=params["storage_key"], modelFormatName=params["model_format_name"],
                modelFormatVersion=params["model_format_version"]),
        }

    def current(self, client: Client) -> Dict[str, Optional[Dict[str, Any]]]:
        """What the registry holds now for this model, version and artifact (None where absent)."""
        found: Dict[str, Optional[Dict[str, Any]]] = dict.fromkeys(self.KINDS)
        model = client.find("/registered_model", {"name": self.name},
                            "looking up registered model {0!r}".format(self.name))
        found["registered_model"] = model
        if model is None:
            return found
        version = client.find("/model_version", {"name": self.version, "parentResourceId": model["id"]},
                              "looking up version {0!r} of model {1!r}".format(self.version, self.name))
        found["model_version"] = version
        if version is not None:
            found["model_artifact"] = self._artifact_of(client, version)
        return found

    def _artifact_of(self, client: Client, version: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The version's model artifact: the one named ``artifact_name``, else its only one."""
        listing = client.get("/model_versions/{0}/artifacts".format(version["id"]),
                             {"artifactType": MODEL_ARTIFACT, "pageSize": str(ARTIFACT_PAGE)},
                             "listing the artifacts of version {0!r} of model {1!r}".format(self.version, self.name))
        items = [a for a in listing.get("items") or [] if a.get("artifactType", MODEL_ARTIFACT) == MODEL_ARTIFACT]
        named = [a for a in items if a.get("name") == self.artifact_name]
        if named:
            return named[0]
        if len(items) == 1:
            return items[0]
        if items:
            raise GpuaasError(
                "version {0!r} of model {1!r} has {2} model artifacts ({3}) and none named {4!r}: set artifact_name "
                "to the one to manage".format(self.version, self.name, len(items),
                                              ", ".join(sorted(str(a.get("name")) for a in items)),
                                              self.artifact_name))
        return None

    def plan(self, current: Dict[str, Optional[Dict[str, Any]]]) -> List[Tuple[str, str, Dict[str, Any]]]:
        """(kind, "create" or "update", fields) for each object that must be written, in order."""
        steps = []
        for kind in self.KINDS:
            have = current[kind]
            if have is None:
                steps.append((kind, "create", dict(self.desired[kind])))
            else:
                fields = changed_fields(have, self.desired[kind])
                if fields:
                    steps.append((kind, "update", fields))
        return steps

    def apply(self, client: Client, current: Dict[str, Optional[Dict[str, Any]]],
              steps: List[Tuple[str, str, Dict[str, Any]]]) -> Dict[str, Optional[Dict[str, Any]]]:
        """Write the planned steps; each object is created under the one before it."""
        done = dict(current)
        for kind, action, fields in steps:
            label = "{0} {1!r}".format(kind.replace("_", " "), fields.get("name") or (current[kind] or {}).get("name"))
            what = "{0} {1}".format("creating" if action == "create" else "updating", label)
            if action == "update":
                collection = {"registered_model": "/registered_models", "model_version": "/model_versions",
                              "model_artifact": "/model_artifacts"}[kind]
                done[kind] = client.patch("{0}/{1}".format(collection, current[kind]["id"]), fields, what)
            elif kind == "registered_model":
                done[kind] = client.post("/registered_models", fields, what)
            elif kind == "model_version":
                model_id = done["registered_model"]["id"]
                done[kind] = client.post("/registered_models/{0}/versions".format(model_id),
                                         dict(fields, registeredModelId=model_id), what)
            else:
                done[kind] = client.post("/model_versions/{0}/artifacts".format(done["model_version"]["id"]),
                                         fields, what)
        return done

    def preview(self, current: Dict[str, Optional[Dict[str, Any]]],
                steps: List[Tuple[str, str, Dict[str, Any]]]) -> Dict[str, Optional[Dict[str, Any]]]:
        """What the objects would look like after ``steps`` (check mode: no ids for new ones)."""
        after = dict(current)
        for kind, _action, fields in steps:
            after[kind] = dict(current[kind] or {}, **fields)
        return after

    def view(self, objects: Dict[str, Optional[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
        """The managed fields of each object, for the diff (empty when absent)."""
        return {kind: {k: (objects[kind] or {}).get(k) for k in self.desired[kind]} if objects[kind] else {}
                for kind in self.KINDS}


def _given(**fields: Any) -> Dict[str, Any]:
    """The fields the task sets; options left out are left as the registry has them."""
    return {k: v for k, v in fields.items() if v is not None}


def run(module: Any) -> Dict[str, Any]:
    """The module's body: find, plan, write unless in check mode, report."""
    params = module.params
    registration = Registration(params)
    client = Client(params["url"], params["api_key"], params["validate_certs"], params["ca_path"],
                    params["request_timeout"])
    if params["api_key"] and client.base.startswith("http://"):
        module.warn("api_key is sent to {0} over plain HTTP".format(client.base))
    current = registration.current(client)
    steps = registration.plan(current)
    if module.check_mode:
        after = registration.preview(current, steps)
    else:
        after = registration.apply(client, current, steps)
    result: Dict[str, Any] = {
        "changed": bool(steps),
        "url": client.base,
        "changes": ["{0} {1}: {2}".format(action, kind, ", ".join(sorted(fields))) for kind, action, fields in steps],
    }
    result.update({kind: after[kind] for kind in registration.KINDS})
    if module._diff:
        result["diff"] = {"before": registration.view(current), "after": registration.view(after)}
    return result
