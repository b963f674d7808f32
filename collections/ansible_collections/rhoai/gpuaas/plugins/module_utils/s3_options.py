# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""minio_upload's options, checked before anything is read or written.

Why here and not in AnsibleModule's spec: types and choices are the spec's job, but S3's
own rules (bucket names, key lengths, part sizes) and the relations between options need
code, and each failure must name the option and say how to fix it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_client import Target
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import MAX_PART_SIZE, MIN_PART_SIZE, parse_size
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import S3UploadError, normalize_prefix
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_state import default_state_dir
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_transfer import Options

MAX_CONCURRENCY = 256
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Source:
    """Where the files come from: a local path, or a Hugging Face repository snapshot."""

    src: str | None = None
    hf_repo: str | None = None
    hf_revision: str = "main"
    hf_token: str | None = None
    hf_cache_dir: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


@dataclass
class Request:
    """One validated minio_upload call."""

    target: Target
    options: Options
    source: Source


def check_bucket(name: str) -> str:
    """The bucket name when S3's naming rules accept it (the rules MinIO, Ceph and SeaweedFS share)."""
    problem = None
    if not _BUCKET_RE.match(name):
        problem = "3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
    elif ".." in name or ".-" in name or "-." in name:
        problem = "no two adjacent dots, and no dot next to a hyphen"
    else:
        try:
            ipaddress.IPv4Address(name)
            problem = "not an IP address"
        except ValueError:
            pass
    if problem:
        raise S3UploadError("bucket %r is not a valid S3 bucket name (%s): fix bucket" % (name, problem))
    return name


def check_prefix(prefix: str) -> str:
    """The normalized prefix when every segment is a usable key segment."""
    if _CONTROL_RE.search(prefix):
        raise S3UploadError("prefix %r contains control characters: fix prefix" % prefix)
    normalized = normalize_prefix(prefix)
    segments = normalized.rstrip("/").split("/") if normalized else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise S3UploadError("prefix %r has an empty, '.' or '..' segment, which S3 keeps literally and most tools "
                            "cannot address: fix prefix" % prefix)
    return normalized


def check_part_size(value: Any) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise S3UploadError("part_size: %s" % exc)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise S3UploadError("part_size must be between 5MiB and 5GiB (S3 limits), got %s: fix part_size" % value)
    return size


def check_concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise S3UploadError("concurrency must be between 1 and %d, got %d: fix concurrency" % (MAX_CONCURRENCY, value))
    return value


def check_endpoint(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlparse(url)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        port_ok = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
        raise S3UploadError("endpoint_url %r is not an http:// or https:// URL with a host (for example "
                            "http://minio.example:9000): fix endpoint_url (or AWS_S3_ENDPOINT)" % url)
    return url


def check_credentials(access_key: str | None, secret_key: str | None) -> None:
    if bool(access_key) != bool(secret_key):
        missing = "secret_key (or AWS_SECRET_ACCESS_KEY)" if access_key else "access_key (or AWS_ACCESS_KEY_ID)"
        raise S3UploadError("only one of access_key and secret_key is set: set %s too" % missing)


def check_paths(params: dict[str, Any]) -> None:
    """Files the options name must be usable before the upload starts."""
    if params.get("ca_bundle") and not os.path.isfile(params["ca_bundle"]):
        raise S3UploadError("ca_bundle %s is not a file: set it to a PEM file with the CA certificate" % params["ca_bundle"])
    state_dir = params.get("state_dir")
    if state_dir and os.path.exists(state_dir) and not os.path.isdir(state_dir):
        raise S3UploadError("state_dir %s exists and is not a directory: set state_dir to a directory" % state_dir)
    progress = params.get("progress_file")
    if progress and not os.path.isdir(os.path.dirname(os.path.abspath(progress))):
        raise S3UploadError("the directory of progress_file %s does not exist: create it or fix progress_file" % progress)


def request_from_params(params: dict[str, Any], check_mode: bool) -> Request:
    """A Request from AnsibleModule's params; S3UploadError naming the option when one is wrong."""
    bucket = check_bucket(params["bucket"])
    prefix = check_prefix(params.get("prefix") or "")
    if params.get("hf_repo") and not _HF_REPO_RE.match(params["hf_repo"]):
        raise S3UploadError("hf_repo %r is not a Hugging Face repository id (org/name): fix hf_repo" % params["hf_repo"])
    if params.get("sse_kms_key_id") and params.get("sse") != "aws:kms":
        raise S3UploadError("sse_kms_key_id needs sse: aws:kms")
    check_credentials(params.get("access_key"), params.get("secret_key"))
    check_paths(params)
    target = Target(
        bucket=bucket, prefix=prefix, endpoint_url=check_endpoint(params.get("endpoint_url")), region=params.get("region"),
        access_key=params.get("access_key"), secret_key=params.get("secret_key"), session_token=params.get("session_token"),
        validate_certs=params.get("validate_certs", True), ca_bundle=params.get("ca_bundle"),
        addressing_style=params.get("addressing_style"),
    )
    options = Options(
        part_size=check_part_size(params.get("part_size", "32MiB")), concurrency=check_concurrency(params.get("concurrency", 8)),
        verify=params.get("verify", True), delete=params.get("delete", False), create_bucket=params.get("create_bucket", False),
        sse=params.get("sse"), sse_kms_key_id=params.get("sse_kms_key_id"), progress_file=params.get("progress_file"),
        check_mode=check_mode, state_dir=params.get("state_dir") or default_state_dir(),
        compare=params.get("compare") or "checksum", checksum=params.get("request_checksum") or "crc32",
    )
    source = Source(src=params.get("src"), hf_repo=params.get("hf_repo"), hf_revision=params.get("hf_revision") or "main",
                    hf_token=params.get("hf_token"), hf_cache_dir=params.get("hf_cache_dir"),
                    include=list(params.get("include") or []), exclude=list(params.get("exclude") or []))
    return Request(target=target, options=options, source=source)


def secrets_of(params: dict[str, Any]) -> list[str]:
    """Every credential the options hold, to mask in messages."""
    return [str(params[name]) for name in ("access_key", "secret_key", "session_token", "hf_token") if params.get(name)]
