# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes client shared by the rhoai.gpuaas modules.

The client is built by kubernetes.core (``get_api_client``) so our modules accept exactly
the same connection options and ``K8S_AUTH_*`` variables as ``kubernetes.core.k8s``; that
is what AAP's "OpenShift or Kubernetes API Bearer Token" credential injects.

Public API (stable; other modules build on it):

``auth_argument_spec(**extra) -> dict``
    kubernetes.core's auth options (kubeconfig, context, host, api_key, validate_certs,
    ca_cert, client_cert, client_key, proxy, ...) merged with the module's own options.
``new_module(argument_spec, **kwargs)``
    The module object ``connect`` needs (kubernetes.core's wrapper of AnsibleModule).
``connect(module) -> Client``
    Builds the client and probes ``/version``; raises ``K8sUnreachable`` naming the host and
    the options to fix (``host``/``kubeconfig``/``context``) when the API cannot be reached.
``Client``: ``resource(api_version, kind)``, ``get(...)``, ``list(...)``, ``watch(...)``,
    ``patch(...)``, ``patch_scale(...)``, ``create(...)``, ``replace(...)``, ``delete(...)`` (all with
    ``dry_run``), ``get_raw(path)``, ``served_versions(group)``,
    plus ``dynamic`` (``kubernetes.dynamic.DynamicClient``) and ``host``.
``K8sError`` (base), ``K8sUnreachable``, ``NotServed`` (``not_served(...)`` builds it);
    ``is_not_found(exc)``, ``is_retriable(exc)``, ``is_rbac_refusal(exc)``,
    ``error_message(exc)`` (one line for an ApiException, no headers).
``standalone_client(kubeconfig="", context=None) -> Client``
    The same Client without Ansible (the GPU Switchboard notebook): a kubeconfig file, else
    the pod's service account in a cluster, else the default kubeconfig
    (``standalone_configuration`` makes that choice).

Objects are always plain ``dict`` (never ``ResourceInstance``), so module logic stays pure
and testable with literal dicts.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError

try:
    import urllib3
    from kubernetes import client as k8s_api
    from kubernetes import config as k8s_config
    from kubernetes import watch as k8s_watch
    from kubernetes.config import ConfigException
    from kubernetes.config.incluster_config import SERVICE_CERT_FILENAME, SERVICE_TOKEN_FILENAME, InClusterConfigLoader
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
except ImportError:
    # AnsibleK8SModule fails with missing_required_lib before any of this is used.
    urllib3 = None
    k8s_api = k8s_config = k8s_watch = InClusterConfigLoader = DynamicClient = None
    ConfigException = Exception

    class ResourceNotFoundError(Exception):  # type: ignore[no-redef]
        """Stands in for kubernetes' discovery error, which nothing raises without the library."""

    SERVICE_TOKEN_FILENAME = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    SERVICE_CERT_FILENAME = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

# (connect, read) seconds for ordinary requests: a dead API must not hang a module.
REQUEST_TIMEOUT = (10, 60)
# Probe timeout: fail fast with a clear message when the host is wrong.
PROBE_TIMEOUT = (5, 20)
# How long a module keeps trying to reach an API server that is restarting before it gives up.
CONNECT_RETRY_SECONDS = 20.0
RETRIABLE_STATUS = frozenset((0, 429, 500, 502, 503, 504))
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

CONNECTION_HINT = (
    "Check the module options host / kubeconfig / context "
    "(or K8S_AUTH_HOST / K8S_AUTH_KUBECONFIG / K8S_AUTH_CONTEXT)."
)


class K8sError(GpuaasError):
    """Base error of this module_utils; its message is safe to show (no secrets)."""


class K8sUnreachable(K8sError):
    """The API server could not be reached or the client could not be configured.

    ``retriable``: the server may answer a moment later (no connection, 5xx), unlike refused
    credentials or a broken configuration.
    """

    def __init__(self, msg: str, retriable: bool = False, **result: Any) -> None:
        super().__init__(msg, **result)
        self.retriable = retriable


class NotServed(K8sError):
    """The API server does not serve this kind in this API version (a typo, an older operator, a missing one)."""


# What a group's absence means, and which option chooses its version.
GROUP_HINTS = {
    "kueue.x-k8s.io": ("is Kueue installed?", "kueue_api_version"),
    "serving.kserve.io": ("is KServe installed?", None),
    "machine.openshift.io": ("is this OpenShift with the Machine API?", None),
    "datasciencecluster.opendatahub.io": ("is Red Hat OpenShift AI installed?", None),
}


def not_served(api_version: str, kind: str, served: List[str]) -> NotServed:
    """The error for a kind the cluster does not serve in ``api_version``, naming what it serves instead.

    Discovery raises ``ResourceNotFoundError`` with the lookup's keyword arguments, which tells
    the user neither what the cluster serves nor which option to change.
    """
    group = api_version.rpartition("/")[0]
    problem, option = GROUP_HINTS.get(group, ("", None))
    if not served:
        where = "the cluster serves no {0} API at all{1}".format(group or "core", ": " + problem if problem else "")
    else:
        where = "it serves {0}".format(", ".join("{0}/{1}".format(group, v) for v in served))
        if option:
            where += ": set {0} to one of them, or auto".format(option)
    return NotServed("The Kubernetes API does not serve {0} in {1} ({2})".format(kind, api_version, where))


# kubernetes.core is imported where a module needs it (options, module object, connection), so
# that ``Client`` and the waits built on it also run outside Ansible: the GPU Switchboard
# notebook uses them with nothing but the kubernetes library.


def auth_argument_spec(**extra: Any) -> Dict[str, Any]:
    """kubernetes.core's auth options plus the module's own (a fresh deep copy)."""
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(extra)
    return spec


def new_module(argument_spec: Dict[str, Any], **kwargs: Any) -> Any:
    """AnsibleK8SModule (checks the kubernetes library) without the pyyaml requirement."""
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

    kwargs.setdefault("check_pyyaml", False)
    return AnsibleK8SModule(argument_spec=argument_spec, **kwargs)


def is_not_found(exc: BaseException) -> bool:
    """True for an HTTP 404 from the API."""
    return getattr(exc, "status", None) == 404


def is_retriable(exc: BaseException) -> bool:
    """Connection errors, 429 and 5xx are worth retrying; 4xx answers are not."""
    status = getattr(exc, "status", None)
    if status is not None:
        return status in RETRIABLE_STATUS
    if urllib3 is not None and isinstance(exc, urllib3.exceptions.HTTPError):
        return True
    return isinstance(exc, (OSError, ConnectionError))


def is_rbac_refusal(exc: BaseException) -> bool:
    """True for a 403 from the API server's authorizer: the identity lacks the verb on the resource.

    An admission webhook may answer 403 too (Kueue's do); only the authorizer's Status message reads
    ``<resource> is forbidden: User "<name>" cannot <verb> ...``.
    """
    return getattr(exc, "status", None) == 403 and ' is forbidden: User "' in error_message(exc)


def error_message(exc: BaseException) -> str:
    """One readable line for an API error: HTTP status and the Status message from the body."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = None
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, TypeError, AttributeError):
            message = None
    if status is None:
        return _short_reason(exc)
    return "HTTP {0}: {1}".format(status, message or getattr(exc, "reason", None) or exc)


def _dry_run(dry_run: bool) -> Dict[str, str]:
    """The request argument for a server-side dry run (``?dryRun=All``), or nothing."""
    return {"dry_run": "All"} if dry_run else {}


def _ensure_dict(obj: Any) -> Dict[str, Any]:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


class Client:
    """Thin dict-in/dict-out wrapper over kubernetes.core's dynamic client.

    ``dynamic`` is the ``kubernetes.dynamic.DynamicClient`` (kubernetes.core's subclass);
    use it directly for anything not covered here.
    """

    def __init__(self, dynamic: Any, host: str) -> None:
        self.dynamic = dynamic
        self.host = host
        # The dynamic client's discovery cache is not thread-safe: a lookup that misses clears the
        # cache while another thread (a wait's second watch) reads it, which fails with KeyError 'resources'.
        self._discovery = threading.Lock()

    def resource(self, api_version: str, kind: str) -> Any:
        """Resource lookup by discovery; ``NotServed`` when the cluster does not serve it."""
        try:
            with self._discovery:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            group = api_version.rpartition("/")[0]
            raise not_served(api_version, kind, self.served_versions(group) if group else []) from None

    def get(
        self, api_version: str, kind: str, name: str, namespace: Optional[str] = None
    ) -> Optional[Dict[str, Any]]:
        """The object as a dict, or None when it does not exist."""
        res = self.resource(api_version, kind)
        try:
            obj = res.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        return _ensure_dict(obj)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: Optional[str] = None,
        label_selector: Optional[str] = None,
        field_selector: Optional[str] = None,
    ) -> Tuple[List[Dict[str, Any]], str]:
        """(items, list resourceVersion); the version is where a watch must start."""
        res = self.resource(api_version, kind)
        resp = res.get(
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            serialize=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        body = json.loads(resp.data)
        return body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion", "")

    def watch(
        self,
        api_version: str,
        kind: str,
        resource_version: str,
        timeout: int,
        namespace: Optional[str] = None,
        label_selector: Optional[str] = None,
        field_selector: Optional[str] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Events ``{"type", "object": dict}`` from ``resource_version`` for ``timeout`` s.

        BOOKMARK events are passed through (they only advance the resourceVersion).
        A 410 Gone arrives as an exception with ``status == 410``; the stream simply ends
        when the server closes it. The read timeout exceeds the server-side timeout so a
        silently dead connection cannot block forever.
        """
        res = self.resource(api_version, kind)
        watcher = k8s_watch.Watch()
        stream = watcher.stream(
            res.get,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version or None,
            allow_watch_bookmarks=True,
            serialize=False,
            timeout_seconds=int(timeout),
            _request_timeout=(REQUEST_TIMEOUT[0], int(timeout) + 30),
        )
        try:
            for event in stream:
                yield {"type": event["type"], "object": event["raw_object"]}
        finally:
            watcher.stop()

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: Optional[str],
        body: Any,
        content_type: str = MERGE_PATCH,
        dry_run: bool = False,
    ) -> Dict[str, Any]:
        """Patch (JSON merge patch by default) and return the object as the server has it.

        With ``dry_run`` the API server runs admission (webhooks included) and returns what
        it would store, without storing it: check mode asks the server, not a local guess.
        """
        res = self.resource(api_version, kind)
        obj = res.patch(
            body=body,
            name=name,
            namespace=namespace,
            content_type=content_type,
            _request_timeout=REQUEST_TIMEOUT,
            **_dry_run(dry_run)
        )
        return _ensure_dict(obj)

    def patch_scale(
        self, api_version: str, kind: str, name: str, namespace: Optional[str], replicas: int, dry_run: bool = False
    ) -> Dict[str, Any]:
        """Set ``spec.replicas`` through the ``scale`` subresource; returns the Scale."""
        res = self.resource(api_version, kind)
        path = res.path(name=name, namespace=namespace) + "/scale"
        resp = self.dynamic.request(
            "patch",
            path,
            body={"spec": {"replicas": int(replicas)}},
            content_type=MERGE_PATCH,
            serialize=False,
            _request_timeout=REQUEST_TIMEOUT,
            **_dry_run(dry_run)
        )
        return json.loads(resp.data)

    def create(self, body: Dict[str, Any], dry_run: bool = False,
               request_timeout: Tuple[int, int] = REQUEST_TIMEOUT) -> Dict[str, Any]:
        """Create ``body`` (apiVersion, kind and metadata.namespace taken from it)."""
        res = self.resource(body["apiVersion"], body["kind"])
        namespace = (body.get("metadata") or {}).get("namespace")
        obj = res.create(body=body, namespace=namespace, _request_timeout=request_timeout, **_dry_run(dry_run))
        return _ensure_dict(obj)

    def delete(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None,
               dry_run: bool = False) -> None:
        """Delete (foreground deletion left to the server's default); a missing object is not an error."""
        res = self.resource(api_version, kind)
        try:
            res.delete(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT, **_dry_run(dry_run))
        except Exception as exc:
            if not is_not_found(exc):
                raise

    def replace(self, body: Dict[str, Any], dry_run: bool = False) -> Dict[str, Any]:
        """PUT ``body``; with ``metadata.resourceVersion`` set, a concurrent change answers 409."""
        res = self.resource(body["apiVersion"], body["kind"])
        meta = body.get("metadata") or {}
        obj = res.replace(body=body, name=meta.get("name"), namespace=meta.get("namespace"),
                          _request_timeout=REQUEST_TIMEOUT, **_dry_run(dry_run))
        return _ensure_dict(obj)

    def get_raw(self, path: str) -> Dict[str, Any]:
        """GET an arbitrary path (discovery, /version) as a dict."""
        resp = self.dynamic.request("get", path, serialize=False, _request_timeout=REQUEST_TIMEOUT)
        return json.loads(resp.data)

    def served_versions(self, group: str) -> List[str]:
        """Versions the API server serves for ``group`` (empty if the group is unknown)."""
        try:
            body = self.get_raw("/apis/" + group)
        except Exception as exc:
            if is_not_found(exc):
                return []
            raise
        return [v.get("version") for v in body.get("versions") or [] if v.get("version")]


def connect(module: Any, retry_seconds: float = CONNECT_RETRY_SECONDS) -> Client:
    """Build the client from the module's auth options and check the API answers.

    A module that starts while kube-apiserver restarts (an upgrade, a control-plane node
    replaced) must not fail for it: unreachable or 5xx is retried with backoff for
    ``retry_seconds``. Refused credentials and configuration errors fail at once. Raises
    K8sUnreachable with the host and the options to fix; never the token or key material.
    """
    deadline = time.monotonic() + retry_seconds
    delay = 0.5
    while True:
        try:
            return _connect_once(module)
        except K8sUnreachable as exc:
            if not exc.retriable or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 4.0)


def _connect_once(module: Any) -> Client:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    try:
        k8s = get_api_client(module=module)
    except Exception as exc:
        # Discovery may already talk to the API here (kubernetes.core reads /version when
        # its discovery cache is cold), so connection errors surface here too.
        if is_retriable(exc):
            raise K8sUnreachable(
                "The Kubernetes API at {0} is unreachable: {1}. {2}".format(
                    _configured_host(module), _short_reason(exc), CONNECTION_HINT), retriable=True
            ) from exc
        if isinstance(exc, (CoreException, ConfigException, OSError, ValueError, TypeError)):
            raise K8sUnreachable(
                "Could not configure the Kubernetes client: {0}. {1}".format(exc, CONNECTION_HINT)
            ) from exc
        raise
    host = getattr(k8s.configuration, "host", None) or "<unknown host>"
    return _probe(Client(k8s.client, host), "api_key / client_cert / client_key / kubeconfig", CONNECTION_HINT)


def _probe(client: Client, credentials: str, hint: str) -> Client:
    """GET /version: the client, or K8sUnreachable naming the host and what to check."""
    try:
        resp = client.dynamic.request("get", "/version", serialize=False, _request_timeout=PROBE_TIMEOUT)
        json.loads(resp.data)
    except Exception as exc:
        error = _unreachable(exc, client.host, credentials, hint)
        if error is None:
            # An answer, even an odd one, proves the API is reachable.
            return client
        raise error from exc
    return client


def _unreachable(exc: BaseException, host: str, credentials: str, hint: str) -> Optional[K8sUnreachable]:
    """The error to raise for a failed first request; None when the API did answer (not 401/403/5xx)."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return K8sUnreachable("The Kubernetes API at {0} refused the credentials (HTTP {1}). Check {2}.".format(
            host, status, credentials))
    if status is not None and status not in RETRIABLE_STATUS:
        return None
    return K8sUnreachable("The Kubernetes API at {0} is unreachable: {1}. {2}".format(host, _short_reason(exc), hint),
                          retriable=True)


STANDALONE_HINT = ("Pass a kubeconfig file, or run in a workbench whose service account may read the "
                   "models (in a cluster, KUBERNETES_SERVICE_HOST is set).")


def standalone_configuration(kubeconfig: str = "", context: Optional[str] = None,
                             environ: Optional[Mapping[str, str]] = None,
                             token_file: str = SERVICE_TOKEN_FILENAME, cert_file: str = SERVICE_CERT_FILENAME) -> Any:
    """The kubernetes ``Configuration`` for a caller without Ansible, in the order a workbench needs.

    ``kubeconfig`` when given; else, in a pod (``KUBERNETES_SERVICE_HOST`` set), its service
    account's token and CA (``token_file``/``cert_file``); else ``KUBECONFIG`` or
    ``~/.kube/config``. A kubeconfig is never written back (no token refresh persisted).
    """
    environ = os.environ if environ is None else environ
    configuration = k8s_api.Configuration()
    try:
        if kubeconfig:
            path = os.path.expanduser(kubeconfig)
            if not os.path.isfile(path):
                raise K8sUnreachable("kubeconfig {0} is not a file. {1}".format(kubeconfig, STANDALONE_HINT))
            k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                        persist_config=False)
        elif environ.get("KUBERNETES_SERVICE_HOST"):
            InClusterConfigLoader(token_filename=token_file, cert_filename=cert_file,
                                  environ=environ).load_and_set(configuration)
        else:
            k8s_config.load_kube_config(config_file=environ.get("KUBECONFIG") or "~/.kube/config", context=context,
                                        client_configuration=configuration, persist_config=False)
    except ConfigException as exc:
        raise K8sUnreachable("Could not configure the Kubernetes client: {0}. {1}".format(exc, STANDALONE_HINT)) from exc
    return configuration


def standalone_client(kubeconfig: str = "", context: Optional[str] = None) -> Client:
    """A Client without Ansible (see ``standalone_configuration``), probed like ``connect``'s."""
    configuration = standalone_configuration(kubeconfig, context)
    credentials = "the kubeconfig's user" if kubeconfig else "the service account's token or the kubeconfig's user"
    try:
        # Discovery reads /version here unless its cache file (per host, in the temp dir) has it.
        dynamic = DynamicClient(k8s_api.ApiClient(configuration))
    except Exception as exc:
        error = _unreachable(exc, configuration.host, credentials, STANDALONE_HINT)
        if error is None:
            raise
        raise error from exc
    return _probe(Client(dynamic, configuration.host), credentials, STANDALONE_HINT)


def _configured_host(module: Any) -> str:
    """The host the user asked for (option or K8S_AUTH_HOST), for messages only."""
    return module.params.get("host") or os.environ.get("K8S_AUTH_HOST") or "<host from kubeconfig>"


def _short_reason(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error (the whole retry chain is unreadable)."""
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)
