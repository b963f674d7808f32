# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fast, resumable, verified upload of a file tree to an S3-compatible store.

Why low-level multipart calls instead of boto3's transfer manager: we choose the
parts, send each with its Content-MD5 (the server rejects corrupted or changed
bytes), store the file's sha256 as metadata at CreateMultipartUpload time, and can
continue an interrupted upload by listing the parts the server already holds.

No Ansible imports here: the logic is driven by plain dataclasses and unit-testable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import (
    MiB,
    WHOLE,
    FileDigest,
    effective_part_size,
    etag_part_count,
    hash_file,
    infer_part_size,
    multipart_etag,
    normalize_etag,
    part_ranges,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import (
    DELETE,
    SKIP,
    UPLOAD,
    LocalFile,
    RemoteObject,
    decide,
    to_delete,
)

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
        SSLError,
    )
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

DEFAULT_PART_SIZE = 32 * MiB
DEFAULT_CONCURRENCY = 8
META_SHA256 = "sha256"
META_PART_SIZE = "part-size"
PROGRESS_INTERVAL = 1.0


class S3UploadError(GpuaasError):
    """A failure explained for the user: what went wrong and which parameter fixes it."""


class _Stopped(Exception):
    """Raised by queued tasks once another task has failed."""


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


@dataclass
class Options:
    """How to upload."""

    part_size: int = DEFAULT_PART_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    verify: bool = True
    delete: bool = False
    create_bucket: bool = False
    sse: str | None = None
    sse_kms_key_id: str | None = None
    progress_file: str | None = None
    check_mode: bool = False
    state_dir: str | None = None


@dataclass
class FilePlan:
    """The decision for one local file, and the digests computed to reach it."""

    local: LocalFile
    action: str
    reason: str
    digest: FileDigest | None = None


@dataclass
class _Job:
    """A multipart upload in flight."""

    plan: FilePlan
    upload_id: str
    part_size: int
    existing: dict[int, tuple[int, str]] = field(default_factory=dict)
    etags: dict[int, str] = field(default_factory=dict)
    md5s: dict[int, bytes] = field(default_factory=dict)
    remaining: int = 0
    resumed: bool = False


# ---------------------------------------------------------------- client and errors


def client_config(target: Target, concurrency: int) -> Config:
    """botocore settings for bulk transfer to any S3-compatible server.

    Why each: a pool at least as large as our threads (no connection churn); standard
    retries (backoff on 5xx/throttling); path-style addressing for custom endpoints
    (MinIO, SeaweedFS, Ceph have no wildcard DNS); payload signing off and checksums
    only when required, because every body already carries a signed Content-MD5 and
    botocore would otherwise hash each part again (sha256 over http, CRC32 since 1.36)
    and some servers reject the newer checksum trailers.
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
    for secret in secrets:
        text = text.replace(secret, "********")
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
    if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException") or status == 301:
        return "%s: the bucket is in another region (%s): set region" % (doing, detail)
    if code in ("AccessDenied", "Forbidden", "403") or status == 403:
        return "%s: access denied to %s: check access_key/secret_key and that they may list, read and write it" % (doing, location)
    if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
        return "%s: the server received other bytes than were read (the file changed during the upload?): re-run" % doing
    if code == "EntityTooSmall":
        return "%s: the server refused a part as too small: raise part_size (at least 5 MiB)" % doing
    return "%s: S3 error %s (HTTP %s): %s" % (doing, code or "unknown", status, detail)


def explain_error(exc: BaseException, target: Target, doing: str) -> str:
    """A message naming the parameter to fix, from a botocore exception."""
    endpoint = target.endpoint_url or "the AWS default endpoint"
    if isinstance(exc, SSLError):
        return ("%s: TLS certificate verification failed for endpoint_url %s (%s): set ca_bundle to the CA that "
                "signed the server certificate, or validate_certs: false for a test server" % (doing, endpoint, exc))
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


# ---------------------------------------------------------------- progress and journal


def write_json_atomic(path: str, data: dict) -> None:
    """Readers never see a half-written file: write a sibling then rename over."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


class Progress:
    """Transfer counters, written as JSON to ``path`` at most every ``interval`` seconds.

    Why a file: a long upload runs with ``async``/``poll: 0``; another task can read
    the file to show bytes, files, speed and ETA while it runs.
    """

    def __init__(self, path: str | None, interval: float = PROGRESS_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self.phase = "planning"
        self.bytes_total = 0
        self.bytes_done = 0
        self.bytes_sent = 0
        self.files_total = 0
        self.files_done = 0
        self.current: dict[str, int] = {}

    def start(self) -> None:
        self._started = time.monotonic()
        if self.path:
            self.flush()
            self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def planned(self, size: int) -> None:
        with self._lock:
            self.files_total += 1
            self.bytes_total += size

    def begin(self, key: str) -> None:
        with self._lock:
            self.current[key] = self.current.get(key, 0) + 1

    def advance(self, count: int, sent: bool) -> None:
        with self._lock:
            self.bytes_done += count
            if sent:
                self.bytes_sent += count

    def finished(self, key: str) -> None:
        with self._lock:
            self.files_done += 1
            self.current.pop(key, None)

    def seconds(self) -> float:
        return time.monotonic() - self._started

    def snapshot(self) -> dict:
        with self._lock:
            elapsed = self.seconds()
            rate = self.bytes_sent / elapsed if elapsed > 0 else 0.0
            left = self.bytes_total - self.bytes_done
            return {
                "phase": self.phase,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "files_done": self.files_done,
                "files_total": self.files_total,
                "current": sorted(self.current),
                "mb_per_s": round(rate / 1e6, 2),
                "eta_seconds": round(left / rate, 1) if rate > 0 else None,
                "elapsed_seconds": round(elapsed, 2),
                "updated": time.time(),
            }

    def flush(self) -> None:
        if self.path:
            try:
                write_json_atomic(self.path, self.snapshot())
            except OSError:
                pass  # progress is advisory; never fail the upload for it

    def close(self, phase: str) -> None:
        self.phase = phase
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


def default_state_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rhoai.gpuaas", "minio_upload")


class Journal:
    """Fingerprints (sha256, size, mtime, part size) of the multipart uploads this host started.

    Why local: S3 has no call returning the metadata of an unfinished upload, so the
    sha256 given at CreateMultipartUpload cannot be read back. An upload is resumed
    only if this journal says it was started for the same sha256 and size; any other
    upload under the prefix is aborted, so a completed object never carries a stale
    sha256. Losing the journal only costs a fresh upload.
    """

    def __init__(self, directory: str, endpoint: str, bucket: str) -> None:
        self.directory = directory
        self._scope = "%s\0%s" % (endpoint, bucket)

    def _path(self, key: str, upload_id: str) -> str:
        name = hashlib.sha1(("%s\0%s\0%s" % (self._scope, key, upload_id)).encode()).hexdigest()
        return os.path.join(self.directory, name + ".json")

    def record(self, key: str, upload_id: str, fingerprint: dict) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            write_json_atomic(self._path(key, upload_id), dict(fingerprint, key=key, upload_id=upload_id))
        except OSError:
            pass  # without a record the upload is simply not resumed

    def load(self, key: str, upload_id: str) -> dict | None:
        try:
            with open(self._path(key, upload_id)) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def forget(self, key: str, upload_id: str) -> None:
        try:
            os.unlink(self._path(key, upload_id))
        except OSError:
            pass


def matches_fingerprint(record: dict | None, sha256: str | None, size: int) -> bool:
    """Resume only an upload started for exactly this content."""
    return bool(record) and sha256 is not None and record.get("sha256") == sha256 and record.get("size") == size


# ---------------------------------------------------------------- the upload


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _ignore(result: Any) -> None:
    """Continuation of tasks whose effect is done in the task itself."""


def read_range(path: str, offset: int, length: int) -> bytes:
    """One part's bytes with a single pread: no shared file position between threads."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise S3UploadError("%s shrank while it was uploaded: re-run when it is no longer written" % path)
    return data


class Uploader:
    """Plans and runs one mirror of local files to s3://bucket/prefix."""

    def __init__(self, target: Target, options: Options, client: Any = None, journal: Journal | None = None,
                 progress: Progress | None = None) -> None:
        self.target = target
        self.options = options
        self.client = client if client is not None else make_client(target, options.concurrency)
        self.journal = journal or Journal(options.state_dir or default_state_dir(), target.endpoint_url or "aws", target.bucket)
        self.progress = progress or Progress(None if options.check_mode else options.progress_file)
        self.trust_etag = options.sse != "aws:kms"
        self._stop = threading.Event()
        self._pending: dict[Future, Callable[[Any], None]] = {}
        self._uploads: dict[str, list[dict]] = {}
        self._resumed_ids: set[str] = set()
        self._plans: dict[str, FilePlan] = {}
        self._results: dict[str, dict] = {}
        self.bucket_created = False
        self.remote: dict[str, RemoteObject] = {}

    # -- S3 calls, each turning botocore errors into S3UploadError

    def _explained(self, exc: Exception, doing: str) -> S3UploadError:
        return S3UploadError(redact(explain_error(exc, self.target, doing), self.target.secrets()))

    def _call(self, doing: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.target.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._explained(exc, doing)

    def list_remote(self) -> dict[str, RemoteObject]:
        """Objects under the prefix; the first call, so it also checks endpoint, credentials and bucket."""
        doing = "listing s3://%s/%s" % (self.target.bucket, self.target.prefix)
        try:
            return self._list_objects()
        except S3UploadError:
            if not self.options.create_bucket or self._bucket_exists(doing):
                raise
        if not self.options.check_mode:
            kwargs: dict[str, Any] = {}
            region = self.client.meta.region_name
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._call("creating bucket %s (create_bucket: true)" % self.target.bucket, "create_bucket", **kwargs)
        self.bucket_created = True
        return {}

    def _list_objects(self) -> dict[str, RemoteObject]:
        doing = "listing s3://%s/%s" % (self.target.bucket, self.target.prefix)
        found: dict[str, RemoteObject] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": self.target.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(doing, "list_objects_v2", **kwargs)
            for item in page.get("Contents", []):
                found[item["Key"]] = RemoteObject(key=item["Key"], size=int(item["Size"]), etag=item.get("ETag", ""))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def _bucket_exists(self, doing: str) -> bool:
        try:
            self.client.head_bucket(Bucket=self.target.bucket)
            return True
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._explained(exc, doing)

    def list_uploads(self) -> dict[str, list[dict]]:
        """Unfinished multipart uploads under the prefix, newest first per key."""
        uploads: dict[str, list[dict]] = {}
        if self.bucket_created:
            return uploads
        kwargs: dict[str, Any] = {"Prefix": self.target.prefix}
        while True:
            page = self._call("listing multipart uploads under s3://%s/%s" % (self.target.bucket, self.target.prefix),
                              "list_multipart_uploads", **kwargs)
            for upload in page.get("Uploads", []):
                uploads.setdefault(upload["Key"], []).append(upload)
            if not page.get("IsTruncated"):
                break
            kwargs.update(KeyMarker=page.get("NextKeyMarker"), UploadIdMarker=page.get("NextUploadIdMarker"))
        for items in uploads.values():
            items.sort(key=lambda upload: str(upload.get("Initiated", "")), reverse=True)
        return uploads

    def _list_parts(self, key: str, upload_id: str) -> dict[int, tuple[int, str]]:
        parts: dict[int, tuple[int, str]] = {}
        kwargs: dict[str, Any] = {"Key": key, "UploadId": upload_id}
        while True:
            page = self._call("listing parts of %s" % key, "list_parts", **kwargs)
            for part in page.get("Parts", []):
                parts[int(part["PartNumber"])] = (int(part["Size"]), part["ETag"])
            if not page.get("IsTruncated"):
                return parts
            kwargs["PartNumberMarker"] = page.get("NextPartNumberMarker")

    def _head(self, key: str, part_number: int | None = None) -> dict | None:
        kwargs: dict[str, Any] = {"Key": key}
        if part_number:
            kwargs["PartNumber"] = part_number
        try:
            return self.client.head_object(Bucket=self.target.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            if part_number and isinstance(exc, ClientError):
                return None  # servers without PartNumber support: fall back to inference
            raise self._explained(exc, "reading metadata of %s" % key)

    # -- planning (runs on the hashing pool)

    def _remote_layout(self, remote: RemoteObject, head: dict | None) -> int:
        parts = etag_part_count(remote.etag)
        if not parts:
            return WHOLE
        first = int((head or {}).get("Metadata", {}).get(META_PART_SIZE, 0) or 0)
        if not first and parts > 1:
            part_head = self._head(remote.key, 1)
            length = int((part_head or {}).get("ContentLength", 0))
            first = length if 0 < length < remote.size else 0
        return infer_part_size(remote.size, parts, first or None, (self.options.part_size,)) or remote.size

    def prepare(self, local: LocalFile, remote: RemoteObject | None) -> FilePlan:
        """Decide one file: hashing it only as much as the decision (and a later upload) needs."""
        self._check_stop()
        single = local.size <= self.options.part_size
        if remote is None or remote.size != local.size:
            action, reason = decide(local, remote, None, None, None, self.options.verify, self.trust_etag)
            needs_sha = not single and not self.options.check_mode
            digest = hash_file(local.path, (), sha256=True) if needs_sha else None
            return FilePlan(local, action, reason, digest)
        parts = etag_part_count(remote.etag)
        head = self._head(local.key) if (self.options.verify or parts or not self.trust_etag) else None
        layout = self._remote_layout(remote, head)
        digest = hash_file(local.path, (layout,), sha256=True)
        remote_sha = (head or {}).get("Metadata", {}).get(META_SHA256)
        action, reason = decide(local, remote, digest.etag(layout), digest.sha256, remote_sha, self.options.verify, self.trust_etag)
        return FilePlan(local, action, reason, digest)

    # -- transfer tasks (run on the I/O pool)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped()

    def _extra_args(self, sha256: str, part_size: int) -> dict[str, Any]:
        metadata = {META_SHA256: sha256}
        if part_size:
            metadata[META_PART_SIZE] = str(part_size)
        extra: dict[str, Any] = {"Metadata": metadata}
        if self.options.sse:
            extra["ServerSideEncryption"] = self.options.sse
            if self.options.sse_kms_key_id:
                extra["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return extra

    def _assert_unchanged(self, local: LocalFile) -> None:
        stat = os.stat(local.path)
        if stat.st_size != local.size or stat.st_mtime_ns != local.mtime_ns:
            raise S3UploadError("%s changed while it was uploaded: re-run when it is no longer written" % local.path)

    def _check_etag(self, key: str, got: str, expected: str) -> None:
        if self.trust_etag and normalize_etag(got) != expected:
            raise S3UploadError("upload of %s returned ETag %s, expected %s: the store altered the data" % (key, normalize_etag(got), expected))

    def _verify(self, local: LocalFile, sha256: str, etag: str) -> None:
        """HEAD the finished object: size, ETag and sha256 metadata must match what was read."""
        if not self.options.verify:
            return
        head = self._head(local.key) or {}
        problems = []
        if int(head.get("ContentLength", -1)) != local.size:
            problems.append("size %s != %d" % (head.get("ContentLength"), local.size))
        if head.get("Metadata", {}).get(META_SHA256) != sha256:
            problems.append("sha256 metadata %s != %s" % (head.get("Metadata", {}).get(META_SHA256), sha256))
        self._check_etag(local.key, head.get("ETag", ""), etag)
        if problems:
            raise S3UploadError("verify failed for s3://%s/%s: %s" % (self.target.bucket, local.key, "; ".join(problems)))

    def put_single(self, plan: FilePlan) -> int:
        """Small file: one read, one PUT (atomic: the key shows the old or the new content)."""
        self._check_stop()
        local = plan.local
        self.progress.begin(local.key)
        data = read_range(local.path, 0, local.size)
        md5 = hashlib.md5(data).digest()
        sha256 = hashlib.sha256(data).hexdigest()
        response = self._call("uploading %s" % local.key, "put_object", Key=local.key, Body=data, ContentMD5=_b64(md5),
                              **self._extra_args(sha256, 0))
        self._check_etag(local.key, response.get("ETag", ""), md5.hex())
        self._assert_unchanged(local)
        self._verify(local, sha256, md5.hex())
        self.progress.advance(local.size, sent=True)
        self.progress.finished(local.key)
        return local.size

    def start_multipart(self, plan: FilePlan) -> _Job:
        """Resume this file's own unfinished upload if there is one, else create a new one."""
        self._check_stop()
        local, sha256 = plan.local, plan.digest.sha256 if plan.digest else None
        self.progress.begin(local.key)
        for upload in self._uploads.get(local.key, []):
            record = self.journal.load(local.key, upload["UploadId"])
            if matches_fingerprint(record, sha256, local.size) and upload["UploadId"] not in self._resumed_ids:
                self._resumed_ids.add(upload["UploadId"])
                existing = self._list_parts(local.key, upload["UploadId"])
                return _Job(plan, upload["UploadId"], int(record["part_size"]), existing=existing, resumed=True)
        part_size = effective_part_size(local.size, self.options.part_size)
        response = self._call("starting the upload of %s" % local.key, "create_multipart_upload", Key=local.key,
                              **self._extra_args(sha256 or "", part_size))
        upload_id = response["UploadId"]
        self.journal.record(local.key, upload_id, {"sha256": sha256, "size": local.size, "mtime_ns": local.mtime_ns,
                                                   "part_size": part_size})
        return _Job(plan, upload_id, part_size)

    def upload_part(self, job: _Job, number: int, offset: int, length: int) -> tuple[int, str, bytes]:
        """Read a part once; skip it if the server already holds identical bytes, else send it with Content-MD5."""
        self._check_stop()
        local = job.plan.local
        data = read_range(local.path, offset, length)
        md5 = hashlib.md5(data).digest()
        held = job.existing.get(number)
        if held and held[0] == length and normalize_etag(held[1]) == md5.hex():
            self.progress.advance(length, sent=False)
            return number, held[1], md5
        response = self._call("uploading part %d of %s" % (number, local.key), "upload_part", Key=local.key,
                              UploadId=job.upload_id, PartNumber=number, Body=data, ContentMD5=_b64(md5))
        self._check_etag(local.key, response.get("ETag", ""), md5.hex())
        self.progress.advance(length, sent=True)
        return number, response["ETag"], md5

    def complete_multipart(self, job: _Job) -> _Job:
        """Publish the object: only now does the key show the new content."""
        self._check_stop()
        local = job.plan.local
        self._assert_unchanged(local)
        parts = [{"PartNumber": number, "ETag": job.etags[number]} for number in sorted(job.etags)]
        response = self._call("completing the upload of %s" % local.key, "complete_multipart_upload", Key=local.key,
                              UploadId=job.upload_id, MultipartUpload={"Parts": parts})
        expected = multipart_etag([job.md5s[number] for number in sorted(job.md5s)])
        self._check_etag(local.key, response.get("ETag", ""), expected)
        self.journal.forget(local.key, job.upload_id)
        self._verify(local, job.plan.digest.sha256 if job.plan.digest else "", expected)
        self.progress.finished(local.key)
        return job

    # -- orchestration (continuations run on the calling thread)

    def _submit(self, pool: ThreadPoolExecutor, then: Callable[[Any], None], fn: Callable[..., Any], *args: Any) -> None:
        self._pending[pool.submit(fn, *args)] = then

    def _drain(self) -> None:
        try:
            while self._pending:
                for future in wait(list(self._pending), return_when=FIRST_COMPLETED).done:
                    self._pending.pop(future)(future.result())
        except BaseException:
            self._stop.set()
            for future in self._pending:
                future.cancel()
            wait(list(self._pending))
            raise

    def _on_prepared(self, io_pool: ThreadPoolExecutor, plan: FilePlan) -> None:
        local = plan.local
        self._plans[local.key] = plan
        self._results[local.key] = {"key": local.key, "action": plan.action, "size": local.size, "reason": plan.reason}
        if plan.action != UPLOAD or self.options.check_mode:
            return
        self.progress.planned(local.size)
        if local.size <= self.options.part_size:
            self._submit(io_pool, _ignore, self.put_single, plan)
        else:
            self._submit(io_pool, lambda job: self._on_started(io_pool, job), self.start_multipart, plan)

    def _on_started(self, io_pool: ThreadPoolExecutor, job: _Job) -> None:
        ranges = part_ranges(job.plan.local.size, job.part_size)
        job.remaining = len(ranges)
        if job.resumed:
            self._results[job.plan.local.key]["reason"] = "resumed"
        for number, (offset, length) in enumerate(ranges, start=1):
            self._submit(io_pool, lambda done, job=job: self._on_part(io_pool, job, done), self.upload_part, job, number, offset, length)

    def _on_part(self, io_pool: ThreadPoolExecutor, job: _Job, done: tuple[int, str, bytes]) -> None:
        number, etag, md5 = done
        job.etags[number] = etag
        job.md5s[number] = md5
        job.remaining -= 1
        if job.remaining == 0:
            self._submit(io_pool, _ignore, self.complete_multipart, job)

    def _abort_stale(self) -> int:
        """Abort unfinished uploads under the prefix that this run did not resume."""
        aborted = 0
        for key, uploads in sorted(self._uploads.items()):
            for upload in uploads:
                if upload["UploadId"] in self._resumed_ids:
                    continue
                aborted += 1
                if not self.options.check_mode:
                    self._call("aborting a stale upload of %s" % key, "abort_multipart_upload", Key=key, UploadId=upload["UploadId"])
                    self.journal.forget(key, upload["UploadId"])
        return aborted

    def _delete(self, objects: list[RemoteObject]) -> None:
        for start in range(0, len(objects), 1000):
            batch = [{"Key": obj.key} for obj in objects[start:start + 1000]]
            response = self._call("deleting objects under s3://%s/%s (delete: true)" % (self.target.bucket, self.target.prefix),
                                  "delete_objects", Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                raise S3UploadError("deleting %s failed: %s" % (errors[0].get("Key"), errors[0].get("Message")))

    def run(self, files: list[LocalFile]) -> dict:
        """Mirror ``files``: plan, upload (parallel across files and parts), abort stale uploads, delete extras."""
        self.progress.start()
        try:
            result = self._run(files)
        except BaseException:
            self.progress.close("failed")
            raise
        self.progress.close("done")
        return result

    def _run(self, files: list[LocalFile]) -> dict:
        remote = self.remote = self.list_remote()
        self._uploads = self.list_uploads()
        hash_workers = max(1, min(self.options.concurrency, os.cpu_count() or 1))
        with ThreadPoolExecutor(hash_workers, "hash") as hash_pool, ThreadPoolExecutor(self.options.concurrency, "s3") as io_pool:
            for local in files:
                self._submit(hash_pool, lambda plan: self._on_prepared(io_pool, plan), self.prepare, local, remote.get(local.key))
            self.progress.phase = "uploading"
            self._drain()
        aborted = self._abort_stale()
        deletions = to_delete({local.key for local in files}, remote) if self.options.delete else []
        self.progress.phase = "deleting"
        if deletions and not self.options.check_mode:
            self._delete(deletions)
        return self._summary(deletions, aborted)

    def _summary(self, deletions: list[RemoteObject], aborted: int) -> dict:
        entries = [self._results[key] for key in sorted(self._results)]
        entries.extend({"key": obj.key, "action": DELETE, "size": obj.size, "reason": "absent from source"} for obj in deletions)
        uploads = [entry for entry in entries if entry["action"] == UPLOAD]
        seconds = self.progress.seconds()
        sent = sum(entry["size"] for entry in uploads) if self.options.check_mode else self.progress.bytes_sent
        return {
            "changed": bool(uploads or deletions or aborted or self.bucket_created),
            "uploaded": len(uploads),
            "unchanged": sum(1 for entry in entries if entry["action"] == SKIP),
            "deleted": len(deletions),
            "resumed": sum(1 for entry in uploads if entry["reason"] == "resumed"),
            "aborted_uploads": aborted,
            "bucket_created": self.bucket_created,
            "bytes": sent,
            "reused_bytes": 0 if self.options.check_mode else self.progress.bytes_done - self.progress.bytes_sent,
            "seconds": round(seconds, 3),
            "mb_per_s": round(sent / seconds / 1e6, 2) if seconds > 0 and not self.options.check_mode else 0.0,
            "files": entries,
        }
