"""aap/rbac/: the least-privilege roles of each playbook, checked without a cluster.

What a cluster would not tell: a ClusterRole granting a namespaced kind (it would hold in every namespace) or a
Role naming a cluster-scoped one (silently useless), wildcards and escalation verbs, a binding to another file's
account, names that drifted from the inventory (the roles limit the ClusterQueue, flavors, hardware profiles,
Secrets, the project and the Lease to the names the playbooks use), and a playbook talking to Kubernetes without a
file. That the rules suffice, and refuse the rest, is tests/integration/test_least_privilege.py's part.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RBAC = ROOT / "aap" / "rbac"
COLLECTION = ROOT / "collections" / "ansible_collections" / "rhoai" / "gpuaas"
ROLES = COLLECTION / "roles"
# Which file's account runs each playbook; validate.yml only reads what handover.yml's validation reads.
PLAYBOOK_RBAC = {"provision.yml": "provision", "deploy.yml": "deploy", "handover.yml": "handover",
                 "teardown.yml": "teardown", "validate.yml": "handover"}
KINDS = {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
# The cluster-scoped kinds the playbooks touch; every other resource named in aap/rbac/ is namespaced.
CLUSTER_SCOPED = {"nodes", "namespaces", "infrastructures", "clusterqueues", "resourceflavors",
                  "customresourcedefinitions", "datascienceclusters", "dscinitializations"}
ESCALATING = {"*", "escalate", "bind", "impersonate"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((RBAC / f"{name}.yaml").read_text()) if d]


def files() -> list[str]:
    return sorted(p.stem for p in RBAC.glob("*.yaml"))


def settings() -> dict[str, Any]:
    """Role defaults, overridden by the inventory (demo-aws; the local one shares demo.yml and roles.yml)."""
    values: dict[str, Any] = {}
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        values.update(yaml.safe_load(defaults.read_text()) or {})
    for group_vars in sorted((ROOT / "inventories" / "demo-aws" / "group_vars" / "all").glob("*.yml")):
        values.update(yaml.safe_load(group_vars.read_text()) or {})
    return values


SETTINGS = settings()


def rules(name: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [rule for d in docs(name) if d["kind"] == kind and d["metadata"].get("namespace") == namespace
            for rule in d["rules"]]


def resource_names(name: str, resource: str) -> set[str]:
    """The names a file's rules limit `resource` to (every rule naming it must limit it, except `create`)."""
    names: set[str] = set()
    for d in docs(name):
        for rule in d.get("rules", []):
            if resource in rule["resources"] and rule["verbs"] != ["create"]:
                assert rule.get("resourceNames"), f"{name}: {resource} {rule['verbs']} not limited to names"
                names.update(rule["resourceNames"])
    return names


def test_there_is_a_file_per_playbook_that_talks_to_kubernetes() -> None:
    assert files() == sorted(set(PLAYBOOK_RBAC.values()))
    k8s_modules = {"rhoai.gpuaas." + m for m in yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
                   ["action_groups"]["k8s"] if isinstance(m, str)}
    for playbook in sorted((ROOT / "playbooks").glob("*.yml")):
        if playbook.name == "site.yml":  # imports the others
            continue
        text = playbook.read_text()
        roles = re.findall(r"rhoai\.gpuaas\.(\w+)", text)
        text += "".join(p.read_text() for role in roles if (ROLES / role).is_dir()
                        for p in (ROLES / role / "tasks").glob("*.yml"))
        uses = sorted({m for m in re.findall(r"^\s*(kubernetes\.core\.\w+|rhoai\.gpuaas\.\w+):", text, re.M)
                       if m.startswith("kubernetes.core.") or m in k8s_modules})
        if playbook.name in PLAYBOOK_RBAC:
            assert uses, f"{playbook.name} uses no Kubernetes module; drop it from PLAYBOOK_RBAC"
        else:  # upload_model.yml and register_models.yml: S3 and the Model Registry's REST API only
            assert uses == [], f"{playbook.name} talks to Kubernetes ({uses}) but aap/rbac/ has no file for it"


@pytest.mark.parametrize("name", files())
def test_each_file_binds_its_own_account_to_its_own_roles(name: str) -> None:
    found = docs(name)
    assert {d["kind"] for d in found} <= KINDS
    accounts = [d for d in found if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 1 and accounts[0]["metadata"]["name"] == f"gpuaas-{name}"
    account = {"kind": "ServiceAccount", "name": accounts[0]["metadata"]["name"],
               "namespace": accounts[0]["metadata"]["namespace"]}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in found
             if d["kind"] in ("Role", "ClusterRole")}
    bound = set()
    for binding in (d for d in found if d["kind"].endswith("Binding")):
        assert binding["subjects"] == [account], f"{name}: {binding['metadata']['name']} binds someone else"
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], namespace, ref["name"]) in roles, f"{name}: {ref} is not a role of this file"
        bound.add((ref["kind"], namespace, ref["name"]))
    assert bound == roles, f"{name}: roles without a binding: {roles - bound}"


@pytest.mark.parametrize("name", files())
def test_rules_are_scoped_and_name_no_wildcard(name: str) -> None:
    for d in docs(name):
        for rule in d.get("rules", []):
            assert "nonResourceURLs" not in rule
            assert not ESCALATING & set(rule["verbs"]), f"{name}: {rule}"
            assert "*" not in rule["apiGroups"] + rule["resources"], f"{name}: {rule}"
            for resource in rule["resources"]:
                cluster_scoped = resource.split("/")[0] in CLUSTER_SCOPED
                assert cluster_scoped == (d["kind"] == "ClusterRole"), (
                    f"{name}: {resource} in a {d['kind']} ({'cluster-scoped' if cluster_scoped else 'namespaced'})")
            if rule.get("resourceNames"):  # create, list without a name and deletecollection ignore names
                assert "create" not in rule["verbs"] and "deletecollection" not in rule["verbs"], f"{name}: {rule}"


def test_the_roles_live_where_the_playbooks_work() -> None:
    model_ns = SETTINGS["serving_namespace"]
    assert model_ns == SETTINGS["handover_namespace"] == SETTINGS["teardown_namespace"]
    machine_ns = SETTINGS["gpu_nodes_namespace"]
    assert machine_ns == SETTINGS["teardown_machinesets_namespace"]
    namespaces = {name: {d["metadata"]["namespace"] for d in docs(name) if d["kind"] == "Role"} for name in files()}
    assert namespaces == {"provision": {machine_ns}, "deploy": {model_ns, SETTINGS["serving_hardware_profile_namespace"]},
                          "handover": {model_ns}, "teardown": {model_ns, machine_ns}}


def test_names_follow_the_inventory() -> None:
    module = (COLLECTION / "plugins" / "modules" / "gpu_handover.py").read_text()
    lock = re.search(r'lock=dict\(type="str", default="([^"]+)"\)', module).group(1)
    assert resource_names("handover", "leases") == {lock}
    assert resource_names("handover", "clusterqueues") == {SETTINGS["handover_cluster_queue"]}
    assert resource_names("deploy", "clusterqueues") == {SETTINGS["serving_cluster_queue"]}
    assert resource_names("deploy", "resourceflavors") == {f["name"] for f in SETTINGS["serving_flavors"]}
    assert resource_names("deploy", "hardwareprofiles") == {p["name"] for p in SETTINGS["serving_hardware_profiles"]}
    assert resource_names("deploy", "namespaces") == {SETTINGS["serving_namespace"]}
    assert resource_names("deploy", "secrets") == {SETTINGS["serving_connection_name"], "storage-config"}
    assert resource_names("provision", "infrastructures") == {"cluster"}
