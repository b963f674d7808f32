# -*- coding: utf-8 -*-
"""Client.resource: a kind the cluster does not serve is named, with what it serves and the option to change."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import pytest
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import Client, NotServed, not_served


class Discovery:
    """The dynamic client's ``resources`` and ``request``, as a cluster serving ``served`` answers them."""

    def __init__(self, served: Dict[str, List[str]]) -> None:
        self.served = served
        self.resources = self

    def get(self, api_version: str, kind: str) -> str:
        group, _slash, version = api_version.rpartition("/")
        if version not in self.served.get(group, []):
            raise ResourceNotFoundError("No matches found for {'api_version': %r, 'kind': %r}" % (api_version, kind))
        return "resource " + kind

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        group = path.split("/")[2]
        if group not in self.served:
            raise type("ApiException", (Exception,), {"status": 404})()
        body = '{"versions": [%s]}' % ", ".join('{"version": "%s"}' % v for v in self.served[group])
        return type("Response", (), {"data": body})()


def test_a_served_kind_is_returned() -> None:
    assert Client(Discovery({"kueue.x-k8s.io": ["v1beta1"]}), "h").resource("kueue.x-k8s.io/v1beta1", "Workload") \
        == "resource Workload"


def test_an_unserved_kueue_version_names_the_served_ones_and_the_option() -> None:
    client = Client(Discovery({"kueue.x-k8s.io": ["v1beta2", "v1beta1"]}), "h")
    with pytest.raises(NotServed) as err:
        client.resource("kueue.x-k8s.io/v1alpha9", "ClusterQueue")
    assert err.value.msg == ("The Kubernetes API does not serve ClusterQueue in kueue.x-k8s.io/v1alpha9 (it serves "
                             "kueue.x-k8s.io/v1beta2, kueue.x-k8s.io/v1beta1: set kueue_api_version to one of them, "
                             "or auto)")


def test_a_group_not_served_at_all_says_what_is_missing() -> None:
    client = Client(Discovery({}), "h")
    with pytest.raises(NotServed) as err:
        client.resource("machine.openshift.io/v1beta1", "MachineSet")
    assert err.value.msg == ("The Kubernetes API does not serve MachineSet in machine.openshift.io/v1beta1 (the "
                             "cluster serves no machine.openshift.io API at all: is this OpenShift with the Machine "
                             "API?)")


def test_an_unknown_group_gets_no_guess() -> None:
    assert not_served("example.com/v1", "Thing", []).msg == (
        "The Kubernetes API does not serve Thing in example.com/v1 (the cluster serves no example.com API at all)")


def test_lookups_from_several_threads_never_overlap() -> None:
    """The dynamic client's discovery cache is shared and not thread-safe (a miss clears it): one lookup at a time."""
    class Racy(Discovery):
        def __init__(self) -> None:
            super().__init__({"kueue.x-k8s.io": ["v1beta1"], "": ["v1"]})
            self.inside, self.most = 0, 0

        def get(self, api_version: str, kind: str) -> str:
            self.inside += 1
            self.most = max(self.most, self.inside)
            time.sleep(0.05)
            self.inside -= 1
            return super().get(api_version, kind)
    racy = Racy()
    client = Client(racy, "h")

    def look(api_version: str, kind: str) -> None:
        try:
            client.resource(api_version, kind)
        except NotServed:
            pass
    threads = [threading.Thread(target=look, args=args) for args in
               [("kueue.x-k8s.io/v9", "Workload"), ("v1", "Pod"), ("kueue.x-k8s.io/v1beta1", "Workload")]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert racy.most == 1
