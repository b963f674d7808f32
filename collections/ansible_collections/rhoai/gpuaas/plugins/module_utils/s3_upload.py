# -*- coding: utf-8 -*-
# Copyright: rhoai.gpuaas maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What rhoai.gpuaas.minio_upload does, from its params to its result.

Why apart from the module file: the module is documentation and an argument spec; this
is the order of things (check the options, find the files, mirror them, describe the
change), unit-tested with a fake S3 client.
"""

from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_client import BOTO3_IMPORT_ERROR, HAS_BOTO3, redact
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_options import Request, Source, request_from_params, secrets_of
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import (
    LocalFile,
    S3UploadError,
    diff_text,
    local_files,
    resolve_hf_snapshot,
)
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_transfer import Uploader


def source_files(source: Source, prefix: str) -> list[LocalFile]:
    """The files to mirror with their keys: a Hugging Face snapshot is fetched (or found offline) first."""
    if source.hf_repo:
        root = resolve_hf_snapshot(source.hf_repo, source.hf_revision, source.hf_cache_dir, source.hf_token,
                                   source.include, source.exclude)
        return local_files(root, prefix, source.include, source.exclude, param="hf_repo")
    return local_files(source.src or "", prefix, source.include, source.exclude)


def upload(request: Request, diff: bool, client: Any = None) -> dict[str, Any]:
    """Mirror the source to the target; the result dict minio_upload returns."""
    files = source_files(request.source, request.target.prefix)
    uploader = Uploader(request.target, request.options, client=client)
    result = uploader.run(files)
    result.update(bucket=request.target.bucket, prefix=request.target.prefix, state_dir=request.options.state_dir)
    if diff:
        result["diff"] = diff_text(result["files"], uploader.remote)
    return result


def run(module: Any) -> dict[str, Any]:
    """The body ``runner.run_module`` calls: S3UploadError (a GpuaasError) for anything the user can fix."""
    if not HAS_BOTO3:
        raise S3UploadError(missing_required_lib("boto3"), exception=BOTO3_IMPORT_ERROR)
    request = request_from_params(module.params, module.check_mode)
    return upload(request, diff=module._diff)


def redactor(params: dict[str, Any]) -> Callable[[str], str]:
    """Masks the call's credentials in a failure message (they may come from AWS_* variables)."""
    secrets = secrets_of(params)
    return lambda text: redact(text, secrets)
