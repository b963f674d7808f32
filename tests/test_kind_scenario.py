"""The kind scenario (molecule/kind/) cannot run here (no Docker), so it is checked statically.

`scenario_problems(root)` reads the scenario as its playbooks would (pins.py run as a program, the
kind config, the group_vars overrides, the SeaweedFS manifest rendered) and compares it with what the
testbed runs (testbed/versions.sh, instance_types_sim.py, testbed.py's Kueue config, install.py's
KServe config) and with the local inventory and the roles. Each defect issue 13 found in the old
scenario is put back into a copy of the scenario and must be reported by name.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KIND = Path("molecule") / "kind"
ROLES = Path("collections") / "ansible_collections" / "rhoai" / "gpuaas" / "roles"
# What overrides.yml may set: the pins, endpoints, and what kind does differently (README.md).
ALLOWED_OVERRIDES = {"kind_pins", "gpuaas_kueue_api_version", "serving_deployment_mode", "serving_s3_endpoint",
                     "serving_s3_cluster_ca", "gpu_nodes_wait", "serving_create_storage_config", "validate_models"}
PIN_REF = re.compile(r"^\{\{\s*kind_pins\.(\w+)\s*\}\}$")
# Literal versions or images in the playbooks: they must come from kind_pins instead.
LITERAL_PINS = re.compile(r"releases/download/v?\d[\w.-]*|(?:docker\.io|ghcr\.io|quay\.io|registry\.k8s\.io|gcr\.io)/"
                          r"[\w./-]+(?::[\w.-]+|@sha256:\w+)?|kindest/node:[\w.-]+|minio[\w./:-]*")
SCENARIO_FILES = ("create.yml", "prepare.yml", "destroy.yml", "vars.yml", "molecule.yml", "group_vars/all/overrides.yml")
# Labels of a GPU node the kind workers must carry as the testbed's nodes do (instance_types_sim.node_labels).
SHAPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type", "topology.kubernetes.io/region",
                "topology.kubernetes.io/zone", "nvidia.com/gpu.present", "nvidia.com/gpu.product", "nvidia.com/gpu.count",
                "nvidia.com/gpu.memory")


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@functools.lru_cache(maxsize=None)
def _testbed_module(name: str, path: Path) -> ModuleType:
    """Testbed code is the same in every fake root (a link to the real one): load it once."""
    return _load_module(name, path.resolve())


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _group_vars(directory: Path) -> dict[str, Any]:
    """An inventory's group_vars/all, files merged in the order Ansible loads them."""
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.yml")):
        merged.update(_yaml(path) or {})
    return merged


def _versions(root: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"set -a && source {root / 'testbed' / 'versions.sh'} && env"],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def run_pins(root: Path) -> dict[str, str]:
    """What the scenario's playbooks read: pins.py run as they run it (kind_pins in overrides.yml)."""
    proc = subprocess.run([sys.executable, str(root / KIND / "pins.py")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"molecule/kind/pins.py failed: {proc.stderr.strip()}"
    return json.loads(proc.stdout)


def _image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and any(c.isdigit() for c in tag)


def _render_manifest(path: Path, pins: dict[str, str]) -> list[dict[str, Any]]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.from_string(path.read_text()).render(
        kind_pins=pins, kind_s3_keys={"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"})
    return [d for d in yaml.safe_load_all(text) if d]


def _role_template_node_spec(root: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Node labels and taints the gpu_nodes role gives the MachineSets it creates (its filter, gpu_machineset)."""
    sys.path.insert(0, str(root / "collections"))
    from ansible_collections.rhoai.gpuaas.plugins.module_utils import machineset_template as mt

    # the worker MachineSet the testbed makes as the OpenShift installer would
    worker = next(d for d in yaml.safe_load_all((root / "testbed" / "manifests" / "openshift-cluster.yaml").read_text())
                  if d and d.get("kind") == "MachineSet")
    defaults = _yaml(root / ROLES / "gpu_nodes" / "defaults" / "main.yml")
    gpu = mt.gpu_machineset(worker, "testbed-gpu-us-east-1a", {"name": "gpu", "instance_type": "g6.4xlarge", "gpus": 1},
                            defaults["gpu_nodes_gpu_resource"])
    spec = gpu["spec"]["template"]["spec"]
    return spec["metadata"]["labels"], spec["taints"]


def _version_problems(root: Path, pins: dict[str, str], versions: dict[str, str], local: dict[str, Any],
                      pins_module: ModuleType) -> list[str]:
    problems = []
    expected = {"kueue_version": ("Kueue", f"v{versions['KUEUE_VERSION']}", "KUEUE_VERSION"),
                "kserve_version": ("KServe", f"v{versions['KSERVE_VERSION']}", "KSERVE_VERSION"),
                "kind_node_image": ("Kubernetes (kind node image)", f"kindest/node:v{versions['KUBE_VERSION']}",
                                    "KUBE_VERSION")}
    for key, (what, want, var) in expected.items():
        if pins.get(key) != want:
            problems.append(f"{what}: the kind scenario installs {pins.get(key)} but testbed/versions.sh pins "
                            f"{var}={versions[var]} (molecule/kind/pins.py {key})")
    s3 = pins.get("s3_image", "")
    if "seaweedfs" not in s3 or "minio" in s3.lower():
        problems.append(f"S3 stand-in {s3}: must be SeaweedFS (the testbed's S3 server, Apache-2.0), never MinIO")
    # Oracles for the two mappings: facts of the platform (platform.md), not pins.py itself.
    for version, api in (("0.14.4", "kueue.x-k8s.io/v1beta1"), ("0.15.0", "kueue.x-k8s.io/v1beta2"),
                         ("0.17.0", "kueue.x-k8s.io/v1beta2")):
        if pins_module.kueue_api_version(version) != api:
            problems.append(f"pins.py kueue_api_version({version}) gives {pins_module.kueue_api_version(version)}, "
                            f"but Kueue {version} serves {api} as its newest API")
    for version, mode in (("0.15.2", "RawDeployment"), ("0.16.0", "Standard")):
        if pins_module.kserve_deployment_mode(version) != mode:
            problems.append(f"pins.py kserve_deployment_mode({version}) gives "
                            f"{pins_module.kserve_deployment_mode(version)}, KServe {version} calls raw mode {mode}")
    if pins.get("kueue_api_version") != local.get("gpuaas_kueue_api_version"):
        problems.append(f"Kueue API: pins.py derives {pins.get('kueue_api_version')} for Kueue "
                        f"{versions['KUEUE_VERSION']}, inventories/local says gpuaas_kueue_api_version="
                        f"{local.get('gpuaas_kueue_api_version')} for the same Kueue")
    for key, value in pins.items():
        if key.endswith("_image") and not _image_pinned(value):
            problems.append(f"image {value} (pins.py {key}) is not pinned: use an exact tag or a digest, not latest")
    return problems


def _override_problems(root: Path, pins: dict[str, str], versions: dict[str, str],
                       pins_module: ModuleType) -> list[str]:
    problems = []
    kind = root / KIND
    link = kind / "group_vars" / "all" / "local"
    local_dir = root / "inventories" / "local" / "group_vars" / "all"
    if not link.is_symlink() or link.resolve() != local_dir.resolve():
        problems.append("molecule/kind/group_vars/all/local must link inventories/local/group_vars/all, so the kind "
                        "scenario uses the local inventory's values")
    links = _yaml(kind / "molecule.yml")["provisioner"]["inventory"]["links"]
    if (kind / links.get("hosts", "")).resolve() != (root / "inventories" / "local" / "hosts.yml").resolve():
        problems.append("molecule.yml: the inventory hosts must link inventories/local/hosts.yml")
    if (kind / links.get("group_vars", "")).resolve() != (kind / "group_vars").resolve():
        problems.append("molecule.yml: the inventory group_vars must link the scenario's group_vars/ (local + overrides)")
    overrides = _yaml(kind / "group_vars" / "all" / "overrides.yml") or {}
    for key in sorted(set(overrides) - ALLOWED_OVERRIDES):
        problems.append(f"molecule/kind/group_vars/all/overrides.yml overrides {key}: the kind scenario keeps the local "
                        f"inventory's values except endpoints (allowed: {', '.join(sorted(ALLOWED_OVERRIDES))})")
    local = _group_vars(local_dir)

    def effective(key: str) -> Any:
        if key not in overrides:
            return local.get(key)
        m = PIN_REF.match(str(overrides[key]).strip())
        return pins.get(m.group(1)) if m else overrides[key]

    want_api = pins_module.kueue_api_version(versions["KUEUE_VERSION"])
    if effective("gpuaas_kueue_api_version") != want_api:
        problems.append(f"gpuaas_kueue_api_version is {effective('gpuaas_kueue_api_version')} on kind, but the Kueue "
                        f"it installs ({versions['KUEUE_VERSION']}) serves {want_api}")
    want_mode = pins_module.kserve_deployment_mode(versions["KSERVE_VERSION"])
    if effective("serving_deployment_mode") != want_mode:
        problems.append(f"serving_deployment_mode is {effective('serving_deployment_mode')} on kind, but upstream "
                        f"KServe {versions['KSERVE_VERSION']} (no RHOAI mapping webhook on kind) needs {want_mode}")
    if effective("gpu_nodes_wait") is not False:
        problems.append("gpu_nodes_wait must be false on kind: no machine-api controller boots the MachineSets' Machines")
    docs = _render_manifest(kind / "manifests" / "seaweedfs.yaml.j2", pins)
    svc = next(d for d in docs if d["kind"] == "Service")
    endpoint = (f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local:"
                f"{svc['spec']['ports'][0]['port']}")
    if effective("serving_s3_endpoint") != endpoint:
        problems.append(f"serving_s3_endpoint {effective('serving_s3_endpoint')} is not the in-cluster S3 Service "
                        f"{endpoint} (manifests/seaweedfs.yaml.j2)")
    images = [c["image"] for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]
    if images != [pins["s3_image"]]:
        problems.append(f"the S3 Deployment runs {images}, not kind_pins.s3_image {pins['s3_image']}")
    return problems


def _image_problems(root: Path, local: dict[str, Any]) -> list[str]:
    problems = []
    kind = root / KIND
    for name in SCENARIO_FILES:
        for literal in LITERAL_PINS.findall((kind / name).read_text()):
            problems.append(f"molecule/kind/{name} names {literal} literally: versions and images come from "
                            "pins.py (kind_pins), which reads testbed/versions.sh")
    scenario = _yaml(kind / "vars.yml")
    registry = scenario["kind_stand_in_registry"]
    runtime_image = local.get("serving_runtime_image") or _yaml(root / ROLES / "serving" / "defaults" / "main.yml")[
        "serving_runtime_image"]
    wanted = [("serving_runtime_image", runtime_image)]
    wanted += [(f"gpuaas_models {m['name']} storage_uri", m["storage_uri"].removeprefix("oci://"))
               for m in local.get("gpuaas_models", []) if str(m.get("storage_uri", "")).startswith("oci://")]
    for what, image in wanted:
        if not image.startswith(registry + "/"):
            problems.append(f"{what} {image} cannot run on a kind node (no GPU, no pull secret): the scenario only "
                            f"provides stand-ins for images under {registry}/")
    create, prepare = (kind / "create.yml").read_text(), (kind / "prepare.yml").read_text()
    if f"certs.d/{{{{ kind_stand_in_registry }}}}/hosts.toml" not in create:
        problems.append(f"create.yml does not mirror {registry} to the local registry on the nodes: "
                        f"{', '.join(i for _, i in wanted)} cannot be pulled")
    if "kind_pins.predictor_image" not in prepare or "serving_runtime_image" not in prepare:
        problems.append(f"prepare.yml serves no predictor stand-in: serving_runtime_image "
                        f"{runtime_image} cannot be pulled on kind")
    if "kind_pins.modelcar_base_image" not in prepare or "storage_uri" not in prepare:
        problems.append("prepare.yml builds no stand-in modelcar: the oci:// models cannot be pulled on kind")
    return problems


def _node_problems(root: Path, local: dict[str, Any], pins: dict[str, str]) -> list[str]:
    problems = []
    kind = root / KIND
    sim = _testbed_module("instance_types_sim", root / "testbed" / "instance_types_sim.py")
    config = _yaml(kind / "manifests" / "kind-config.yaml")
    nodes = config.get("nodes", [])
    if [n["role"] for n in nodes].count("control-plane") != 1:
        problems.append("kind-config.yaml must have exactly one control-plane node")
    workers = [n for n in nodes if n["role"] == "worker"]
    # the zone and region the GPU MachineSets copy from the worker MachineSet (the testbed's, like the installer's)
    worker = next(d for d in yaml.safe_load_all((root / "testbed" / "manifests" / "openshift-cluster.yaml").read_text())
                  if d and d.get("kind") == "MachineSet")
    placement = worker["spec"]["template"]["spec"]["providerSpec"]["value"]["placement"]
    role_labels, role_taints = _role_template_node_spec(root)
    for ms in local.get("gpuaas_machinesets", []):
        itype = ms["instance_type"]
        matching = [w for w in workers if (w.get("labels") or {}).get("node.kubernetes.io/instance-type") == itype]
        if len(matching) != 1:
            problems.append(f"kind-config.yaml has {len(matching)} worker(s) labelled {itype} (MachineSet {ms['name']}); "
                            "want exactly one per GPU instance type")
            continue
        labels = matching[0]["labels"]
        shape = sim.INSTANCE_TYPES[itype]
        want = sim.node_labels(itype, shape, "kind-worker", placement["region"],
                               ms.get("availability_zone") or placement["availabilityZone"], {})
        for key in SHAPE_LABELS:
            if str(labels.get(key)) != want[key]:
                problems.append(f"kind worker {itype}: label {key}={labels.get(key)}, the testbed's {itype} node has "
                                f"{want[key]} (testbed/instance_types_sim.py)")
        gpus = sim.node_resources(shape)[0].get(sim.GPU_RESOURCE)
        if str(ms["gpus"]) != gpus:
            problems.append(f"inventories/local MachineSet {ms['name']} says {ms['gpus']} GPUs, a {itype} has {gpus}")
        patches = [yaml.safe_load(p) for p in matching[0].get("kubeadmConfigPatches", [])]
        taints = [t for p in patches if p.get("kind") == "JoinConfiguration"
                  for t in (p.get("nodeRegistration") or {}).get("taints") or []]
        if sorted(map(json.dumps, taints)) != sorted(map(json.dumps, role_taints)):
            problems.append(f"kind worker {itype}: taints {taints}, the GPU MachineSets taint their nodes "
                            f"{role_taints} (roles/gpu_nodes/tasks/create.yml)")
    for flavor in _yaml(root / ROLES / "serving" / "defaults" / "main.yml")["serving_flavors"]:
        if not any((w.get("labels") or {}).get("node.kubernetes.io/instance-type") == flavor["instance_type"]
                   for w in workers):
            problems.append(f"ResourceFlavor {flavor['name']} selects {flavor['instance_type']}: no kind worker has it")
    scenario = _yaml(kind / "vars.yml")
    want_roles = {k: v for k, v in sim.node_labels("g6.xlarge", sim.INSTANCE_TYPES["g6.xlarge"], "h", "r", "z",
                                                   role_labels).items() if k.startswith("node-role.kubernetes.io/")}
    if scenario.get("kind_gpu_node_role_labels") != want_roles:
        problems.append(f"vars.yml kind_gpu_node_role_labels {scenario.get('kind_gpu_node_role_labels')}: the "
                        f"testbed's GPU nodes carry {want_roles}")
    prepare = (kind / "prepare.yml").read_text()
    if "nvidia.com~1gpu" not in prepare or "labels['nvidia.com/gpu.count']" not in prepare:
        problems.append("prepare.yml must advertise nvidia.com/gpu on each worker from its nvidia.com/gpu.count label")
    control = next((n for n in nodes if n["role"] == "control-plane"), {})
    mapped = {(m["containerPort"], m["hostPort"]) for m in control.get("extraPortMappings", [])}
    svc = next(d for d in _render_manifest(kind / "manifests" / "seaweedfs.yaml.j2", pins)
               if d["kind"] == "Service")
    host_port = int(scenario["kind_s3_host_endpoint"].rsplit(":", 1)[1])
    if (svc["spec"]["ports"][0]["nodePort"], host_port) not in mapped:
        problems.append(f"kind-config.yaml does not map the S3 NodePort {svc['spec']['ports'][0]['nodePort']} to "
                        f"{scenario['kind_s3_host_endpoint']} (vars.yml kind_s3_host_endpoint)")
    return problems


def _controller_config_problems(root: Path) -> list[str]:
    problems = []
    scenario = _yaml(root / KIND / "vars.yml")
    testbed = _testbed_module("testbed_main", root / "testbed" / "testbed.py")
    install = _testbed_module("testbed_install", root / "testbed" / "install.py")
    kueue = json.loads(testbed.kueue_config())
    for key in ("integrations", "managedJobsNamespaceSelector"):
        if scenario["kind_kueue_config"].get(key) != kueue.get(key):
            problems.append(f"Kueue {key} on kind {scenario['kind_kueue_config'].get(key)}, on the testbed "
                            f"{kueue.get(key)} (testbed/testbed.py kueue_config)")
    if scenario["kind_kserve_deploy"] != install.KSERVE_RAW_DEPLOY:
        problems.append(f"KServe deploy config on kind {scenario['kind_kserve_deploy']}, on the testbed "
                        f"{install.KSERVE_RAW_DEPLOY} (testbed/install.py)")
    return problems


def scenario_problems(root: Path) -> list[str]:
    """Every way the kind scenario under `root` disagrees with the testbed, the inventory and the roles."""
    pins = run_pins(root)
    versions = _versions(root)
    pins_module = _load_module("kind_pins", root / KIND / "pins.py")
    local = _group_vars(root / "inventories" / "local" / "group_vars" / "all")
    return (_version_problems(root, pins, versions, local, pins_module)
            + _override_problems(root, pins, versions, pins_module)
            + _image_problems(root, local)
            + _node_problems(root, local, pins)
            + _controller_config_problems(root))


def test_kind_scenario_agrees_with_testbed_and_inventory() -> None:
    assert scenario_problems(ROOT) == []


def test_pins_follow_versions_sh() -> None:
    """The pins are read, not copied: another versions.sh gives other pins."""
    pins_module = _load_module("kind_pins", ROOT / KIND / "pins.py")
    versions = pins_module.read_versions(ROOT / "testbed" / "versions.sh")
    moved = pins_module.pins({**versions, "KUEUE_VERSION": "0.14.4", "KSERVE_VERSION": "0.15.2", "KUBE_VERSION": "1.35.4"})
    assert (moved["kueue_version"], moved["kueue_api_version"]) == ("v0.14.4", "kueue.x-k8s.io/v1beta1")
    assert (moved["kserve_version"], moved["kserve_deployment_mode"]) == ("v0.15.2", "RawDeployment")
    assert moved["kind_node_image"] == "kindest/node:v1.35.4"
    with pytest.raises(ValueError, match="SeaweedFS 0.0.0-2027.* has no release number"):
        pins_module.pins({**versions, "SEAWEEDFS_VERSION": "0.0.0-20270101000000-abcdef012345"})


def test_seaweedfs_image_is_the_release_the_testbed_builds() -> None:
    """The image tag is the release number in the module source the testbed builds.

    The source comes from Go's module cache, downloaded here when testbed/build.sh has not run yet
    (as in CI, where the unit tests run first), so the check never silently skips.
    """
    versions = _versions(ROOT)
    module = f"github.com/seaweedfs/seaweedfs@v{versions['SEAWEEDFS_VERSION']}"
    assert shutil.which("go"), "Go is needed to read the SeaweedFS source the testbed builds; install Go"
    proc = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True, cwd=ROOT / "testbed")
    assert proc.returncode == 0, f"go mod download {module}: {proc.stdout}{proc.stderr}"
    constants = Path(json.loads(proc.stdout)["Dir"]) / "weed" / "util" / "version" / "constants.go"
    text = constants.read_text()
    major = re.search(r"MAJOR_VERSION\s*=\s*int32\((\d+)\)", text).group(1)
    minor = re.search(r"MINOR_VERSION\s*=\s*int32\((\d+)\)", text).group(1)
    assert run_pins(ROOT)["s3_image"].endswith(f":{int(major)}.{int(minor):02d}")


def _fake_root(tmp_path: Path) -> Path:
    """A repository whose molecule/kind is a copy to break; everything else is the real one."""
    root = tmp_path / "repo"
    (root / "molecule").mkdir(parents=True)
    for name in ("testbed", "inventories", "collections", "playbooks"):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / KIND, root / KIND, symlinks=True)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = _yaml(path)
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _one_node(cfg: dict[str, Any]) -> None:
    """The old scenario: one node, labelled g6.12xlarge, advertising all 5 GPUs."""
    cfg["nodes"] = [cfg["nodes"][0], cfg["nodes"][1]]
    cfg["nodes"][1]["labels"]["nvidia.com/gpu.count"] = "5"


def _untainted(cfg: dict[str, Any]) -> None:
    cfg["nodes"][2].pop("kubeadmConfigPatches")


def _unlinked(root: Path) -> None:
    link = root / KIND / "group_vars" / "all" / "local"
    link.unlink()
    shutil.copytree(ROOT / "inventories" / "local" / "group_vars" / "all", link)


K = KIND
DEFECTS: dict[str, tuple[Callable[[Path], None], str]] = {
    # issue 13: "installs Kueue v0.14.4, which serves only v1beta1"
    "kueue_0_14_in_pins": (lambda r: _edit(r / K / "pins.py", "f\"v{versions['KUEUE_VERSION']}\"", "\"v0.14.4\""),
                           "Kueue: the kind scenario installs v0.14.4"),
    "kueue_0_14_literal_url": (lambda r: _edit(r / K / "prepare.yml", "download/{{ kind_pins.kueue_version }}/",
                                               "download/v0.14.4/"), "releases/download/v0.14.4"),
    # "... while the local inventory it reuses writes v1beta2" (the API version not following the install)
    "api_version_v1beta1": (lambda r: _edit(r / K / "group_vars/all/overrides.yml",
                                            '"{{ kind_pins.kueue_api_version }}"', "kueue.x-k8s.io/v1beta1"),
                            "gpuaas_kueue_api_version is kueue.x-k8s.io/v1beta1"),
    "api_mapping_wrong": (lambda r: _edit(r / K / "pins.py", '"v1beta2" if', '"v1beta1" if'), "kueue_api_version("),
    # "there is one kind node, so the two flavors cannot both exist"
    "one_node": (lambda r: _edit_yaml(r / K / "manifests/kind-config.yaml", _one_node),
                 "0 worker(s) labelled g6.4xlarge"),
    "gpu_count": (lambda r: _edit_yaml(r / K / "manifests/kind-config.yaml",
                                       lambda c: c["nodes"][2]["labels"].update({"nvidia.com/gpu.count": "4"})),
                  "label nvidia.com/gpu.count=4"),
    "untainted": (lambda r: _edit_yaml(r / K / "manifests/kind-config.yaml", _untainted), "taints []"),
    # "KServe v0.16.0 uses the Standard naming": the mode must follow the KServe installed
    "kserve_version": (lambda r: _edit(r / K / "pins.py", "f\"v{versions['KSERVE_VERSION']}\"", "\"v0.15.2\""),
                       "KServe: the kind scenario installs v0.15.2"),
    "deployment_mode": (lambda r: _edit(r / K / "group_vars/all/overrides.yml",
                                        '"{{ kind_pins.kserve_deployment_mode }}"', "RawDeployment"),
                        "serving_deployment_mode is RawDeployment"),
    # "the S3 stand-in is an unpinned minio:latest"
    "minio_latest": (lambda r: _edit(r / K / "pins.py", 'f"ghcr.io/chrislusf/seaweedfs:{SEAWEEDFS_RELEASES[seaweedfs]}"',
                                     '"quay.io/minio/minio:latest"'), "never MinIO"),
    "unpinned_image": (lambda r: _edit(r / K / "pins.py", "busybox:1.37.0", "busybox:latest"),
                       "busybox:latest (pins.py modelcar_base_image) is not pinned"),
    # "the runtime image ... registry.invalid" (nothing serves it to a kind node); now the real names are mirrored
    "no_predictor_stand_in": (lambda r: _edit(r / K / "prepare.yml", "kind_pins.predictor_image", "predictor"),
                              "serving_runtime_image registry.redhat.io/rhaiis/vllm-cuda-rhel9:3.0.0 cannot be pulled"),
    "no_registry_mirror": (lambda r: _edit(r / K / "create.yml", "certs.d/{{ kind_stand_in_registry }}/hosts.toml",
                                           "certs.d/x/hosts.toml"), "does not mirror registry.redhat.io"),
    # "the same inventory values as the local one except endpoints"
    "extra_override": (lambda r: (r / K / "group_vars/all/overrides.yml").open("a").write("handover_admit_timeout: 5\n"),
                       "overrides handover_admit_timeout"),
    "inventory_copied": (_unlinked, "must link inventories/local/group_vars/all"),
    "literal_node_image": (lambda r: _edit(r / K / "create.yml", "--image {{ kind_pins.kind_node_image }}",
                                           "--image kindest/node:v1.33.1"), "kindest/node:v1.33.1"),
    "s3_endpoint": (lambda r: _edit(r / K / "group_vars/all/overrides.yml", "seaweedfs.s3.svc", "minio.s3.svc"),
                    "serving_s3_endpoint http://minio.s3.svc"),
    "kueue_frameworks": (lambda r: _edit(r / K / "vars.yml", "      - deployment\n", ""), "Kueue integrations on kind"),
}


def test_unbroken_copy_passes(tmp_path: Path) -> None:
    """The copy the defects are put into is itself clean, so each defect below is the only change."""
    assert scenario_problems(_fake_root(tmp_path)) == []


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_is_caught(defect: str, tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    break_it, message = DEFECTS[defect]
    break_it(root)
    problems = scenario_problems(root)
    assert any(message in p for p in problems), f"{defect}: no problem mentions {message!r}: {problems}"
