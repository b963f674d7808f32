# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What minio_upload keeps between runs, under ``state_dir``: resume records and file digests.

Why on disk: S3 cannot return the metadata of an unfinished multipart upload (so a resume
needs our own record of what it was started for), and hashing tens of GB on every re-run
costs about a second per GiB. Losing the directory only costs a fresh upload or a re-hash:
nothing here is needed for correctness, only for speed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

DIGESTS = "digests"
SETTLE_NS = 2 * 10**9
"""A file changed less than this before its hash began may change again without moving its
timestamps (coarse file-system clocks: a jiffy on ext4, 1 s on ext3/NFSv3, 2 s on FAT), so its
digest is not kept."""


def default_state_dir() -> str:
    """``$XDG_CACHE_HOME/rhoai.gpuaas/minio_upload``, else ``~/.cache/...``: where it always was."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rhoai.gpuaas", "minio_upload")


def write_json_atomic(path: str, data: dict) -> None:
    """Readers never see a half-written file: write a sibling then rename over."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def _load_json(path: str) -> dict | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Journal:
    """Fingerprints (sha256, size, mtime, part size, checksum) of the multipart uploads this host started.

    Why local: S3 has no call returning the metadata of an unfinished upload, so the
    sha256 given at CreateMultipartUpload cannot be read back. An upload is resumed
    only if this journal says it was started for the same content; any other upload
    under the prefix is aborted, so a completed object never carries a stale sha256.
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
        return _load_json(self._path(key, upload_id))

    def forget(self, key: str, upload_id: str) -> None:
        try:
            os.unlink(self._path(key, upload_id))
        except OSError:
            pass


def matches_fingerprint(record: dict | None, sha256: str | None, size: int, checksum: str) -> bool:
    """Resume only an upload started for exactly this content and request checksum."""
    return (bool(record) and sha256 is not None and record.get("sha256") == sha256 and record.get("size") == size
            and record.get("checksum", "md5") == checksum)


@dataclass(frozen=True)
class FileIdentity:
    """What a file's stat says about its content. Equal identities mean unchanged content.

    Why ctime and inode beside size and mtime: ``touch -d`` or ``os.utime`` can put an
    edited file's mtime back, but nothing can set its ctime back; replacing a file (rename
    over it, a new Hugging Face blob) changes the inode.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: str) -> "FileIdentity":
        stat = os.stat(path)
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)

    def as_dict(self) -> dict[str, int]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns, "inode": self.inode,
                "device": self.device}


@dataclass
class CachedDigest:
    """A file's sha256, the ETag its content gets per part layout (0: a single PUT), and its parts' CRC32s."""

    sha256: str
    etags: dict[int, str] = field(default_factory=dict)
    crc32s: dict[int, list[str]] = field(default_factory=dict)


class DigestCache:
    """sha256 and ETags of local files, trusted only while the file's identity is unchanged.

    Why: an unchanged re-run then reads no file content (a stat and a small JSON read per
    file instead of hashing every byte). One JSON file per source path, so concurrent runs
    for other models never rewrite each other's entries.
    """

    def __init__(self, state_dir: str, settle_ns: int = SETTLE_NS) -> None:
        self.directory = os.path.join(state_dir, DIGESTS)
        self.settle_ns = settle_ns

    def _path(self, path: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(os.path.abspath(path).encode()).hexdigest() + ".json")

    def lookup(self, path: str, identity: FileIdentity) -> CachedDigest | None:
        """The digests stored for ``path`` if every field of its identity still matches."""
        entry = _load_json(self._path(path))
        if not entry or entry.get("path") != os.path.abspath(path) or entry.get("identity") != identity.as_dict():
            return None
        try:
            return CachedDigest(sha256=str(entry["sha256"]),
                                etags={int(layout): str(etag) for layout, etag in entry.get("etags", {}).items()},
                                crc32s={int(layout): [str(crc) for crc in crcs] for layout, crcs in entry.get("crc32s", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def store(self, path: str, identity: FileIdentity, found: CachedDigest, read_started_ns: int) -> bool:
        """Keep the digests read from ``path`` when the file is settled and did not change while read.

        ``identity`` is the stat taken before the read began (at ``read_started_ns``, wall
        clock); digests already stored for other layouts of the same content are kept.
        """
        if identity.ctime_ns > read_started_ns - self.settle_ns or identity.mtime_ns > read_started_ns - self.settle_ns:
            return False
        try:
            if FileIdentity.of(path) != identity:
                return False
            merged = CachedDigest(found.sha256)
            known = self.lookup(path, identity)
            if known and known.sha256 == found.sha256:
                merged = known
            merged.etags.update(found.etags)
            merged.crc32s.update(found.crc32s)
            os.makedirs(self.directory, exist_ok=True)
            write_json_atomic(self._path(path), {
                "path": os.path.abspath(path), "identity": identity.as_dict(), "sha256": merged.sha256,
                "etags": {str(k): v for k, v in merged.etags.items()},
                "crc32s": {str(k): v for k, v in merged.crc32s.items()}})
        except OSError:
            return False  # a read-only state_dir only costs re-hashing next time
        return True
