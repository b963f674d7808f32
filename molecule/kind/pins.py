#!/usr/bin/env python3
"""What the kind scenario installs, derived from the testbed's single version list.

`testbed/versions.sh` pins the testbed's components; the kind scenario installs the same
versions from their release artifacts. This prints them, plus the few pins only the kind
scenario needs, as one JSON object that the scenario's playbooks read
(`lookup('ansible.builtin.pipe', ...)`) and `tests/test_kind_scenario.py` checks.

    python3 molecule/kind/pins.py [--versions testbed/versions.sh]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

VERSIONS_SH = Path(__file__).resolve().parents[2] / "testbed" / "versions.sh"

# SeaweedFS is pinned by a Go pseudo-version (the module has no release tags on the proxy); its
# container images are tagged with the release number that commit carries in
# weed/util/version/constants.go (MAJOR_VERSION.MINOR_VERSION). Add a line when the testbed moves.
SEAWEEDFS_RELEASES = {
    "0.0.0-20261109003541-7506e5f91cd6": "4.53",
}

# Pins that only the kind scenario needs (the testbed runs none of these).
KIND_ONLY = {
    # KServe's webhooks need certificates from cert-manager.
    "cert_manager_version": "v1.21.1",
    # Serves the stand-in images under the inventory's registry.redhat.io names (see README.md).
    "registry_image": "docker.io/library/registry:3.0.0",
    # vLLM stand-in: an OpenAI-compatible simulator with vLLM's flags, no GPU (Apache-2.0).
    "predictor_image": "ghcr.io/llm-d/llm-d-inference-sim:v0.10.2",
    # Base of the stand-in modelcar (KServe's modelcar containers run `sh`).
    "modelcar_base_image": "docker.io/library/busybox:1.37.0",
}


def read_versions(path: Path) -> dict[str, str]:
    """The plain NAME=value assignments of versions.sh (the ones without shell expansions)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=([^\s\"'$]+)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def kueue_api_version(kueue_version: str) -> str:
    """The newest Kueue API a release serves: v1beta2 from 0.15 (storage version from 0.16), else v1beta1.

    Kueue 0.14 (Red Hat build of Kueue 1.2, RHOAI 3.0) serves only kueue.x-k8s.io/v1beta1.
    """
    return "kueue.x-k8s.io/" + ("v1beta2" if _release(kueue_version) >= (0, 15) else "v1beta1")


def kserve_deployment_mode(kserve_version: str) -> str:
    """The name upstream KServe gives raw deployment mode: `Standard` from 0.16, `RawDeployment` before.

    KServe 0.16's webhook refuses an InferenceService update that keeps `RawDeployment` with a
    deploymentStrategy; RHOAI 3.0's fork (based on 0.15.2) only knows `RawDeployment`.
    """
    return "Standard" if _release(kserve_version) >= (0, 16) else "RawDeployment"


def pins(versions: dict[str, str]) -> dict[str, str]:
    """Everything the kind scenario pins, testbed components first."""
    missing = [k for k in ("KUBE_VERSION", "KUEUE_VERSION", "KSERVE_VERSION", "SEAWEEDFS_VERSION") if k not in versions]
    if missing:
        raise ValueError(f"versions.sh does not pin {', '.join(missing)}")
    seaweedfs = versions["SEAWEEDFS_VERSION"]
    if seaweedfs not in SEAWEEDFS_RELEASES:
        raise ValueError(f"SeaweedFS {seaweedfs} has no release number in molecule/kind/pins.py SEAWEEDFS_RELEASES: "
                         "add the MAJOR.MINOR of weed/util/version/constants.go at that commit")
    return {
        "kube_version": versions["KUBE_VERSION"],
        "kind_node_image": f"kindest/node:v{versions['KUBE_VERSION']}",
        "kueue_version": f"v{versions['KUEUE_VERSION']}",
        "kueue_api_version": kueue_api_version(versions["KUEUE_VERSION"]),
        "kserve_version": f"v{versions['KSERVE_VERSION']}",
        "kserve_deployment_mode": kserve_deployment_mode(versions["KSERVE_VERSION"]),
        "seaweedfs_version": seaweedfs,
        "s3_image": f"ghcr.io/chrislusf/seaweedfs:{SEAWEEDFS_RELEASES[seaweedfs]}",
        **KIND_ONLY,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=Path, default=VERSIONS_SH, help="path of testbed/versions.sh")
    args = parser.parse_args()
    try:
        print(json.dumps(pins(read_versions(args.versions)), indent=2, sort_keys=True))
    except (OSError, ValueError) as exc:
        print(f"pins.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
