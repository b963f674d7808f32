"""The inventories users edit (inventories/demo-aws, inventories/local) against what the roles accept.

Every key of the models table (`gpuaas_models`) and of the MachineSets table (`gpuaas_machinesets`) must
be an option of every role entry point that reads the table (the option whose default in the role's
defaults/main.yml is built from it), read from the roles' meta/argument_specs.yml at test time; every
top-level variable must be a role option or something a role, a playbook or another variable of the
inventory reads. A misspelled key would otherwise be ignored: a misspelled `availability_zone` makes the
gpu_nodes role fall back to its default zone and name a MachineSet that does not exist. The demo-aws
MachineSet names are rendered by running the gpu_nodes role's `names` entry point against a fake
Kubernetes API that serves an OpenShift Infrastructure object.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "collections" / "ansible_collections" / "rhoai" / "gpuaas" / "roles"
INVENTORIES = ("demo-aws", "local")
TABLES = ("gpuaas_models", "gpuaas_machinesets")
TRUE_FALSE = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def group_vars(inventory: Path) -> dict[str, tuple[Any, Path]]:
    """Variable -> (value, file that sets it), files of group_vars/all in the order Ansible loads them."""
    out: dict[str, tuple[Any, Path]] = {}
    for path in sorted((inventory / "group_vars" / "all").glob("*.yml")):
        for key, value in (_yaml(path) or {}).items():
            out[key] = (value, path)
    return out


def entry_points(roles: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(role, entry point) -> options, from every role's meta/argument_specs.yml."""
    out = {}
    for spec in sorted(roles.glob("*/meta/argument_specs.yml")):
        for entry, data in (_yaml(spec).get("argument_specs") or {}).items():
            out[(spec.parents[1].name, entry)] = data.get("options") or {}
    return out


def table_readers(roles: Path, table: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(role, entry point, option, suboptions) of every option a role fills from `table` by default."""
    out = []
    for (role, entry), options in entry_points(roles).items():
        defaults = _yaml(roles / role / "defaults" / "main.yml") or {}
        for name, option in options.items():
            if option.get("options") and re.search(rf"\b{table}\b", str(defaults.get(name, ""))):
                out.append((role, entry, name, option["options"]))
    return out


def _read_anywhere(roles: Path) -> str:
    """Everything a play can read a variable from: the roles' files and the playbooks."""
    files = [p for p in roles.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".j2")]
    files += sorted((ROOT / "playbooks").glob("*.yml"))
    return "\n".join(p.read_text() for p in files)


def _type_problem(value: Any, spec: dict[str, Any]) -> str | None:
    """Why `value` cannot be converted to the option's type (Jinja values are left alone)."""
    if isinstance(value, str) and "{{" in value:
        return None
    kind = spec.get("type", "str")
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)
                              or isinstance(value, str) and re.fullmatch(r"-?\d+", value)):
        return f"{value!r} is not an int"
    if kind == "bool" and not (isinstance(value, bool) or str(value).lower() in TRUE_FALSE):
        return f"{value!r} is not a bool"
    if kind == "list" and not isinstance(value, list):
        return f"{value!r} is not a list"
    if kind == "dict" and not isinstance(value, dict):
        return f"{value!r} is not a dict"
    if kind == "str" and isinstance(value, (list, dict)):
        return f"{value!r} is not a string"
    if spec.get("choices") and str(value) not in {str(c) for c in spec["choices"]}:
        return f"{value!r} is not one of {spec['choices']}"
    return None


def _rel(path: Path) -> str:
    for base in (ROOT, path.parents[3] if len(path.parents) > 3 else path.parent):
        try:
            return str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def inventory_problems(inventory: Path, roles: Path = ROLES) -> list[str]:
    """Every key of the inventory the roles would not accept or never read, naming the key and the file."""
    problems = []
    variables = group_vars(inventory)
    options = {}
    for (role, entry), opts in entry_points(roles).items():
        for name, spec in opts.items():
            options.setdefault(name, (f"rhoai.gpuaas.{role} ({entry})", spec))
    for table in TABLES:
        if table not in variables:
            continue
        value, path = variables[table]
        readers = table_readers(roles, table)
        if not readers:
            problems.append(f"{_rel(path)}: no role reads {table}")
        for index, item in enumerate(value or []):
            label = f"{table}[{index}] ({item.get('name', '?')})"
            for role, entry, option, subs in readers:
                where = f"rhoai.gpuaas.{role} {option} ({entry})"
                for key in item:
                    if key not in subs:
                        problems.append(f"{_rel(path)}: {label} has unknown key {key!r}: not an option of {where} "
                                        f"(its keys: {', '.join(sorted(subs))})")
                    elif why := _type_problem(item[key], subs[key]):
                        problems.append(f"{_rel(path)}: {label} {key}: {why} ({where})")
                for key, spec in subs.items():
                    if spec.get("required") and key not in item:
                        problems.append(f"{_rel(path)}: {label} lacks {key!r}, required by {where}")
    text = _read_anywhere(roles)
    for name, (value, path) in variables.items():
        if name in options:
            where, spec = options[name]
            if why := _type_problem(value, spec):
                problems.append(f"{_rel(path)}: {name}: {why} ({where})")
            continue
        others = "\n".join(str(v) for k, (v, _) in variables.items() if k != name)
        if not re.search(rf"\b{re.escape(name)}\b", text + "\n" + others):
            problems.append(f"{_rel(path)}: unknown variable {name!r}: no role option, and no role, playbook or "
                            "other variable of the inventory reads it")
    return problems


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_inventory_matches_role_argument_specs(inventory: str) -> None:
    assert inventory_problems(ROOT / "inventories" / inventory) == []


def test_both_tables_have_readers_with_options() -> None:
    """Otherwise the checks above would have nothing to compare with."""
    for table in TABLES:
        assert any(subs for *_, subs in table_readers(ROLES, table)), f"no role option reads {table}"


def test_a_new_spec_key_is_accepted_without_editing_the_test(tmp_path: Path) -> None:
    """The specs are read at test time: a key added to them (and the inventory) passes."""
    roles = tmp_path / "roles"
    shutil.copytree(ROLES, roles)
    for (role, _entry, _option, _subs) in table_readers(ROLES, "gpuaas_machinesets"):
        spec_file = roles / role / "meta" / "argument_specs.yml"
        spec = _yaml(spec_file)
        spec["argument_specs"]["main"]["options"]["gpu_nodes_machinesets"]["options"]["root_volume_gib"] = {
            "type": "int", "description": "test"}
        spec_file.write_text(yaml.safe_dump(spec))
    inventory = _copy_inventory(tmp_path, "demo-aws")
    _mutate(inventory, "demo.yml", lambda d: d["gpuaas_machinesets"][0].update(root_volume_gib=500))
    assert inventory_problems(inventory, roles) == []
    assert any("root_volume_gib" in p for p in inventory_problems(inventory, ROLES))


def _copy_inventory(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "inventories" / name
    shutil.copytree(ROOT / "inventories" / name, target)
    return target


def _mutate(inventory: Path, file: str, change: Callable[[dict[str, Any]], Any]) -> None:
    path = inventory / "group_vars" / "all" / file
    data = _yaml(path)
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _rename(key: str, new: str, index: int = 0, table: str = "gpuaas_machinesets") -> Callable[[dict], None]:
    def change(data: dict) -> None:
        item = data[table][index]
        item[new] = item.pop(key)
    return change


def _rename_top(key: str, new: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data[new] = data.pop(key)
    return change


MISSPELLINGS = {
    "root_volume_sise": ("demo.yml", _rename("root_volume_size", "root_volume_sise"), "'root_volume_sise'"),
    "instance-type": ("demo.yml", _rename("instance_type", "instance-type", 1), "'instance-type'"),
    "replica": ("demo.yml", _rename("replicas", "replica"), "'replica'"),
    "gpu_count": ("demo.yml", _rename("gpus", "gpu_count"), "'gpu_count'"),
    "storage_url": ("demo.yml", _rename("storage_uri", "storage_url", 0, "gpuaas_models"), "'storage_url'"),
    "hf_repository": ("demo.yml", _rename("hf_repo", "hf_repository", 0, "gpuaas_models"), "'hf_repository'"),
    "flavour": ("demo.yml", _rename("flavor", "flavour", 1, "gpuaas_models"), "'flavour'"),
    "memroy": ("demo.yml", _rename("memory", "memroy", 0, "gpuaas_models"), "'memroy'"),
    "hardware_profil": ("demo.yml", _rename("hardware_profile", "hardware_profil", 2, "gpuaas_models"),
                        "'hardware_profil'"),
    "gpus_not_int": ("demo.yml", lambda d: d["gpuaas_machinesets"][0].update(gpus="four"), "gpus: 'four' is not an int"),
    "gpu_nodes_name_patern": ("roles.yml", _rename_top("gpu_nodes_name_pattern", "gpu_nodes_name_patern"),
                              "'gpu_nodes_name_patern'"),
    "handover_admit_timout": ("roles.yml", _rename_top("handover_admit_timeout", "handover_admit_timout"),
                              "'handover_admit_timout'"),
    "gpuaas_s3_bucekt": ("cluster.yml", _rename_top("gpuaas_s3_bucket", "gpuaas_s3_bucekt"), "'gpuaas_s3_bucekt'"),
    "wait_timeout_string": ("roles.yml", lambda d: d.update(serving_wait_timeout="30m"),
                            "serving_wait_timeout: '30m' is not an int"),
}


@pytest.mark.parametrize("case", sorted(MISSPELLINGS))
def test_misspelling_in_demo_aws_is_named(case: str, tmp_path: Path) -> None:
    inventory = _copy_inventory(tmp_path, "demo-aws")
    file, change, message = MISSPELLINGS[case]
    _mutate(inventory, file, change)
    problems = inventory_problems(inventory)
    assert any(message in p and f"group_vars/all/{file}" in p for p in problems), problems


# --- demo-aws MachineSet names, rendered by the gpu_nodes role against a fake OpenShift API ---

INFRA = "rhoai-gpuaas-demo-clus-x7k2p"  # as long as OpenShift makes them: 21-character cluster name + 6
REGION = "us-east-2"  # the demo's cluster
ZONES = ("us-east-2a", "us-east-2b")  # where the installer made worker MachineSets
TOKEN = "sha256~fake-bearer-token-for-the-test"


def worker_machineset(zone: str) -> dict[str, Any]:
    """A worker MachineSet as the OpenShift installer writes it on AWS (the GPU ones are copied from it)."""
    name = f"{INFRA}-worker-{zone}"
    labels = {"machine.openshift.io/cluster-api-cluster": INFRA, "machine.openshift.io/cluster-api-machineset": name}
    return {
        "apiVersion": "machine.openshift.io/v1beta1", "kind": "MachineSet",
        "metadata": {"name": name, "namespace": "openshift-machine-api", "uid": f"uid-{zone}",
                     "labels": {"machine.openshift.io/cluster-api-cluster": INFRA}},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": dict(labels, **{"machine.openshift.io/cluster-api-machine-role": "worker",
                                                    "machine.openshift.io/cluster-api-machine-type": "worker"})},
            "spec": {"providerSpec": {"value": {
                "apiVersion": "machine.openshift.io/v1beta1", "kind": "AWSMachineProviderConfig",
                "ami": {"id": "ami-0fbc8be8796dc1df5"}, "instanceType": "m6i.xlarge",
                "blockDevices": [{"ebs": {"encrypted": True, "volumeSize": 120, "volumeType": "gp3"}}],
                "iamInstanceProfile": {"id": f"{INFRA}-worker-profile"},
                "placement": {"availabilityZone": zone, "region": REGION},
                "securityGroups": [{"filters": [{"name": "tag:Name", "values": [f"{INFRA}-node"]}]}],
                "subnet": {"filters": [{"name": "tag:Name", "values": [f"{INFRA}-subnet-private-{zone}"]}]},
                "tags": [{"name": f"kubernetes.io/cluster/{INFRA}", "value": "owned"}],
                "userDataSecret": {"name": "worker-user-data"},
                "credentialsSecret": {"name": "aws-cloud-credentials"}}}}}},
    }


class _FakeOpenShift(http.server.BaseHTTPRequestHandler):
    """Discovery plus infrastructures.config.openshift.io/cluster; records what it was asked."""

    requests: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append((self.path.split("?")[0], self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401})
        path = self.path.split("?")[0]
        group = {"name": "config.openshift.io", "versions": [{"groupVersion": "config.openshift.io/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "config.openshift.io/v1", "version": "v1"}}
        machine = {"name": "machine.openshift.io",
                   "versions": [{"groupVersion": "machine.openshift.io/v1beta1", "version": "v1beta1"}],
                   "preferredVersion": {"groupVersion": "machine.openshift.io/v1beta1", "version": "v1beta1"}}
        bodies = {
            "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.5"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group, machine]},
            "/apis/machine.openshift.io/v1beta1": {
                "kind": "APIResourceList", "groupVersion": "machine.openshift.io/v1beta1",
                "resources": [{"name": "machinesets", "singularName": "machineset", "namespaced": True,
                               "kind": "MachineSet", "verbs": ["get", "list", "watch", "create", "patch"]}]},
            "/apis/machine.openshift.io/v1beta1/namespaces/openshift-machine-api/machinesets": {
                "apiVersion": "machine.openshift.io/v1beta1", "kind": "MachineSetList", "metadata": {},
                "items": [worker_machineset(zone) for zone in ZONES]},
            "/apis/config.openshift.io/v1": {"kind": "APIResourceList", "groupVersion": "config.openshift.io/v1",
                                             "resources": [{"name": "infrastructures", "singularName": "infrastructure",
                                                            "namespaced": False, "kind": "Infrastructure",
                                                            "verbs": ["get", "list", "watch"]}]},
            "/apis/config.openshift.io/v1/infrastructures/cluster": {
                "apiVersion": "config.openshift.io/v1", "kind": "Infrastructure", "metadata": {"name": "cluster"},
                "status": {"infrastructureName": INFRA, "platform": "AWS",
                           "platformStatus": {"type": "AWS", "aws": {"region": REGION}}}},
        }
        if path in bodies:
            return self._send(200, bodies[path])
        return self._send(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def fake_openshift() -> Iterator[str]:
    _FakeOpenShift.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenShift)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def render_names(inventory: Path, api: str, tmp_path: Path) -> list[dict[str, Any]]:
    """gpu_nodes_resolved as the role's `names` entry point computes it, with AAP's K8S_AUTH_* variables."""
    out = tmp_path / "resolved.json"
    play = tmp_path / "names.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Resolve the MachineSet names", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Names", "ansible.builtin.include_role": {"name": "rhoai.gpuaas.gpu_nodes", "tasks_from": "names"}},
                  {"name": "Keep them", "ansible.builtin.copy": {"content": "{{ gpu_nodes_resolved | to_json }}",
                                                                 "dest": str(out), "mode": "0600"}}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "K8S_AUTH_HOST": api, "K8S_AUTH_API_KEY": TOKEN,
           "K8S_AUTH_VERIFY_SSL": "false", "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "TMPDIR": str(tmp_path)}
    env.pop("K8S_AUTH_KUBECONFIG", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(play)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def name_problems(resolved: list[dict[str, Any]], declared: list[dict[str, Any]]) -> list[str]:
    """What would make a rendered name miss the cluster's MachineSet (OpenShift on AWS conventions)."""
    problems = []
    if len(resolved) != len(declared):
        problems.append(f"{len(resolved)} names for {len(declared)} MachineSets")
    for got, entry in zip(resolved, declared):
        name, zone = got["name"], got["availability_zone"]
        if not (zone.startswith(REGION) and re.fullmatch(r"[a-z]", zone[len(REGION):])):
            problems.append(f"{entry['name']}: zone {zone} is not in the cluster's region {REGION}: the name {name} "
                            "cannot be one of its MachineSets")
        if not name.startswith(f"{INFRA}-") or not name.endswith(f"-{zone}"):
            problems.append(f"{entry['name']}: {name} is not <infrastructureName>-...-<zone>")
        if entry["instance_type"].replace(".", "-") not in name:
            problems.append(f"{entry['name']}: {name} does not name its instance type {entry['instance_type']}")
        if len(name) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            problems.append(f"{name}: not a valid label value (machine.openshift.io/cluster-api-machineset)")
    if len({r["name"] for r in resolved}) != len(resolved):
        problems.append("two MachineSets get the same name")
    return problems


def test_demo_aws_machineset_names(fake_openshift: str, tmp_path: Path) -> None:
    inventory = ROOT / "inventories" / "demo-aws"
    resolved = render_names(inventory, fake_openshift, tmp_path)
    assert name_problems(resolved, group_vars(inventory)["gpuaas_machinesets"][0]) == []
    assert ("/apis/config.openshift.io/v1/infrastructures/cluster", f"Bearer {TOKEN}") in _FakeOpenShift.requests


def test_a_zone_the_cluster_has_no_worker_in_is_refused_naming_the_zones(fake_openshift: str, tmp_path: Path) -> None:
    """The zone is discovered from the worker MachineSets; a zone named by hand must be one of theirs."""
    inventory = _copy_inventory(tmp_path, "demo-aws")
    _mutate(inventory, "demo.yml", lambda d: d["gpuaas_machinesets"][0].update(availability_zone="us-east-1a"))
    with pytest.raises(AssertionError, match="us-east-1a has no worker MachineSet to copy; zones with one: us-east-2a"):
        render_names(inventory, fake_openshift, tmp_path)


def test_the_two_inventories_differ_only_in_cluster_yml() -> None:
    """demo.yml (the demo) and roles.yml (role settings) are the same; cluster.yml holds connection, endpoints,
    sizes - the real cluster's keys are a subset of the testbed's (which adds where its state lives)."""
    local, aws = ROOT / "inventories" / "local" / "group_vars" / "all", ROOT / "inventories" / "demo-aws" / "group_vars" / "all"
    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in aws.iterdir()) == \
        ["cluster.yml", "demo.yml", "roles.yml"]
    for name in ("demo.yml", "roles.yml"):
        assert _yaml(local / name) == _yaml(aws / name), f"{name} differs between the inventories"
    assert set(_yaml(aws / "cluster.yml")) <= set(_yaml(local / "cluster.yml"))
