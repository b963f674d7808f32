# -*- coding: utf-8 -*-
"""An in-memory S3 that checks what it is sent, as a real server does.

Bodies are verified against their Content-MD5 or x-amz-checksum-crc32 (BadDigest otherwise), a
part must carry the checksum its upload was created with, CompleteMultipartUpload checks
each part's ETag and checksum and their order, and a body with no checksum at all fails
the test: the engine promises one on every body. ``crc=False`` plays a server that ignores
the additional checksums (no check, no echo); ``corrupt`` flips a byte of what is stored,
``misassemble`` answers a whole-object CRC32 of the parts in reverse order.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import zlib
from types import SimpleNamespace

from botocore.exceptions import ClientError

WRITES = {"put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload", "abort_multipart_upload",
          "delete_objects", "create_bucket"}


def client_error(code, status, op="Op", message=None):
    return ClientError({"Error": {"Code": code, "Message": message or code + " message"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


def crc32(body):
    return base64.b64encode((zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "big")).decode()


def md5_etag(bodies):
    """The ETag of a multipart object made of ``bodies``."""
    return hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest() + "-%d" % len(bodies)


def _now():
    """LastModified of a write: the wall clock, as a server on this host would stamp it."""
    return datetime.datetime.now(datetime.timezone.utc)


class FakeS3:
    """Enough of S3's semantics for the engine: md5 ETags, multipart ETags, metadata, checksums, pagination."""

    def __init__(self, bucket="bkt", crc=True):
        self.bucket = bucket
        self.buckets = {bucket}
        self.objects = {}
        self.uploads = {}
        self.calls = []
        self.sent = []
        self.fail = {}
        self.crc = crc
        self.corrupt = False
        self.misassemble = False
        self._ids = itertools.count(1)
        self.meta = SimpleNamespace(region_name="us-east-1")

    def _record(self, name, **kwargs):
        self.calls.append((name, kwargs.get("Key"), kwargs.get("PartNumber")))
        hook = self.fail.get(name)
        if hook is not None:
            hook(**kwargs)
        if kwargs.get("Bucket") not in self.buckets and name != "create_bucket":
            raise client_error("NoSuchBucket", 404, name)

    def writes(self):
        return [call for call in self.calls if call[0] in WRITES]

    def _receive(self, body, content_md5, checksum_crc32, op):
        """What the server stores of ``body`` after checking its checksums; the echoed CRC32 or None.

        ``body`` is bytes or a readable stream, read to its end with the sizes http.client asks for.
        """
        if hasattr(body, "read"):
            blocks = []
            for block in iter(lambda: body.read(16384), b""):
                blocks.append(block)
            body = b"".join(blocks)
        self.sent.append((op, dict(md5=content_md5 is not None, crc32=checksum_crc32 is not None)))
        if content_md5 is None and checksum_crc32 is None:
            raise AssertionError("%s without a checksum the server verifies" % op)
        if content_md5 is not None and base64.b64decode(content_md5) != hashlib.md5(body).digest():
            raise client_error("BadDigest", 400, op)
        if self.crc and checksum_crc32 is not None and checksum_crc32 != crc32(body):
            raise client_error("BadDigest", 400, op)
        stored = body[:-1] + bytes([body[-1] ^ 1]) if self.corrupt and body else body
        return stored, (crc32(stored) if self.crc and checksum_crc32 is not None else None)

    def list_objects_v2(self, Bucket, Prefix="", ContinuationToken=None):
        self._record("list_objects_v2", Bucket=Bucket)
        keys = sorted(k for (b, k) in self.objects if b == Bucket and k.startswith(Prefix))
        start = int(ContinuationToken or 0)
        page = keys[start:start + 2]
        contents = [{"Key": k, "Size": len(self.objects[(Bucket, k)]["body"]), "ETag": '"%s"' % self.objects[(Bucket, k)]["etag"],
                     "LastModified": self.objects[(Bucket, k)]["modified"]} for k in page]
        more = start + 2 < len(keys)
        return {"Contents": contents, "IsTruncated": more, "NextContinuationToken": str(start + 2) if more else None}

    def head_bucket(self, Bucket):
        hook = self.fail.get("head_bucket")
        if hook is not None:
            hook(Bucket=Bucket)
        if Bucket not in self.buckets:
            raise client_error("404", 404, "HeadBucket")

    def create_bucket(self, Bucket, **kwargs):
        self._record("create_bucket", Bucket=Bucket)
        self.buckets.add(Bucket)

    def head_object(self, Bucket, Key, PartNumber=None):
        self._record("head_object", Bucket=Bucket, Key=Key, PartNumber=PartNumber)
        obj = self.objects.get((Bucket, Key))
        if obj is None:
            raise client_error("404", 404, "HeadObject")
        length = len(obj["body"]) if not PartNumber else obj["parts"][PartNumber - 1]
        return {"ContentLength": length, "ETag": '"%s"' % obj["etag"], "Metadata": dict(obj["metadata"])}

    def put(self, key, body, metadata=None, parts=None, modified=None):
        """Place an object as another tool would have (multipart when ``parts`` gives the part size)."""
        bodies = [body[i:i + parts] for i in range(0, len(body), parts)] if parts else None
        etag = md5_etag(bodies) if bodies else hashlib.md5(body).hexdigest()
        self.objects[(self.bucket, key)] = {"body": body, "etag": etag, "metadata": dict(metadata or {}),
                                            "parts": [len(b) for b in bodies] if bodies else [len(body)],
                                            "modified": modified or _now(), "extra": {}}

    def put_object(self, Bucket, Key, Body, Metadata, ContentMD5=None, ChecksumCRC32=None, **extra):
        self._record("put_object", Bucket=Bucket, Key=Key)
        stored, echo = self._receive(Body, ContentMD5, ChecksumCRC32, "PutObject")
        etag = hashlib.md5(stored).hexdigest()
        self.objects[(Bucket, Key)] = {"body": stored, "etag": etag, "metadata": Metadata, "parts": [len(stored)],
                                       "extra": extra, "modified": _now()}
        response = {"ETag": '"%s"' % etag}
        if echo:
            response["ChecksumCRC32"] = echo
        return response

    def create_multipart_upload(self, Bucket, Key, Metadata, ChecksumAlgorithm=None, **extra):
        self._record("create_multipart_upload", Bucket=Bucket, Key=Key)
        upload_id = "u%d" % next(self._ids)
        self.uploads[upload_id] = {"Bucket": Bucket, "Key": Key, "Metadata": Metadata, "parts": {}, "crcs": {},
                                   "Initiated": upload_id, "algorithm": ChecksumAlgorithm if self.crc else None}
        return {"UploadId": upload_id}

    def upload_part(self, Bucket, Key, UploadId, PartNumber, Body, ContentMD5=None, ChecksumCRC32=None):
        self._record("upload_part", Bucket=Bucket, Key=Key, PartNumber=PartNumber)
        upload = self.uploads[UploadId]
        if self.crc and (upload["algorithm"] == "CRC32") != (ChecksumCRC32 is not None):
            raise client_error("InvalidRequest", 400, "UploadPart", "Checksum Type mismatch")
        stored, echo = self._receive(Body, ContentMD5, ChecksumCRC32, "UploadPart")
        upload["parts"][PartNumber] = stored
        upload["crcs"][PartNumber] = echo
        response = {"ETag": '"%s"' % hashlib.md5(stored).hexdigest()}
        if echo:
            response["ChecksumCRC32"] = echo
        return response

    def list_multipart_uploads(self, Bucket, Prefix="", **kwargs):
        self._record("list_multipart_uploads", Bucket=Bucket)
        return {"Uploads": [{"Key": u["Key"], "UploadId": uid, "Initiated": u["Initiated"]} for uid, u in sorted(self.uploads.items())
                            if u["Bucket"] == Bucket and u["Key"].startswith(Prefix)], "IsTruncated": False}

    def list_parts(self, Bucket, Key, UploadId, **kwargs):
        self._record("list_parts", Bucket=Bucket, Key=Key)
        upload = self.uploads[UploadId]
        parts = []
        for number, body in sorted(upload["parts"].items()):
            part = {"PartNumber": number, "Size": len(body), "ETag": '"%s"' % hashlib.md5(body).hexdigest()}
            if upload["crcs"].get(number):
                part["ChecksumCRC32"] = upload["crcs"][number]
            parts.append(part)
        return {"Parts": parts, "IsTruncated": False}

    def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload):
        self._record("complete_multipart_upload", Bucket=Bucket, Key=Key)
        upload = self.uploads[UploadId]
        listed = MultipartUpload["Parts"]
        numbers = [p["PartNumber"] for p in listed]
        if numbers != sorted(set(numbers)):
            raise client_error("InvalidPartOrder", 400, "CompleteMultipartUpload")
        for part in listed:
            body = upload["parts"].get(part["PartNumber"])
            if body is None or part["ETag"].strip('"') != hashlib.md5(body).hexdigest():
                raise client_error("InvalidPart", 400, "CompleteMultipartUpload")
            if upload["algorithm"] and part.get("ChecksumCRC32") != upload["crcs"][part["PartNumber"]]:
                raise client_error("InvalidPart", 400, "CompleteMultipartUpload", "checksum of part %d" % part["PartNumber"])
        self.uploads.pop(UploadId)
        bodies = [upload["parts"][n] for n in numbers]
        etag = md5_etag(bodies)
        self.objects[(Bucket, Key)] = {"body": b"".join(bodies), "etag": etag, "metadata": upload["Metadata"],
                                       "parts": [len(b) for b in bodies], "modified": _now()}
        response = {"ETag": '"%s"' % etag}
        if upload["algorithm"]:
            joined = b"".join(base64.b64decode(upload["crcs"][n]) for n in (numbers[::-1] if self.misassemble else numbers))
            response["ChecksumCRC32"] = "%s-%d" % (crc32(joined), len(numbers))
        return response

    def abort_multipart_upload(self, Bucket, Key, UploadId):
        self._record("abort_multipart_upload", Bucket=Bucket, Key=Key)
        self.uploads.pop(UploadId)

    def delete_objects(self, Bucket, Delete):
        self._record("delete_objects", Bucket=Bucket)
        for item in Delete["Objects"]:
            self.objects.pop((Bucket, item["Key"]), None)
        return {}
