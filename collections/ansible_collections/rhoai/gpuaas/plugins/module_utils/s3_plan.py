# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to upload: local sources, object keys and the per-file decision.

Why separate from the transfer code: these are pure functions of local files and
listings, so check mode, diff and unit tests share exactly the logic a real run uses.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import is_md5_etag, normalize_etag
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_state import FileIdentity

UPLOAD = "upload"
SKIP = "skip"
DELETE = "delete"
MAX_KEY_BYTES = 1024


class S3UploadError(GpuaasError):
    """A failure explained for the user: what went wrong and which option fixes it."""


class SourceError(S3UploadError):
    """The source cannot be read; the message names the option to fix."""


@dataclass(frozen=True)
class LocalFile:
    """A file to mirror: where it is, its object key, and the stat seen at planning."""

    path: str
    key: str
    identity: FileIdentity

    @property
    def size(self) -> int:
        return self.identity.size

    @property
    def mtime_ns(self) -> int:
        return self.identity.mtime_ns


@dataclass(frozen=True)
class RemoteObject:
    """An object as listed (no metadata: listings do not return it)."""

    key: str
    size: int
    etag: str
    last_modified: float = 0.0
    """Seconds since the epoch; only the ``size_mtime`` comparison reads it."""


def normalize_prefix(prefix: str | None) -> str:
    """'' or 'a/b/': no leading slash, exactly one trailing slash, so keys never collide."""
    cleaned = (prefix or "").strip("/")
    return cleaned + "/" if cleaned else ""


def is_selected(rel: str, include: list[str], exclude: list[str]) -> bool:
    """fnmatch on the POSIX path relative to the source root (``*`` also matches ``/``)."""
    if include and not any(fnmatch.fnmatchcase(rel, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(rel, pattern) for pattern in exclude)


def _walk(root: str) -> list[tuple[str, str]]:
    """(path, relative POSIX path) of every file under ``root``, following file symlinks."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path):
                found.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
    return found


def local_files(src: str, prefix: str, include: list[str], exclude: list[str], param: str = "src") -> list[LocalFile]:
    """Files of ``src`` (a file or a directory) with their keys under ``prefix``.

    Raises SourceError naming ``param`` when nothing can be uploaded, so a typo in a
    path or a pattern fails loudly instead of deleting the remote copy (delete: true).
    """
    if not os.path.exists(src):
        raise SourceError("%s %s does not exist: set %s to an existing file or directory" % (param, src, param))
    if os.path.isdir(src):
        entries = _walk(src)
    elif os.path.isfile(src):
        entries = [(src, os.path.basename(src))]
    else:
        raise SourceError("%s %s is not a regular file or directory" % (param, src))
    files = []
    for path, rel in entries:
        if not is_selected(rel, include, exclude):
            continue
        key = normalize_prefix(prefix) + rel
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise SourceError("key %s... of %s is longer than the %d bytes S3 allows: shorten prefix" % (
                key[:64], path, MAX_KEY_BYTES))
        try:
            identity = FileIdentity.of(path)
        except OSError as exc:
            raise SourceError("%s: cannot read %s: %s" % (param, path, exc))
        files.append(LocalFile(path=path, key=key, identity=identity))
    if not files:
        raise SourceError(
            "%s %s has no files matching include=%s exclude=%s: check %s, include and exclude" % (param, src, include, exclude, param)
        )
    return files


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_hf_snapshot(repo: str, revision: str, cache_dir: str | None, token: str | None, include: list[str], exclude: list[str]) -> str:
    """Local snapshot directory of a Hugging Face repo, downloading what is missing.

    Why snapshot_download: it keeps the standard cache layout
    (models--org--name/snapshots/<commit>/, refs/<branch>) so later runs and other
    tools reuse it; with HF_HUB_OFFLINE=1 it resolves from that cache only.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SourceError("hf_repo needs the huggingface_hub Python package on the managed host (pip install huggingface_hub)")
    try:
        return snapshot_download(
            repo_id=repo,
            revision=revision,
            cache_dir=cache_dir,
            token=token or None,
            allow_patterns=include or None,
            ignore_patterns=exclude or None,
            local_files_only=_offline(),
        )
    except Exception as exc:  # huggingface_hub raises many types; all mean "no snapshot"
        hint = "check hf_repo, hf_revision and hf_token"
        if _offline():
            hint = "HF_HUB_OFFLINE is set: the snapshot must already be in hf_cache_dir (%s)" % (cache_dir or "default cache")
        raise SourceError("hf_repo %s@%s could not be resolved (%s: %s): %s" % (repo, revision, type(exc).__name__, exc, hint))


def decide(local: LocalFile, remote: RemoteObject | None, local_etag: str | None, local_sha256: str | None,
           remote_sha256: str | None, verify: bool, trust_etag: bool = True) -> tuple[str, str]:
    """(action, reason) for one file.

    Content equality comes from the ETag computed with the remote's own part
    layout; when the ETag is not an md5 (SSE-KMS, SSE-C) from the ``sha256``
    metadata instead. With ``verify`` the metadata must also match, so every
    object under the prefix ends up carrying a correct ``sha256``.
    """
    if remote is None:
        return UPLOAD, "new"
    if remote.size != local.size:
        return UPLOAD, "size"
    sha_match = remote_sha256 is not None and remote_sha256 == local_sha256
    if trust_etag and is_md5_etag(remote.etag):
        content_match = local_etag is not None and local_etag == normalize_etag(remote.etag)
    else:
        content_match = sha_match
    if not content_match:
        return UPLOAD, "content"
    if verify and not sha_match:
        return UPLOAD, "sha256"
    return SKIP, "same"


def decide_by_time(local: LocalFile, remote: RemoteObject | None) -> tuple[str, str]:
    """(action, reason) by s5cmd's rule: same size and an object no older than the file means unchanged.

    Why offered: it reads no file and no object metadata. It misses an edit that keeps
    the size and an mtime put back before the upload, which ``checksum`` catches.
    """
    if remote is None:
        return UPLOAD, "new"
    if remote.size != local.size:
        return UPLOAD, "size"
    if local.mtime_ns // 10**9 > int(remote.last_modified):  # whole seconds: listings carry no more
        return UPLOAD, "newer"
    return SKIP, "same"


def to_delete(local_keys: set[str], remote: dict[str, RemoteObject]) -> list[RemoteObject]:
    """Remote objects under the prefix that the source no longer has."""
    return [obj for key, obj in sorted(remote.items()) if key not in local_keys]


def diff_text(entries: list[dict], remote: dict[str, RemoteObject]) -> dict[str, str]:
    """Ansible diff of the affected keys: before = remote state, after = state after the run."""
    before, after = [], []
    for entry in entries:
        key, action = entry["key"], entry["action"]
        if action == SKIP:
            continue
        old = remote.get(key)
        if old is not None:
            before.append("%s size=%d etag=%s\n" % (key, old.size, normalize_etag(old.etag)))
        if action == UPLOAD:
            after.append("%s size=%d (%s)\n" % (key, entry["size"], entry.get("reason", "")))
    return {"before": "".join(sorted(before)), "after": "".join(sorted(after))}
