#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: connection_ca
short_description: Make sure the model servers of a namespace trust the CA of a data connection's https S3 endpoint
version_added: 0.2.0
description:
  - On Red Hat OpenShift AI 3.0 the storage initializer of a model verifies an https S3 endpoint with the ConfigMap
    C(odh-kserve-custom-ca-bundle) (key C(cabundle.crt)) when the data connection's entry in the namespace's
    C(storage-config) Secret names it (C(cabundle_configmap)). odh-model-controller makes that ConfigMap from
    C(odh-trusted-ca-bundle) (the cluster's trusted bundle, and the DSCInitialization's
    C(spec.trustedCABundle.customCABundle) that the operator copies into every namespace) and from
    C(openshift-service-ca.crt) (the OpenShift service CA).
  - This module writes none of those (controllers own them). It checks that every certificate in O(ca) reaches
    the bundle, and waits until the bundle holds them and the entry of data connection O(connection) names the
    bundle, so that models created afterwards verify the endpoint. A model started before that crash-loops in its
    storage initializer with C(CERTIFICATE_VERIFY_FAILED) until then, and one whose pod was created before the
    entry named the bundle never mounts it.
  - When no source holds the CA and none will, it fails at once, changes nothing, and says what an admin sets,
    for instance the DSCInitialization's C(spec.trustedCABundle.customCABundle), or C(managementState) when it is
    C(Removed) or C(Unmanaged), or the namespace's opt-out annotation. It also fails at once when the connection's
    endpoint is not https (a CA is not used there).
  - RV(trusted_by) says where the CA comes from.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
options:
  namespace:
    description: Namespace of the data connection and the models.
    type: str
    required: true
  connection:
    description: Name of the data connection (its Secret, and its key in C(storage-config)).
    type: str
    required: true
  ca:
    description:
      - PEM text of the CA certificate(s) that sign the S3 endpoint's certificate; each one must reach the bundle.
      - Text that is not a certificate is ignored; no certificate at all is an error.
    type: str
    required: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - rhoai.gpuaas.wait
  - rhoai.gpuaas.attributes
attributes:
  check_mode:
    support: full
    description: Read-only; in check mode it reports the state found without waiting.
  diff_mode:
    support: none
    description: It changes nothing.
requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Wait until the model servers trust the in-cluster MinIO's CA
  rhoai.gpuaas.connection_ca:
    namespace: private-ai
    connection: models
    ca: "{{ lookup('ansible.builtin.file', 'minio-ca.crt') }}"
    wait_timeout: 120
  register: trust

- name: Say where the trust comes from
  ansible.builtin.debug:
    msg: "Trusted through {{ trust.trusted_by | join(', ') }}"
"""

RETURN = r"""
ready:
  description: Whether the bundle holds the CA and the connection's C(storage-config) entry names the bundle.
  returned: always
  type: bool
trusted_by:
  description: The sources that hold every certificate of O(ca), in words.
  returned: always
  type: list
  elements: str
  sample: ["the DSCInitialization's spec.trustedCABundle.customCABundle"]
in_bundle:
  description: Whether C(odh-kserve-custom-ca-bundle) holds every certificate of O(ca).
  returned: always
  type: bool
connection_entry:
  description: The connection's C(storage-config) entry (C(endpoint_url), C(cabundle_configmap)); null when absent.
  returned: always
  type: dict
  sample: {"endpoint_url": "https://minio.minio-storage.svc:9000", "cabundle_configmap": "odh-kserve-custom-ca-bundle"}
ca_configmaps:
  description: Which of C(odh-trusted-ca-bundle), C(openshift-service-ca.crt) and C(odh-kserve-custom-ca-bundle) exist in O(namespace).
  returned: always
  type: list
  elements: str
ca_fingerprints:
  description: SHA-256 fingerprints of the certificates in O(ca), as C(openssl x509 -fingerprint -sha256) prints them.
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible_collections.rhoai.gpuaas.plugins.module_utils.ca_bundle import check
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import auth_argument_spec, connect, new_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module


def main() -> None:
    argument_spec = auth_argument_spec(
        namespace=dict(type="str", required=True),
        connection=dict(type="str", required=True),
        ca=dict(type="str", required=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600, aliases=["timeout"]),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    run_module(module, lambda m: check(connect(m), m.params, m.check_mode))


if __name__ == "__main__":
    main()
