"""S3 helpers for the minio_upload integration tests: a boto3 client on the testbed store,
throw-away buckets, object snapshots, and running the module as a killable process."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MiB = 1024 * 1024


def client(s3_env: dict[str, str], **overrides: str) -> Any:
    env = {**s3_env, **overrides}
    return boto3.client(
        "s3", endpoint_url=env["AWS_S3_ENDPOINT"], region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 2}),
    )


def unique_bucket() -> str:
    return "it-up-" + uuid.uuid4().hex[:12]


def purge(s3: Any, bucket: str) -> None:
    """Abort uploads, delete objects and the bucket (best effort: tests may have left none)."""
    try:
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except s3.exceptions.ClientError:
        return False


def snapshot(s3: Any, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """key -> size, ETag, LastModified and sha256 metadata: compare before/after a run."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=bucket, Key=obj["Key"])
            found[obj["Key"]] = {"size": obj["Size"], "etag": obj["ETag"], "last_modified": head["LastModified"],
                                 "sha256": head.get("Metadata", {}).get("sha256")}
    return found


def uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """Incompressible content, written in 1 MiB blocks to keep memory flat."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            handle.write(os.urandom(min(MiB, left)))
            left -= min(MiB, left)
    return path


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def module_args(s3_env: dict[str, str], **args: Any) -> dict[str, Any]:
    return {"endpoint_url": s3_env["AWS_S3_ENDPOINT"], "access_key": s3_env["AWS_ACCESS_KEY_ID"],
            "secret_key": s3_env["AWS_SECRET_ACCESS_KEY"], "region": s3_env.get("AWS_DEFAULT_REGION", "us-east-1"), **args}


def ansible_command(name: str, args: dict[str, Any], *flags: str) -> list[str]:
    return [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", "-m", f"rhoai.gpuaas.{name}",
            "-a", json.dumps(args), *flags]


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # JSON results (ansible.cfg asks for YAML, which `result_of` cannot find in the output).
    env.update({"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "PATH": f"{BIN}:{env.get('PATH', '')}",
                **extra})
    return env


def run_raw(name: str, args: dict[str, Any], *flags: str, **env: str) -> subprocess.CompletedProcess:
    """Run the module with the default callback, keeping all output (for -vvv leak checks)."""
    return subprocess.run(ansible_command(name, args, *flags), capture_output=True, text=True,
                          env=ansible_env(**env), cwd=ROOT, timeout=600)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc (Ansible's workers call setsid, so a
    process group does not hold the module process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def kill_tree(root: int) -> None:
    for pid in process_tree(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def download_sha256(s3: Any, bucket: str, key: str) -> str:
    """The sha256 of the object's bytes as the server returns them (not its metadata)."""
    digest = hashlib.sha256()
    for block in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MiB):
        digest.update(block)
    return digest.hexdigest()


def wait_settled(root: Path, settle: float = 2.1) -> None:
    """Until every file under ``root`` last changed ``settle`` s ago: the module keeps digests only of settled files."""
    newest = max(p.stat().st_ctime for p in root.rglob("*"))
    while time.time() < newest + settle:
        time.sleep(0.1)


def result_of(stdout: str, stderr: str = "") -> dict[str, Any]:
    """The task result from the default callback's last ``host | STATUS => {...}`` block.

    That callback drops the ``failed`` key: ``failed`` is set from the STATUS (``FAILED!``).
    """
    start = stdout.rfind(" => {")
    if start < 0:
        raise AssertionError(f"no result in ansible output:\n{stdout}\n{stderr}")
    result = json.loads(stdout[start + 4:])
    result["failed"] = stdout[:start].rsplit("| ", 1)[-1].strip() == "FAILED!"
    return result


def start_module(name: str, args: dict[str, Any], **env: str) -> subprocess.Popen:
    """The module running in the background; its result is the last ``=> {...}`` of its stdout."""
    return subprocess.Popen(ansible_command(name, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ansible_env(**env), cwd=ROOT)


def kill_when(name: str, args: dict[str, Any], ready: Callable[[], bool], timeout: float = 120, **env: str) -> bool:
    """Start the module, SIGKILL ansible and the module process once ``ready()``; False if it finished first."""
    proc = subprocess.Popen(ansible_command(name, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ansible_env(**env), cwd=ROOT)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                kill_tree(proc.pid)
                proc.wait()
                return True
            time.sleep(0.02)
        return False
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
