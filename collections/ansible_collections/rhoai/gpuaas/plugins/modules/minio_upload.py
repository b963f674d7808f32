#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: minio_upload
short_description: Upload model weights to an S3-compatible store, fast, resumable and verified
version_added: 0.1.0
description:
  - Mirrors a local file or directory, or a Hugging Face repository snapshot, to C(s3://bucket/prefix/) on any
    S3-compatible store (MinIO, SeaweedFS, Ceph RGW, AWS S3).
  - Files larger than O(part_size) are sent as parallel multipart uploads, smaller ones with a single PUT.
    O(concurrency) requests run at once, across parts and files. Every request carries a checksum of its body that
    the server verifies, so it rejects corrupted bytes (see O(request_checksum)).
  - Each object gets its file's sha256 in the metadata key C(sha256) (C(x-amz-meta-sha256)).
  - A file is skipped when the remote object has the same size and the same ETag, the ETag being computed locally
    with the remote object's own part layout (part count from the ETag, part size from the object's
    C(part-size) metadata, a HEAD with C(PartNumber=1), or inferred). When the ETag is not an MD5
    (SSE-KMS), the C(sha256) metadata decides.
  - An interrupted multipart upload is continued by the next run. The uploads this host starts are recorded
    (sha256, size, mtime, part size) in O(state_dir), because S3 cannot return the metadata of an unfinished
    upload. An upload is resumed only when that record matches the file's sha256 and size; parts the server
    already holds are reused when their size and MD5 (and CRC32) match the local part. Other unfinished uploads
    under the prefix are aborted. Objects appear at their key only once complete.
  - The sha256 and ETags computed for a file are kept in O(state_dir) too, keyed by its path, size, mtime, ctime,
    inode and device; while all of these are unchanged the file is not read again, so an unchanged re-run reads
    no file content. Editing a file always changes its ctime (which, unlike the mtime, cannot be set back).
  - A file is read twice, first for its sha256 and the checksum of each part (both are sent before its first byte),
    then to send it, 1 MiB at a time from the file (no part-sized buffers); the second read is usually served from
    the page cache. With the digest cache, a file already read on this host is only read to send.
  - Do not run two uploads to the same bucket and prefix at the same time; each aborts the other's unfinished
    uploads.
author:
  - rhoai.gpuaas maintainers (!UNKNOWN)
requirements:
  - python >= 3.8
  - boto3 >= 1.35
  - huggingface_hub (only with O(hf_repo))
attributes:
  check_mode:
    support: full
    description: Reads and hashes the local files and lists the bucket, then reports the plan without writing.
  diff_mode:
    support: full
    description: Lists the keys that would be uploaded (with the reason) or deleted, and their current state.
options:
  src:
    description:
      - Local file or directory to upload. Directories are walked recursively; file symlinks are followed,
        directory symlinks are not.
      - Keys are O(prefix) followed by the path relative to O(src) (the file name when O(src) is a file).
      - Mutually exclusive with O(hf_repo).
    type: path
  hf_repo:
    description:
      - Hugging Face repository (C(org/name)) to fetch with C(huggingface_hub.snapshot_download) into
        O(hf_cache_dir) and upload. Keys are relative to the snapshot root.
      - With the environment variable C(HF_HUB_OFFLINE=1) the snapshot is resolved from the cache only
        (C(models--org--name/snapshots/<commit>/), C(refs/<branch>)).
    type: str
  hf_revision:
    description: Branch, tag or commit of O(hf_repo).
    type: str
    default: main
  hf_token:
    description: Hugging Face token for gated or private repositories. Falls back to C(HF_TOKEN).
    type: str
  hf_cache_dir:
    description: Hugging Face cache directory. Defaults to the C(huggingface_hub) default (C(HF_HUB_CACHE)).
    type: path
  include:
    description:
      - Only upload files whose path relative to the source root matches one of these C(fnmatch) patterns
        (C(*) also matches C(/)). Empty means every file. Also passed to C(snapshot_download) as C(allow_patterns).
    type: list
    elements: str
    default: []
  exclude:
    description: Skip files matching any of these patterns (same syntax as O(include)).
    type: list
    elements: str
    default: []
  endpoint_url:
    description:
      - S3 endpoint, for example C(http://minio.example:9000). Omit for AWS S3.
      - Falls back to the environment variables C(AWS_S3_ENDPOINT) (the key of OpenShift AI data connections),
        C(AWS_ENDPOINT_URL_S3), C(AWS_ENDPOINT_URL).
    type: str
  bucket:
    description: Bucket name.
    type: str
    required: true
  prefix:
    description:
      - Key prefix (a "folder"); leading and trailing slashes are normalized, so C(models/x) and C(/models/x/)
        are the same. Empty means the bucket root (with O(delete=true) the whole bucket is mirrored).
    type: str
    default: ''
  region:
    description: Region for request signing and bucket creation. Falls back to C(AWS_DEFAULT_REGION), C(AWS_REGION),
      then C(us-east-1) when O(endpoint_url) is set.
    type: str
  access_key:
    description: Access key ID. Falls back to C(AWS_ACCESS_KEY_ID), then boto3's credential chain.
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: Secret access key. Falls back to C(AWS_SECRET_ACCESS_KEY).
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: Session token for temporary credentials. Falls back to C(AWS_SESSION_TOKEN).
    type: str
  create_bucket:
    description: Create the bucket when it does not exist. Without it a missing bucket fails the task before
      anything is written.
    type: bool
    default: false
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description: CA bundle (PEM file) to verify the endpoint's certificate with, for private CAs.
    type: path
  addressing_style:
    description:
      - Bucket addressing. Defaults to C(path) when O(endpoint_url) is set (MinIO, SeaweedFS and Ceph rarely have
        wildcard DNS), else C(auto).
    type: str
    choices: [auto, path, virtual]
  part_size:
    description:
      - Multipart part size, as bytes or a size such as C(32MiB), C(64MB) or C(1G) (all powers of 1024), between
        5 MiB and 5 GiB. Files up to this size are sent with one PUT.
      - The default of 32 MiB keeps the request overhead negligible and loses at most O(concurrency) parts on an
        interruption. Parts are streamed from the file, so memory does not grow with it.
        It is raised per file when the file would need more than 10,000 parts.
      - Changing it does not re-upload unchanged files; comparison uses each object's own layout.
    type: str
    default: 32MiB
  concurrency:
    description: Parallel requests (parts and files). Also sizes the HTTP connection pool.
    type: int
    default: 8
  verify:
    description:
      - When true, with O(compare=checksum) an object is skipped only if its C(sha256) metadata also matches the
        local file (objects uploaded by other tools lack it and are uploaded again), and every uploaded object is
        read back with HEAD; a size, ETag or sha256 mismatch fails the task (it means a broken store or a
        concurrent writer, which re-uploading would hide).
      - When false, size and ETag decide and nothing is read back; each request is still checked by the server
        against its checksum (O(request_checksum)).
    type: bool
    default: true
  delete:
    description: Delete objects under O(prefix) that are not in the source (after all uploads succeeded).
    type: bool
    default: false
  sse:
    description: Server-side encryption to request. No encryption header is sent when unset.
    type: str
    choices: [AES256, aws:kms]
  sse_kms_key_id:
    description: KMS key for O(sse=aws:kms).
    type: str
  state_dir:
    description:
      - Directory for the resume records of interrupted uploads and the digest cache of local files, created when
        missing. Defaults to C($XDG_CACHE_HOME/rhoai.gpuaas/minio_upload), else
        C(~/.cache/rhoai.gpuaas/minio_upload).
      - Point it at persistent storage where the home directory is thrown away after each run (an AAP job's
        container), or uploads are not resumed and every re-run hashes every file again.
    type: path
  compare:
    description:
      - How a file already present under its key is recognised as unchanged.
      - V(checksum) compares content, with the ETag computed in the remote object's own part layout (and the
        C(sha256) metadata with O(verify=true)); thanks to the digest cache only new or changed files are read.
      - V(size_mtime) is s5cmd's and C(aws s3 sync)'s rule and reads no file and no object metadata. A file is
        unchanged when the object has the same size and is not older than the file. It misses an edit that keeps
        the size when the file's mtime is older than the object.
    type: str
    choices: [checksum, size_mtime]
    default: checksum
  request_checksum:
    description:
      - The checksum each request carries for the server to verify its body.
      - V(crc32) sends the S3 additional checksum C(x-amz-checksum-crc32) (C(ChecksumAlgorithm=CRC32)), about five
        times cheaper to compute than MD5. A server that does not answer with the checksum ignored it; then the
        body's MD5 is checked against the returned ETag and the following requests carry Content-MD5.
        With O(sse=aws:kms) Content-MD5 is always used, since such an ETag is no MD5.
      - V(md5) sends C(Content-MD5), which every S3-compatible server checks.
    type: str
    choices: [crc32, md5]
    default: crc32
  progress_file:
    description:
      - Write progress as JSON to this file, atomically, about every second and at the end. Keys C(phase)
        (planning, uploading, deleting, done, failed), C(bytes_done), C(bytes_total), C(files_done),
        C(files_total), C(current) (keys in flight), C(mb_per_s), C(eta_seconds), C(elapsed_seconds), C(updated).
      - Run the task with C(async) and C(poll=0) and read the file from a later task to follow a long upload.
      - Not written in check mode.
    type: path
notes:
  - Bad options (bucket and prefix names S3 refuses, part sizes out of range, a malformed O(endpoint_url), one
    credential without the other, missing files) fail the task before anything is read or written.
  - Keep part numbers in mind for huge files; S3 allows 10,000 parts per object, the module raises O(part_size)
    for a file that needs more.
  - Credentials given as parameters, or taken from C(AWS_*) variables through the parameter fallbacks, are never
    returned or logged.
seealso:
  - name: Data connections in OpenShift AI
    description: The C(AWS_*) keys a data connection secret holds, which this module also reads.
    link: https://docs.redhat.com/en/documentation/red_hat_openshift_ai_self-managed
"""

EXAMPLES = r"""
- name: Upload a model directory
  rhoai.gpuaas.minio_upload:
    src: /data/models/mistral-small
    endpoint_url: http://minio.minio.svc:9000
    bucket: models
    prefix: mistral-3-bf16
    access_key: "{{ minio_access_key }}"
    secret_key: "{{ minio_secret_key }}"
    create_bucket: true
    exclude: ["*.md", ".cache/*"]
    delete: true

- name: Upload a Hugging Face snapshot, credentials from a data connection's variables
  rhoai.gpuaas.minio_upload:
    hf_repo: mistralai/Devstral-Small-2505
    hf_revision: main
    hf_token: "{{ hf_token }}"
    hf_cache_dir: /data/hf-cache
    include: ["*.safetensors", "*.json", "tokenizer*"]
    bucket: models
    prefix: devstral-2
  environment:
    AWS_S3_ENDPOINT: "{{ conn.AWS_S3_ENDPOINT }}"
    AWS_ACCESS_KEY_ID: "{{ conn.AWS_ACCESS_KEY_ID }}"
    AWS_SECRET_ACCESS_KEY: "{{ conn.AWS_SECRET_ACCESS_KEY }}"

- name: Keep resume records and digests on a persistent volume (an AAP container group)
  rhoai.gpuaas.minio_upload:
    hf_repo: mistralai/Devstral-Small-2505
    hf_cache_dir: /runner/persistent/hf-cache
    state_dir: /runner/persistent/minio_upload
    bucket: models
    prefix: devstral-2

- name: Start a long upload in the background
  rhoai.gpuaas.minio_upload:
    src: /data/models/big
    bucket: models
    prefix: big
    endpoint_url: https://s3.internal.example
    ca_bundle: /etc/pki/internal-ca.pem
    progress_file: /tmp/upload-big.json
  async: 7200
  poll: 0
  register: upload_job

- name: Follow the progress file until the upload is done
  ansible.builtin.slurp:
    src: /tmp/upload-big.json
  register: progress
  failed_when: false  # the file appears once the upload has started
  until: progress.content is defined and (progress.content | b64decode | from_json).phase in ['done', 'failed']
  retries: 720
  delay: 10

- name: Collect the result
  ansible.builtin.async_status:
    jid: "{{ upload_job.ansible_job_id }}"
  register: upload
  until: upload.finished
  retries: 30
  delay: 2
"""

RETURN = r"""
uploaded:
  description: Number of files uploaded (in check mode, that would be uploaded).
  returned: always
  type: int
  sample: 4
unchanged:
  description:
    - Number of files already present with identical content (the C(skip) entries of RV(files)).
    - Not called C(skipped) because Ansible reads a true C(skipped) key as "the task was skipped".
  returned: always
  type: int
  sample: 12
deleted:
  description: Number of remote objects deleted (O(delete=true)).
  returned: always
  type: int
  sample: 0
resumed:
  description: Number of uploaded files whose interrupted multipart upload was continued.
  returned: always
  type: int
  sample: 1
aborted_uploads:
  description: Unfinished multipart uploads under the prefix that were aborted (in check mode, that exist and
    would be aborted or resumed).
  returned: always
  type: int
  sample: 0
bucket_created:
  description: Whether the bucket was (or, in check mode, would be) created.
  returned: always
  type: bool
  sample: false
bytes:
  description: Bytes sent (in check mode, that would be sent). Parts reused from an interrupted upload are not counted.
  returned: always
  type: int
  sample: 16106127360
reused_bytes:
  description: Bytes of parts reused from an interrupted upload instead of being sent again.
  returned: always
  type: int
  sample: 0
hashed_bytes:
  description: Bytes read to hash local files before deciding or uploading; 0 when every digest came from the digest
    cache in O(state_dir) (an unchanged re-run).
  returned: always
  type: int
  sample: 0
checksum:
  description: The request checksum used, V(crc32) or V(md5) (V(md5) also when the server ignored CRC32).
  returned: always
  type: str
  sample: crc32
state_dir:
  description: The directory holding the resume records and the digest cache.
  returned: always
  type: str
  sample: /home/runner/.cache/rhoai.gpuaas/minio_upload
elapsed:
  description: Wall time of the run in seconds, planning included.
  returned: always
  type: float
  sample: 42.7
mb_per_s:
  description: RV(bytes) / RV(elapsed) in megabytes (10^6 bytes) per second.
  returned: always
  type: float
  sample: 377.2
files:
  description: Every file of the source and every deleted object, sorted by key.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Object key.
      type: str
      sample: mistral-3-bf16/model-00001-of-00004.safetensors
    action:
      description: C(upload), C(skip) or C(delete).
      type: str
      sample: upload
    size:
      description: Size in bytes.
      type: int
      sample: 4983245824
    reason:
      description: Why; C(new), C(size), C(content), C(sha256) (metadata missing or different), C(newer)
        (O(compare=size_mtime)), C(resumed), C(same), C(absent from source).
      type: str
      sample: new
bucket:
  description: The bucket.
  returned: always
  type: str
  sample: models
prefix:
  description: The normalized prefix (empty or ending with C(/)).
  returned: always
  type: str
  sample: mistral-3-bf16/
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.rhoai.gpuaas.plugins.module_utils.runner import run_module
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_upload import redactor, run

ARGUMENT_SPEC = dict(
    src=dict(type="path"),
    hf_repo=dict(type="str"),
    hf_revision=dict(type="str", default="main"),
    hf_token=dict(type="str", no_log=True, fallback=(env_fallback, ["HF_TOKEN"])),
    hf_cache_dir=dict(type="path"),
    include=dict(type="list", elements="str", default=[]),
    exclude=dict(type="list", elements="str", default=[]),
    endpoint_url=dict(type="str", fallback=(env_fallback, ["AWS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
    region=dict(type="str", fallback=(env_fallback, ["AWS_DEFAULT_REGION", "AWS_REGION"])),
    access_key=dict(type="str", no_log=True, aliases=["aws_access_key_id"], fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])),
    secret_key=dict(type="str", no_log=True, aliases=["aws_secret_access_key"], fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
    session_token=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SESSION_TOKEN"])),
    create_bucket=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
    ca_bundle=dict(type="path"),
    addressing_style=dict(type="str", choices=["auto", "path", "virtual"]),
    part_size=dict(type="str", default="32MiB"),
    concurrency=dict(type="int", default=8),
    verify=dict(type="bool", default=True),
    delete=dict(type="bool", default=False),
    sse=dict(type="str", choices=["AES256", "aws:kms"]),
    sse_kms_key_id=dict(type="str", no_log=False),
    state_dir=dict(type="path"),
    compare=dict(type="str", default="checksum", choices=["checksum", "size_mtime"]),
    request_checksum=dict(type="str", default="crc32", choices=["crc32", "md5"]),
    progress_file=dict(type="path"),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("src", "hf_repo")],
        required_one_of=[("src", "hf_repo")],
        required_by={"sse_kms_key_id": "sse"},
        supports_check_mode=True,
    )
    run_module(module, run, redact=redactor(module.params))


if __name__ == "__main__":
    main()
