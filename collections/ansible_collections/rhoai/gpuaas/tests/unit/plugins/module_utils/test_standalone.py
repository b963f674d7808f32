# -*- coding: utf-8 -*-
"""module_utils outside Ansible (the GPU Switchboard notebook): imports and the client's configuration."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.rhoai.gpuaas.plugins.module_utils import k8s_client  # noqa: E402

COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 7))

# Runs in a fresh interpreter where importing Ansible (or kubernetes.core) raises.
WITHOUT_ANSIBLE = r"""
import sys


class NoAnsible:
    def find_spec(self, name, path=None, target=None):
        if name == "ansible" or name.startswith(("ansible.", "ansible_collections.kubernetes")):
            raise ImportError("no Ansible here: " + name)
        return None


sys.meta_path.insert(0, NoAnsible())
sys.path.insert(0, sys.argv[1])
from ansible_collections.rhoai.gpuaas.plugins.module_utils import gpu_view, isvc, k8s_client, kueue  # noqa

assert callable(k8s_client.standalone_client) and k8s_client.DynamicClient is not None
print(sorted(m for m in sys.modules if m == "ansible" or m.startswith(("ansible.", "ansible_collections.kubernetes"))))
"""


def test_the_notebooks_module_utils_import_without_ansible() -> None:
    proc = subprocess.run([sys.executable, "-c", WITHOUT_ANSIBLE, COLLECTIONS_ROOT],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def kubeconfig_file(tmp_path, server: str = "https://10.1.2.3:6443", token: str = "from-kubeconfig") -> str:
    path = tmp_path / "kubeconfig"
    path.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %s}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
""" % (server, token))
    return str(path)


def in_cluster_files(tmp_path):
    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("from-service-account")
    cert.write_text("not checked until a request")
    return str(token), str(cert)


def token_of(cfg) -> str:
    return cfg.api_key["BearerToken"].split()[-1]


IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_a_given_kubeconfig_wins_even_in_a_cluster(tmp_path) -> None:
    token, cert = in_cluster_files(tmp_path)
    cfg = k8s_client.standalone_configuration(kubeconfig_file(tmp_path), environ=IN_CLUSTER,
                                              token_file=token, cert_file=cert)
    assert cfg.host == "https://10.1.2.3:6443"
    assert token_of(cfg) == "from-kubeconfig"


def test_in_a_cluster_without_kubeconfig_the_service_account_is_used(tmp_path) -> None:
    token, cert = in_cluster_files(tmp_path)
    cfg = k8s_client.standalone_configuration("", environ=dict(IN_CLUSTER, KUBECONFIG=kubeconfig_file(tmp_path)),
                                              token_file=token, cert_file=cert)
    assert cfg.host == "https://10.96.0.1:443"
    assert cfg.ssl_ca_cert == cert
    assert token_of(cfg) == "from-service-account"


def test_outside_a_cluster_the_default_kubeconfig_is_used(tmp_path) -> None:
    cfg = k8s_client.standalone_configuration("", environ={"KUBECONFIG": kubeconfig_file(tmp_path)})
    assert cfg.host == "https://10.1.2.3:6443"


@pytest.mark.parametrize("kubeconfig, environ, message", [
    ("/nonexistent/kubeconfig", {}, "kubeconfig /nonexistent/kubeconfig is not a file. Pass a kubeconfig file"),
    ("", {"KUBECONFIG": "/nonexistent/kubeconfig"}, "Could not configure the Kubernetes client: "),
    ("", dict(IN_CLUSTER), "Could not configure the Kubernetes client: Service token file does not exist"),
])
def test_no_usable_configuration_says_what_to_pass(tmp_path, kubeconfig, environ, message) -> None:
    with pytest.raises(k8s_client.K8sUnreachable) as err:
        k8s_client.standalone_configuration(kubeconfig, environ=environ, token_file=str(tmp_path / "none"),
                                            cert_file=str(tmp_path / "none.crt"))
    assert message in str(err.value) and "in a workbench" in str(err.value)


def test_an_unreachable_api_names_the_host(tmp_path) -> None:
    # Port 1 on the loopback refuses at once; nothing is listening there.
    path = kubeconfig_file(tmp_path, server="https://127.0.0.1:1")
    with pytest.raises(k8s_client.K8sUnreachable, match=r"The Kubernetes API at https://127.0.0.1:1 is unreachable"):
        k8s_client.standalone_client(path)
