# Pinned versions of the testbed's components; the wrapper modules under modules/ pin the same.
# shellcheck shell=bash
GO_MIN=1.26
KUBE_VERSION=1.36.3
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
KUEUE_VERSION=0.17.0
KSERVE_VERSION=0.16.0
SEAWEEDFS_VERSION=0.0.0-20261109003541-7506e5f91cd6
MODELREGISTRY_VERSION=0.3.0
TESTBED_CACHE="${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rhoai-gpuaas/testbed}"
