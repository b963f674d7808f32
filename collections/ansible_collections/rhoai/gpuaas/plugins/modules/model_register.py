#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_register
short_description: Register a model, its version and its artifact in an OpenShift AI (Kubeflow) Model Registry
version_added: 0.1.0
description:
  - Makes sure a registered model named O(name) exists with a version named O(version), and that this version has
    a model artifact pointing at O(uri), through the Model Registry's REST API C(/api/model_registry/v1alpha3).
  - Writes what the OpenShift AI 3.0 dashboard writes when a user registers a model, so the dashboard shows it
    and its "Deploy" action works - objects in state C(LIVE), the artifact named after the version, the data
    connection's name in C(storageKey), and for object storage the endpoint, bucket, path and region in the URI
    itself, C(s3://<bucket>/<path>?endpoint=<endpoint>&defaultRegion=<region>).
  - Declarative and idempotent - objects are looked up by name; a missing one is created, an existing one is
    updated only in the fields this task sets (options left out stay as they are), so a second run reports no
    change. An archived model or version is made C(LIVE) again.
  - Nothing is ever deleted.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
requirements:
  - python >= 3.8
attributes:
  check_mode:
    support: full
    description: Reads the registry and reports what would be created or updated, without writing.
  diff_mode:
    support: full
    description: Shows the fields this task manages on the registered model, version and artifact, before and after.
options:
  url:
    description:
      - Base URL of the Model Registry's REST server. On OpenShift AI, the registry's REST route,
        C(https://<registry name>-rest.<apps domain>) (shown in the dashboard's registry settings). The API path
        C(/api/model_registry/v1alpha3) is appended unless the URL already ends with it.
      - Falls back to the environment variable C(MODEL_REGISTRY_URL).
    type: str
    required: true
  api_key:
    description:
      - Bearer token sent in the C(Authorization) header. OpenShift AI serves the registry behind an authenticating
        proxy that needs one, for example C(oc whoami -t) or a service account token with access to the registry.
      - Falls back to the environment variable C(MODEL_REGISTRY_TOKEN). Never returned or logged.
    type: str
  validate_certs:
    description: Verify the registry's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: CA bundle (PEM file) to verify the registry's certificate with, for a private CA such as the
      cluster's ingress CA.
    type: path
  request_timeout:
    description: Seconds to wait for each HTTP request.
    type: int
    default: 30
  name:
    description: Name of the registered model.
    type: str
    required: true
  description:
    description: Description of the registered model.
    type: str
  owner:
    description: Owner of the registered model (the dashboard records the user who registered it).
    type: str
  model_properties:
    description: Custom properties of the registered model. Values are stored as strings (C(true)/C(false) for
      booleans), as the dashboard's are; properties not named here are kept.
    type: dict
  version:
    description: Name of the version, unique within the model.
    type: str
    required: true
  version_description:
    description: Description of the version.
    type: str
  author:
    description: Author recorded on the version (the API has no author on artifacts).
    type: str
  version_properties:
    description: Custom properties of the version, as O(model_properties).
    type: dict
  uri:
    description:
      - Where the model's weights are. C(s3://<bucket>/<path>) for S3-compatible storage (O(s3_endpoint) is then
        required), C(oci://<registry>/<repository>:<tag>) for a modelcar image, or any other URI the serving
        runtime reads (C(https://), C(hf://), C(pvc://)).
      - Only C(s3://) URIs are rewritten (the endpoint and region go into the query); every other URI is stored
        exactly as given. A second scheme nested in an C(s3://) URI (C(s3://oci://...)) is refused.
    type: str
    required: true
  s3_endpoint:
    description:
      - Endpoint of the S3 store holding an C(s3://) O(uri), as the data connection's C(AWS_S3_ENDPOINT) holds it
        (for example C(https://s3.us-east-1.amazonaws.com) or the in-cluster Service URL of MinIO) - the address
        the cluster reads the weights from, not the one the upload used from outside.
      - Ignored for other URIs, so a loop over models can pass it to every one.
    type: str
  s3_region:
    description: Region of that bucket (the data connection's C(AWS_DEFAULT_REGION)). Ignored for other URIs.
    type: str
  storage_key:
    description: Name of the data connection (Secret) that holds the credentials for O(uri); the dashboard
      preselects it when the version is deployed.
    type: str
  model_format_name:
    description: Model format, for example C(vLLM) or C(safetensors); the dashboard proposes a runtime from it.
    type: str
  model_format_version:
    description: Version of the model format.
    type: str
  artifact_name:
    description: Name of the model artifact. Defaults to O(version), as the dashboard names it. When the version
      already has a single model artifact of another name, that one is managed.
    type: str
notes:
  - Talks to the REST API directly with ansible-core's HTTP client; the C(model-registry) Python package is not
    needed.
  - The Model Registry has no delete; to retire a model, archive it in the dashboard.
seealso:
  - name: Model registry REST API (Kubeflow)
    description: The OpenAPI description of the v1alpha3 API this module calls.
    link: https://github.com/kubeflow/model-registry/blob/main/api/openapi/model-registry.yaml
"""

EXAMPLES = r"""
- name: Register BF16 weights uploaded to S3, as the dashboard would
  rhoai.gpuaas.model_register:
    url: https://demo-registry-rest.apps.cluster.example.com
    api_key: "{{ lookup('ansible.builtin.pipe', 'oc whoami -t') }}"
    name: mistral-small-24b-instruct
    description: Mistral Small 24B Instruct 2501, BF16
    version: "2501"
    uri: s3://models/mistral-small-24b-instruct-2501
    s3_endpoint: https://minio-api.minio.svc:9000
    s3_region: us-east-1
    storage_key: models-connection
    model_format_name: vLLM
    version_properties:
      precision: bf16

- name: Register a modelcar image as is
  rhoai.gpuaas.model_register:
    url: https://demo-registry-rest.apps.cluster.example.com
    ca_path: /etc/pki/ingress-ca.pem
    name: mistral-small-24b-instruct-w4a16
    version: "1.5"
    uri: oci://registry.redhat.io/rhelai1/modelcar-mistral-small-24b-instruct-2501-quantized-w4a16:1.5
  environment:
    MODEL_REGISTRY_TOKEN: "{{ registry_token }}"
"""

RETURN = r"""
url:
  description: The registry base URL used (without the API path).
  returned: always
  type: str
  sample: https://demo-registry-rest.apps.cluster.example.com
changes:
  description: What was (in check mode, would be) written, one line per object with the fields sent.
  returned: always
  type: list
  elements: str
  sample: ["create registered_model: name, state", "update model_artifact: uri"]
registered_model:
  description: The registered model as the registry returns it (in check mode, as it would be; no RV(registered_model.id)
    for a new one).
  returned: always
  type: dict
  contains:
    id:
      description: Its id in the registry.
      type: str
      sample: "1"
    name:
      description: Its name.
      type: str
      sample: mistral-small-24b-instruct
    state:
      description: C(LIVE) or C(ARCHIVED).
      type: str
      sample: LIVE
model_version:
  description: The version as the registry returns it (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    id:
      description: Its id.
      type: str
      sample: "2"
    name:
      description: The version name.
      type: str
      sample: "2501"
    registeredModelId:
      description: The id of its registered model.
      type: str
      sample: "1"
model_artifact:
  description: The model artifact as the registry returns it (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    id:
      description: Its id.
      type: str
      sample: "3"
    uri:
      description: The recorded URI.
      type: str
      sample: s3://models/mistral-small-24b-instruct-2501?endpoint=https%3A%2F%2Fminio-api.minio.svc%3A9000&defaultRegion=us-east-1
    storageKey:
      description: The data connection's name.
      type: str
      sample: models-connection
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.rhoai.gpuaas.plugins.module_utils import model_registry
from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module

ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True, fallback=(env_fallback, ["MODEL_REGISTRY_URL"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["MODEL_REGISTRY_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    request_timeout=dict(type="int", default=30),
    name=dict(type="str", required=True),
    description=dict(type="str"),
    owner=dict(type="str"),
    model_properties=dict(type="dict"),
    version=dict(type="str", required=True),
    version_description=dict(type="str"),
    author=dict(type="str"),
    version_properties=dict(type="dict"),
    uri=dict(type="str", required=True),
    s3_endpoint=dict(type="str"),
    s3_region=dict(type="str"),
    storage_key=dict(type="str", no_log=False),
    model_format_name=dict(type="str"),
    model_format_version=dict(type="str"),
    artifact_name=dict(type="str"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, model_registry.run)


if __name__ == "__main__":
    main()
