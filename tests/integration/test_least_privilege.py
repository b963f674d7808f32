"""Least privilege: the playbooks run as ServiceAccounts bound to exactly the roles of aap/rbac/, and a verb
outside those roles is refused, reaching the user as one line that names the user, the verb and the resource.

The manifests are applied as they are shipped; only the ServiceAccounts' namespace is a test namespace of its
own. The demo starts from what an administrator hands the automation on a new cluster: the project
`private-ai` exists (the Roles live in it) and nothing of the demo does - no GPU MachineSets, ClusterQueue,
flavors, hardware profiles, models, and RHOAI's own LocalQueue defaults - so every `create` the roles grant
is used, not only the patches of a second run.
"""
from __future__ import annotations

import contextlib
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client

import _kueue_objects as ko
import rhoai_sim
from _labels import TEST_LABEL
from _machinesets import NAMESPACE as MACHINE_NAMESPACE, delete_machineset
from _poll import wait_for
from conftest import BIN, ROOT, ansible_env, run_ansible_module, service_account_kubeconfig

RBAC = ROOT / "aap" / "rbac"
PLAYBOOK_IDENTITIES = ("provision", "deploy", "handover", "teardown")
# Bound to nothing: what the upload gets, since it needs no Kubernetes access.
UNBOUND = "gpuaas-upload"
NS = "private-ai"
CQ = "rhoai-main-queue"
DEMO = yaml.safe_load((ROOT / "inventories" / "local" / "group_vars" / "all" / "demo.yml").read_text())
SERVING_DEFAULTS = yaml.safe_load(
    (ROOT / "collections/ansible_collections/rhoai/gpuaas/roles/serving/defaults/main.yml").read_text())


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((RBAC / f"{name}.yaml").read_text()) if doc]


def replace(k8s: client.ApiClient, doc: dict[str, Any]) -> None:
    """Create `doc`, first deleting what an interrupted run left under its name."""
    meta = doc["metadata"]
    ko.delete(k8s, doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace"))
    ko.create(k8s, doc)


@contextlib.contextmanager
def bound(k8s: client.ApiClient, kubeconfig: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A kubeconfig per playbook for its ServiceAccount, bound by its file of aap/rbac/ as shipped (the subjects'
    namespace aside), and `upload` for an account bound to nothing; `namespace` is the accounts' namespace.
    Everything is deleted afterwards. The project must exist: the Roles live in it."""
    core = client.CoreV1Api(k8s)
    jobs = f"t-rbac-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": jobs, "labels": {TEST_LABEL: "true"}}})
    applied: list[dict[str, Any]] = []
    try:
        accounts = {}
        for name in PLAYBOOK_IDENTITIES:
            for doc in manifests(name):
                if doc["kind"] == "ServiceAccount":
                    doc["metadata"]["namespace"] = jobs
                    accounts[name] = doc["metadata"]["name"]
                for subject in doc.get("subjects", []):
                    subject["namespace"] = jobs
                replace(k8s, doc)
                applied.append(doc)
        core.create_namespaced_service_account(jobs, {"metadata": {"name": UNBOUND}})
        accounts["upload"] = UNBOUND
        kubeconfigs = {name: service_account_kubeconfig(k8s, kubeconfig, jobs, account, tmp_path / f"{name}.kubeconfig")
                       for name, account in accounts.items()}
        yield dict(kubeconfigs, namespace=jobs)
    finally:
        for doc in reversed(applied):
            if doc["kind"] != "ServiceAccount":  # those go with the namespace
                ko.delete(k8s, doc["apiVersion"], doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"))
        core.delete_namespace(jobs)


@pytest.fixture
def identities(k8s: client.ApiClient, kubeconfig: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`bound`, with the project made first if no earlier test made it (as `oc new-project private-ai` does)."""
    core = client.CoreV1Api(k8s)
    if not core.list_namespace(field_selector=f"metadata.name={NS}").items:
        core.create_namespace({"metadata": {"name": NS}})
    with bound(k8s, kubeconfig, tmp_path) as kubeconfigs:
        yield kubeconfigs


def playbook(name: str, kubeconfig: str, *extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook on inventories/local, connecting with `kubeconfig` (the inventory reads TESTBED_KUBECONFIG)."""
    env = ansible_env(None)
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    env["TESTBED_KUBECONFIG"] = kubeconfig
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/local", f"playbooks/{name}", *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result


def demo_machinesets(k8s: client.ApiClient) -> list[str]:
    """The GPU MachineSets provision.yml makes: <infrastructure name>-<table name>-<zone>."""
    custom = client.CustomObjectsApi(k8s)
    infra = custom.get_cluster_custom_object("config.openshift.io", "v1", "infrastructures", "cluster")
    prefixes = [f"{infra['status']['infrastructureName']}-{ms['name']}-" for ms in DEMO["gpuaas_machinesets"]]
    items = custom.list_namespaced_custom_object("machine.openshift.io", "v1beta1", MACHINE_NAMESPACE, "machinesets")
    return [m["metadata"]["name"] for m in items["items"] if m["metadata"]["name"].startswith(tuple(prefixes))]


def new_cluster(k8s: client.ApiClient) -> None:
    """Remove the demo, as a new cluster has none of it, and make the project `private-ai` anew as a data science
    project with Kueue, for which RHOAI's operator makes LocalQueue `default` for its own ClusterQueue `default`."""
    core = client.CoreV1Api(k8s)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(NS)  # the models, their pods and Workloads, the data connection, the LocalQueue
    wait_for(f"namespace {NS} deleted", lambda: not core.list_namespace(field_selector=f"metadata.name={NS}").items,
             timeout=120)
    for name in demo_machinesets(k8s):
        delete_machineset(k8s, name)
    # RHOAI's own defaults (ClusterQueue and LocalQueue `default`), which deploy changes and replaces. First: the
    # operator makes the default ClusterQueue when it is missing, and rhoai-main-queue must stay missing.
    ko.dynamic(k8s).resources.get(api_version=f"{rhoai_sim.DSC_GROUP}/{rhoai_sim.DSC_VERSION}",
                                  kind="DataScienceCluster").patch(
        name=rhoai_sim.DEFAULT_DSC, content_type="application/merge-patch+json",
        body={"spec": {"components": {"kueue": {"defaultClusterQueueName": None, "defaultLocalQueueName": None}}}})
    ko.delete(k8s, ko.KUEUE, "ClusterQueue", CQ)
    wait_for(f"ClusterQueue {CQ} deleted", lambda: ko.get(k8s, ko.KUEUE, "ClusterQueue", CQ) is None)
    in_use = ko.flavors_in_use(k8s)
    unused = [f["name"] for f in SERVING_DEFAULTS["serving_flavors"] if f["name"] not in in_use]
    for flavor in unused:  # another test's ClusterQueue may hold one: deploy then patches it
        ko.delete(k8s, ko.KUEUE, "ResourceFlavor", flavor)
    wait_for(f"ResourceFlavors {unused} deleted",
             lambda: all(ko.get(k8s, ko.KUEUE, "ResourceFlavor", f) is None for f in unused))
    for profile in SERVING_DEFAULTS["serving_hardware_profiles"]:
        ko.delete(k8s, "infrastructure.opendatahub.io/v1", "HardwareProfile", profile["name"],
                  rhoai_sim.APPLICATIONS_NAMESPACE)
    core.create_namespace({"metadata": {"name": NS, "labels": {rhoai_sim.MANAGED_LABEL: "true"}}})
    wait_for("RHOAI's LocalQueue default for ClusterQueue default", lambda: (
        ko.get(k8s, ko.KUEUE, "LocalQueue", "default", NS) or {}).get("spec", {}).get("clusterQueue") == "default")


def tear_down(k8s: client.ApiClient, admin: str) -> None:
    """As the administrator: no demo pod or GPU node is left for the other tests' GPU nodes to compete with."""
    present = demo_machinesets(k8s)
    if len(present) == len(DEMO["gpuaas_machinesets"]):
        ok(playbook("teardown.yml", admin))
    else:  # provision failed half-way: nothing was deployed
        for name in present:
            delete_machineset(k8s, name)


def refusal(ids: dict[str, str], identity: str, verb: str, obj: str, resource: str, where: str) -> str:
    """What a module says when kube-apiserver's authorizer refuses `verb` to the playbook's ServiceAccount."""
    user = f"system:serviceaccount:{ids['namespace']}:gpuaas-{identity}"
    return (f'Kubernetes API error: HTTP 403: {obj} is forbidden: User "{user}" cannot {verb} resource '
            f'"{resource}" {where}')


def test_the_demo_runs_with_exactly_the_roles_of_aap_rbac(
        k8s: client.ApiClient, kubeconfig: str, tmp_path: Path) -> None:
    new_cluster(k8s)
    torn_down = False
    try:
        with bound(k8s, kubeconfig, tmp_path) as ids:
            ok(playbook("provision.yml", ids["provision"]))
            # S3 only: an account bound to nothing will do (register_models.yml, REST only, is left to
            # tests/test_rbac_manifests.py, which shows that neither uses a Kubernetes module).
            ok(playbook("upload_model.yml", ids["upload"]))
            deploy = ok(playbook("deploy.yml", ids["deploy"]))
            assert "LocalQueue private-ai/default replaced" in deploy.stdout, deploy.stdout[-4000:]
            handover = ok(playbook("handover.yml", ids["handover"]))
            assert "Handover done in" in handover.stdout, handover.stdout[-4000:]
            # An AAP job re-run: the Lease exists now (released), so taking it is an update, not a create.
            again = ok(playbook("handover.yml", ids["handover"], "-e", "handover_step=3"))
            assert "mistral-3-bf16 is off and devstral-2 is on: nothing to hand over" in again.stdout, again.stdout[-4000:]

            # A verb outside the handover's roles, on a live object: scaling a predictor Deployment.
            apps = client.AppsV1Api(k8s)
            before = apps.read_namespaced_deployment("mistral-3-int4-predictor", NS).spec.replicas
            refused = run_ansible_module("isvc_replicas", {
                "name": "mistral-3-int4", "namespace": NS, "state": "stopped", "strategy": "deployment_scale",
                "kueue_api_version": ko.KUEUE}, ids["handover"], expect_fail=True)
            assert refused["msg"] == refusal(ids, "handover", "patch", 'deployments.apps "mistral-3-int4-predictor"',
                                             "deployments/scale", f'in API group "apps" in the namespace "{NS}"')
            assert apps.read_namespaced_deployment("mistral-3-int4-predictor", NS).spec.replicas == before

            ok(playbook("teardown.yml", ids["teardown"]))
            torn_down = True
    finally:
        if not torn_down:
            tear_down(k8s, kubeconfig)


# (identity, verb, resource as group/plural[/subresource], namespace, name, allowed). The allowed rows are the
# control: a review that refused everything (a wrong user name, say) would make the refused rows pass.
REVIEWS = [
    ("handover", "patch", "serving.kserve.io/inferenceservices", NS, "devstral-2", True),
    ("handover", "delete", "serving.kserve.io/inferenceservices", NS, "devstral-2", False),
    ("handover", "get", "apps/deployments", NS, "devstral-2-predictor", True),
    ("handover", "delete", "apps/deployments", NS, "devstral-2-predictor", False),
    ("handover", "patch", "apps/deployments/scale", NS, "devstral-2-predictor", False),
    ("handover", "get", "kueue.x-k8s.io/clusterqueues", None, CQ, True),
    ("handover", "patch", "kueue.x-k8s.io/clusterqueues", None, CQ, False),
    ("handover", "get", "kueue.x-k8s.io/clusterqueues", None, "another-teams-queue", False),
    ("handover", "create", "kueue.x-k8s.io/workloads", NS, "", True),
    ("handover", "delete", "kueue.x-k8s.io/workloads", NS, "pod-x", False),
    ("handover", "update", "coordination.k8s.io/leases", NS, "rhoai-gpuaas-handover", True),
    ("handover", "update", "coordination.k8s.io/leases", NS, "another-lease", False),
    ("handover", "get", "/secrets", NS, "models", False),
    ("deploy", "patch", "kueue.x-k8s.io/clusterqueues", None, CQ, True),
    ("deploy", "patch", "kueue.x-k8s.io/clusterqueues", None, "another-teams-queue", False),
    ("deploy", "delete", "kueue.x-k8s.io/clusterqueues", None, CQ, False),
    ("deploy", "patch", "/namespaces", None, NS, True),
    ("deploy", "patch", "/namespaces", None, "kube-system", False),
    ("deploy", "get", "/secrets", NS, "models", True),
    ("deploy", "get", "/secrets", NS, "another-secret", False),
    ("deploy", "list", "/secrets", NS, "", False),
    ("deploy", "delete", "serving.kserve.io/inferenceservices", NS, "devstral-2", False),
    ("deploy", "patch", "apps/deployments", NS, "devstral-2-predictor", False),
    ("provision", "patch", "machine.openshift.io/machinesets/scale", MACHINE_NAMESPACE, "gpu", True),
    ("provision", "patch", "machine.openshift.io/machinesets", MACHINE_NAMESPACE, "gpu", False),
    ("provision", "delete", "machine.openshift.io/machines", MACHINE_NAMESPACE, "gpu-a1b2c", False),
    ("provision", "patch", "serving.kserve.io/inferenceservices", NS, "devstral-2", False),
    ("teardown", "patch", "serving.kserve.io/inferenceservices", NS, "devstral-2", True),
    ("teardown", "create", "machine.openshift.io/machinesets", MACHINE_NAMESPACE, "", False),
    ("teardown", "delete", "machine.openshift.io/machinesets", MACHINE_NAMESPACE, "gpu", False),
    ("upload", "get", "/pods", NS, "", False),
]


def test_each_identity_is_refused_what_its_playbook_does_not_do(
        k8s: client.ApiClient, identities: dict[str, str]) -> None:
    accounts = {name: f"gpuaas-{name}" for name in PLAYBOOK_IDENTITIES} | {"upload": UNBOUND}
    namespace = identities["namespace"]
    auth = client.AuthorizationV1Api(k8s)
    wrong = []
    for identity, verb, resource, ns, name, allowed in REVIEWS:
        group, plural, *sub = resource.split("/")
        attributes = {"verb": verb, "group": group, "resource": plural, "subresource": "/".join(sub),
                      "namespace": ns or "", "name": name}
        review = auth.create_subject_access_review({"spec": {
            "user": f"system:serviceaccount:{namespace}:{accounts[identity]}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            "resourceAttributes": attributes}})
        if bool(review.status.allowed) != allowed:
            wrong.append(f"{identity} {verb} {resource} {ns or '(cluster)'}/{name}: "
                         f"{'allowed' if review.status.allowed else 'refused'}")
    assert not wrong, wrong

    # Our modules, run as the handover's account on what is not its own, say so in one line.
    refused = run_ansible_module("machineset_scale", {"name": "testbed-gpu", "namespace": MACHINE_NAMESPACE,
                                                      "replicas": 0, "wait": False},
                                 identities["handover"], expect_fail=True)
    assert refused["msg"] == refusal(identities, "handover", "get", 'machinesets.machine.openshift.io "testbed-gpu"',
                                     "machinesets", f'in API group "machine.openshift.io" in the namespace '
                                     f'"{MACHINE_NAMESPACE}"')
    refused = run_ansible_module("gpu_board", {"namespace": NS, "cluster_queues": ["another-teams-queue"],
                                               "kueue_api_version": ko.KUEUE}, identities["handover"], expect_fail=True)
    assert refused["msg"] == refusal(identities, "handover", "get", 'clusterqueues.kueue.x-k8s.io "another-teams-queue"',
                                     "clusterqueues", 'in API group "kueue.x-k8s.io" at the cluster scope')
