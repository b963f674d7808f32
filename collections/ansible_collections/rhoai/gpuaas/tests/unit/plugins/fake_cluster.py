# -*- coding: utf-8 -*-
"""An in-memory API server for unit tests: the ``k8s_client.Client`` surface, honestly.

It honours what it is given - label and field selectors, resourceVersions (watches start
after them, a PUT with a stale one answers 409), ``dry_run`` (admission runs, nothing is
stored) - and records every write, so a test can assert what a module sent. ``on_write``
hooks play controllers (KServe deleting a stopped model's pods, Kueue admitting),
``refuse`` plays a webhook that says no, and ``forbid`` plays RBAC: a (verb, kind) pair
in it is answered as kube-apiserver's authorizer answers it (``rbac_refusal``).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import not_served

Obj = Dict[str, Any]
Key = Tuple[str, str, str, str]


class FakeApiError(Exception):
    """Shaped like kubernetes' ApiException: ``status``, ``reason`` and a JSON ``body``."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__("HTTP {0}: {1}".format(status, message))
        self.status = status
        self.reason = message
        self.body = json.dumps({"kind": "Status", "message": message})


def rbac_refusal(verb: str, resource: str, api_version: str, name: Optional[str] = None,
                 namespace: Optional[str] = None,
                 user: str = "system:serviceaccount:rhoai-gpuaas-jobs:gpuaas-handover") -> Exception:
    """kubernetes' own ApiException as the authorizer's 403 reaches a client: reason "Forbidden", the response
    headers in its str(), and the Status message naming the user, verb and resource only in its body.

    ``resource`` is the plural, with the subresource if any (``deployments/scale``).
    """
    from kubernetes.client.exceptions import ApiException

    group = api_version.rpartition("/")[0]
    plural = resource.split("/")[0]
    scope = 'in the namespace "{0}"'.format(namespace) if namespace else "at the cluster scope"
    message = '{0}{1} is forbidden: User "{2}" cannot {3} resource "{4}" in API group "{5}" {6}'.format(
        plural + ("." + group if group else ""), ' "{0}"'.format(name) if name else "", user, verb, resource,
        group, scope)
    error = ApiException(status=403, reason="Forbidden")
    error.headers = {"Audit-Id": "5d1c0f2e", "Content-Type": "application/json"}
    error.body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                             "message": message, "reason": "Forbidden",
                             "details": {"name": name, "group": group, "kind": plural}, "code": 403})
    return error


def _match_label(labels: Dict[str, str], term: str) -> bool:
    term = term.strip()
    match = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
    if match:
        values = {v.strip() for v in match.group(3).split(",")}
        inside = labels.get(match.group(1)) in values
        return inside if match.group(2) == "in" else match.group(1) not in labels or not inside
    if "!=" in term:
        key, value = term.split("!=", 1)
        return labels.get(key.strip()) != value.strip()
    if "=" in term:
        key, value = term.replace("==", "=").split("=", 1)
        return labels.get(key.strip()) == value.strip()
    if term.startswith("!"):
        return term[1:] not in labels
    return term in labels


def _split_selector(selector: str) -> List[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in parts + [current] if p.strip()]


def matches(obj: Obj, label_selector: Optional[str] = None, field_selector: Optional[str] = None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if label_selector and not all(_match_label(labels, t) for t in _split_selector(label_selector)):
        return False
    for term in _split_selector(field_selector or ""):
        path, value = term.split("=", 1)
        node: Any = obj
        for part in path.strip().split("."):
            node = (node or {}).get(part) if isinstance(node, dict) else None
        if str(node) != value.strip():
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeCluster:
    """The Client surface: get, list, watch, patch, patch_scale, create, replace, served_versions."""

    def __init__(self, served: Optional[Dict[str, List[str]]] = None) -> None:
        self.objects: Dict[Key, Obj] = {}
        self.events: List[Tuple[int, str, Key, Obj]] = []
        self.rv = itertools.count(100)
        self.last_rv = 99
        self.cond = threading.Condition()
        self.writes: List[Dict[str, Any]] = []
        self.served = served if served is not None else {"kueue.x-k8s.io": ["v1beta2", "v1beta1"]}
        self.on_write: List[Callable[["FakeCluster", str, Obj], None]] = []
        self.refuse: Dict[Tuple[str, str], str] = {}
        self.forbid: Set[Tuple[str, str]] = set()
        self.host = "https://fake.invalid:6443"

    # ------------------------------------------------------------ store

    @staticmethod
    def key(obj: Obj) -> Key:
        meta = obj.get("metadata") or {}
        return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])

    def add(self, *objs: Obj) -> None:
        for obj in objs:
            self._store("ADDED", copy.deepcopy(obj))

    def _store(self, event: str, obj: Obj) -> Obj:
        with self.cond:
            meta = obj.setdefault("metadata", {})
            self.last_rv = next(self.rv)
            meta["resourceVersion"] = str(self.last_rv)
            meta.setdefault("uid", "uid-" + meta["name"])
            key = self.key(obj)
            if event == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            self.events.append((self.last_rv, event, key, copy.deepcopy(obj)))
            self.cond.notify_all()
        return copy.deepcopy(obj)

    def update(self, obj: Obj) -> None:
        """A controller's write (not recorded as the module's)."""
        self._store("MODIFIED", copy.deepcopy(obj))

    def remove(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> None:
        obj = self.objects.get((api_version, kind, namespace or "", name))
        if obj is not None:
            self._store("DELETED", copy.deepcopy(obj))

    def find(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[Obj]:
        obj = self.objects.get((api_version, kind, namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def _admit(self, verb: str, obj: Obj) -> None:
        message = self.refuse.get((obj["kind"], obj["metadata"]["name"])) or self.refuse.get((obj["kind"], "*"))
        if message:
            raise FakeApiError(403, 'admission webhook denied the request: {0}'.format(message))

    def _authorize(self, verb: str, api_version: str, kind: str, name: Optional[str] = None,
                   namespace: Optional[str] = None, subresource: str = "") -> None:
        """``forbid`` holds (verb, kind), or (verb, "Kind/subresource"): refused as RBAC refuses."""
        if (verb, kind + ("/" + subresource if subresource else "")) in self.forbid:
            resource = kind.lower() + "s" + ("/" + subresource if subresource else "")
            raise rbac_refusal(verb, resource, api_version, name, namespace)

    def _served(self, api_version: str, kind: str) -> None:
        """What ``Client.resource`` raises for a version the cluster does not serve (groups not listed: all served)."""
        group, _slash, version = api_version.rpartition("/")
        if group in self.served and version not in self.served[group]:
            raise not_served(api_version, kind, self.served[group])

    # ------------------------------------------------------------ Client surface

    def get(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[Obj]:
        self._served(api_version, kind)
        self._authorize("get", api_version, kind, name, namespace)
        return self.find(api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None, label_selector: Optional[str] = None,
             field_selector: Optional[str] = None) -> Tuple[List[Obj], str]:
        self._served(api_version, kind)
        self._authorize("list", api_version, kind, None, namespace)
        with self.cond:
            items = [copy.deepcopy(o) for (av, k, ns, _name), o in sorted(self.objects.items())
                     if av == api_version and k == kind and (namespace is None or ns == namespace)
                     and matches(o, label_selector, field_selector)]
            return items, str(self.last_rv)

    def watch(self, api_version: str, kind: str, resource_version: str, timeout: int, namespace: Optional[str] = None,
              label_selector: Optional[str] = None, field_selector: Optional[str] = None) -> Iterator[Obj]:
        self._served(api_version, kind)
        self._authorize("watch", api_version, kind, None, namespace)
        since = int(resource_version or 0)
        deadline = time.monotonic() + timeout
        sent = 0
        while True:
            with self.cond:
                fresh = [e for e in self.events if e[0] > since][sent:]
                if not fresh:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.cond.wait(min(left, 0.05))
                    continue
            for _rv, event, (av, k, ns, _name), obj in fresh:
                sent += 1
                if av == api_version and k == kind and (namespace is None or ns == namespace) \
                        and matches(obj, label_selector, field_selector):
                    yield {"type": event, "object": copy.deepcopy(obj)}

    def _write(self, verb: str, obj: Obj, dry_run: bool, **details: Any) -> Obj:
        self._admit(verb, obj)
        self.writes.append(dict(details, verb=verb, dry_run=dry_run, kind=obj["kind"], name=obj["metadata"]["name"]))
        if dry_run:
            return copy.deepcopy(obj)
        stored = self._store("MODIFIED" if verb != "create" else "ADDED", obj)
        for hook in list(self.on_write):
            hook(self, verb, copy.deepcopy(stored))
        return stored

    def patch(self, api_version: str, kind: str, name: str, namespace: Optional[str], body: Any,
              content_type: str = "application/merge-patch+json", dry_run: bool = False) -> Obj:
        assert content_type == "application/merge-patch+json", content_type
        self._served(api_version, kind)
        self._authorize("patch", api_version, kind, name, namespace)
        current = self.find(api_version, kind, name, namespace)
        if current is None:
            raise FakeApiError(404, '{0} "{1}" not found'.format(kind, name))
        return self._write("patch", merge_patch(current, body), dry_run, body=body)

    def patch_scale(self, api_version: str, kind: str, name: str, namespace: Optional[str], replicas: int,
                    dry_run: bool = False) -> Obj:
        self._served(api_version, kind)
        self._authorize("patch", api_version, kind, name, namespace, subresource="scale")
        current = self.find(api_version, kind, name, namespace)
        if current is None:
            raise FakeApiError(404, '{0} "{1}" not found'.format(kind, name))
        updated = merge_patch(current, {"spec": {"replicas": int(replicas)}})
        self._write("scale", updated, dry_run, replicas=int(replicas))
        # autoscaling/v1 Scale: spec.replicas is omitempty, so 0 is absent from the answer
        return {"kind": "Scale", "spec": {"replicas": int(replicas)} if int(replicas) else {}}

    def create(self, body: Obj, dry_run: bool = False, request_timeout: Any = None) -> Obj:
        self._served(body["apiVersion"], body["kind"])
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        self._authorize("create", obj["apiVersion"], obj["kind"], None, meta.get("namespace"))
        if not meta.get("name"):
            meta["name"] = meta.get("generateName", "obj-") + "x1y2z"
        if self.find(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")):
            raise FakeApiError(409, '{0} "{1}" already exists'.format(obj["kind"], meta["name"]))
        namespaces = [k[3] for k in self.objects if k[:2] == ("v1", "Namespace")]
        if meta.get("namespace") and namespaces and meta["namespace"] not in namespaces:
            # Only when the test stored Namespaces: most tests do not model them.
            raise FakeApiError(404, 'namespaces "{0}" not found'.format(meta["namespace"]))
        return self._write("create", obj, dry_run, body=body)

    def replace(self, body: Obj, dry_run: bool = False) -> Obj:
        self._served(body["apiVersion"], body["kind"])
        meta = body.get("metadata") or {}
        self._authorize("update", body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"))
        current = self.find(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            raise FakeApiError(404, '{0} "{1}" not found'.format(body["kind"], meta["name"]))
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise FakeApiError(409, "the object has been modified; please apply your changes to the latest version")
        return self._write("replace", copy.deepcopy(body), dry_run, body=body)

    def delete(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None,
               dry_run: bool = False) -> None:
        self._served(api_version, kind)
        self._authorize("delete", api_version, kind, name, namespace)
        current = self.find(api_version, kind, name, namespace)
        self.writes.append({"verb": "delete", "dry_run": dry_run, "kind": kind, "name": name})
        if current is not None and not dry_run:
            self._store("DELETED", current)
            for hook in list(self.on_write):
                hook(self, "delete", current)

    def served_versions(self, group: str) -> List[str]:
        return list(self.served.get(group, []))

    def written(self, verb: Optional[str] = None, dry_run: Optional[bool] = None) -> List[Dict[str, Any]]:
        return [w for w in self.writes if (verb is None or w["verb"] == verb) and (dry_run is None or w["dry_run"] == dry_run)]
