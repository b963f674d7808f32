# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 connection: where, with which credentials, and what its errors mean for the user.

Why apart from the transfer: every message here names the option that fixes the problem,
and credentials never leave this file unmasked; the engine only sees a client.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        SSLError,
    )
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
    S3_ERRORS: tuple = (BotoCoreError, ClientError)  # what a client call raises; the engine explains them
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()
    S3_ERRORS = ()

MASK = "********"


@dataclass
class Target:
    """Where to upload and how to authenticate (secrets are never logged by this code)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    validate_certs: bool = True
    ca_bundle: str | None = None
    addressing_style: str | None = None

    def secrets(self) -> list[str]:
        return [value for value in (self.access_key, self.secret_key, self.session_token) if value]


def client_config(target: Target, concurrency: int) -> Any:
    """botocore settings for bulk transfer to any S3-compatible server.

    Why each: a pool at least as large as our threads (no connection churn); standard
    retries (backoff on 5xx/throttling); path-style addressing for custom endpoints
    (MinIO, SeaweedFS, Ceph have no wildcard DNS); payload signing off and checksums
    only when required, because every body already carries a checksum we computed
    (CRC32 or Content-MD5) and botocore would otherwise hash each part again (sha256
    over http, CRC32 since 1.36) and some servers reject the newer checksum trailers.
    """
    style = target.addressing_style or ("path" if target.endpoint_url else "auto")
    kwargs: dict[str, Any] = {
        "max_pool_connections": concurrency + 4,
        "retries": {"mode": "standard", "max_attempts": 5},
        "s3": {"addressing_style": style, "payload_signing_enabled": False},
        "connect_timeout": 10,
        "read_timeout": 120,
        "tcp_keepalive": True,
    }
    if "request_checksum_calculation" in getattr(Config, "OPTION_DEFAULTS", {}):
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    return Config(**kwargs)


def make_client(target: Target, concurrency: int) -> Any:
    """An S3 client; credentials fall back to boto3's chain (AWS_* env vars, profiles)."""
    session = boto3.session.Session(
        aws_access_key_id=target.access_key or None,
        aws_secret_access_key=target.secret_key or None,
        aws_session_token=target.session_token or None,
        region_name=target.region or ("us-east-1" if target.endpoint_url else None),
    )
    verify: bool | str | None = target.ca_bundle or None
    if not target.validate_certs:
        verify = False
    return session.client("s3", endpoint_url=target.endpoint_url or None, verify=verify, config=client_config(target, concurrency))


def redact(text: str, secrets: list[str]) -> str:
    """Mask credentials in messages; they may come from env vars Ansible cannot mask."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _client_error_message(code: str, status: int, detail: str, target: Target, doing: str) -> str:
    location = "s3://%s/%s" % (target.bucket, target.prefix)
    if code == "InvalidAccessKeyId":
        return "%s: the server does not know this access key: check access_key (or AWS_ACCESS_KEY_ID)" % doing
    if code == "SignatureDoesNotMatch":
        return "%s: the signature does not match: check secret_key (or AWS_SECRET_ACCESS_KEY) for this access_key" % doing
    if code == "NoSuchBucket":
        return "%s: bucket %s does not exist at %s: create it or set create_bucket: true" % (
            doing, target.bucket, target.endpoint_url or "AWS")
    if code == "InvalidBucketName":
        return "%s: the server refuses the bucket name %s: check bucket" % (doing, target.bucket)
    if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException") or status == 301:
        return "%s: the bucket is in another region (%s): set region" % (doing, detail)
    if code in ("AccessDenied", "Forbidden", "403") or status == 403:
        return "%s: access denied to %s: check access_key/secret_key and that they may list, read and write it" % (doing, location)
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"):
        return "%s: the server received other bytes than were read (the file changed during the upload?): re-run" % doing
    if code == "EntityTooSmall":
        return "%s: the server refused a part as too small: raise part_size (at least 5 MiB)" % doing
    return "%s: S3 error %s (HTTP %s): %s" % (doing, code or "unknown", status, detail)


def explain_error(exc: BaseException, target: Target, doing: str) -> str:
    """A message naming the option to fix, from a botocore exception."""
    endpoint = target.endpoint_url or "the AWS default endpoint"
    if isinstance(exc, SSLError):
        return ("%s: TLS certificate verification failed for endpoint_url %s (%s): set ca_bundle to the CA that "
                "signed the server certificate, or validate_certs: false for a test server" % (doing, endpoint, exc))
    if isinstance(exc, ReadTimeoutError):
        return ("%s: endpoint_url %s accepted the connection but did not answer in time (%s): check the S3 server, "
                "then re-run (an interrupted upload is resumed)" % (doing, endpoint, exc))
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return ("%s: cannot connect to endpoint_url %s (%s): check endpoint_url (or AWS_S3_ENDPOINT) and that the "
                "S3 server is reachable from this host" % (doing, endpoint, exc))
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("%s: no S3 credentials: set access_key and secret_key, or the environment variables "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" % doing)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return _client_error_message(str(error.get("Code", "")), status, str(error.get("Message", exc)), target, doing)
    return "%s: %s: %s" % (doing, type(exc).__name__, exc)
