#!/usr/bin/env python3
"""Upload the same model-like data set with minio_upload, boto3, s5cmd and awscli, side by side.

Each tool runs as a child process, so its client CPU time is the children's rusage
(user + system) around the run; the S3 server's own CPU time is read from /proc. Each run
uses a fresh prefix per tool (nothing can be skipped), the tools take turns in a rotating
order, and the median of --runs is reported with ratios against s5cmd. After an upload the
unchanged re-run is timed too: minio_upload (digest cache warm, and cold), its
``compare: size_mtime``, ``s5cmd sync`` and ``aws s3 sync``. Results go to
benchmarks/results/upload-<timestamp>.json. Nothing here asserts timings.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import MiB, parse_size  # noqa: E402

GiB = 1024 * MiB
TOOLS = ("minio_upload", "minio_upload_ansible", "boto3", "s5cmd", "awscli")
RERUNS = {
    "minio_upload": ("minio_upload", "minio_upload_no_cache", "minio_upload_size_mtime"),
    "minio_upload_ansible": ("minio_upload_ansible",),
    "s5cmd": ("s5cmd_sync",),
    "awscli": ("aws_s3_sync",),
}
EXCLUDE = ".manifest.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2GiB", help="total data set size (default 2GiB), e.g. 256MiB")
    parser.add_argument("--shards", type=int, default=4, help="large files sharing most of --size")
    parser.add_argument("--small-files", type=int, default=8, help="small JSON files (config, tokenizer...)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma list of %s" % ", ".join(TOOLS))
    parser.add_argument("--env-file", default=str(ROOT / ".testbed" / "s3.env"), help="KEY=value lines with AWS_* settings")
    parser.add_argument("--server-pid-file", default=str(ROOT / ".testbed" / "run" / "s3.pid"),
                        help="pid file of the S3 server on this host, for its CPU time (skipped when absent)")
    parser.add_argument("--bucket-prefix", default="bench-upload",
                        help="each measurement gets its own bucket <prefix>-<session>-<n>, deleted afterwards")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "rhoai-bench-upload"))
    parser.add_argument("--part-size", default="32MiB", help="part size of minio_upload and boto3")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrency of minio_upload and boto3")
    parser.add_argument("--request-checksum", default="crc32", choices=["crc32", "md5"], help="minio_upload request_checksum")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args()


def load_env(path: str) -> dict[str, str]:
    env = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip().removeprefix("export ")] = value.strip().strip('"')
    return env


def make_dataset(root: Path, size: int, shards: int, small: int) -> list[Path]:
    """A few large incompressible shards plus small JSON files; reused when already generated."""
    manifest = root / EXCLUDE
    spec = {"size": size, "shards": shards, "small": small}
    if manifest.exists() and json.loads(manifest.read_text()) == spec:
        return sorted(p for p in root.rglob("*") if p.is_file() and p.name != EXCLUDE)
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file():
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    small_bytes = 0
    for index in range(small):
        body = json.dumps({"name": "file-%d" % index, "values": list(range(index * 100))})
        (root / ("config-%02d.json" % index)).write_text(body)
        small_bytes += len(body)
    shard_size = max(1, (size - small_bytes) // shards)
    for index in range(shards):
        with open(root / ("model-%05d-of-%05d.safetensors" % (index + 1, shards)), "wb") as handle:
            left = shard_size
            while left:
                chunk = min(16 * MiB, left)
                handle.write(os.urandom(chunk))
                left -= chunk
    manifest.write_text(json.dumps(spec))
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != EXCLUDE)


def s3_client(env: dict[str, str]):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=env["AWS_S3_ENDPOINT"], region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


def drop_bucket(s3, bucket: str) -> None:
    """Delete the bucket with everything in it.

    Why a bucket per measurement: SeaweedFS (the testbed's S3) keeps deleted objects on disk
    until it vacuums its volumes, but frees a deleted bucket's volumes at once. Deleting
    objects only, five runs of the 2 GiB data set left 56 GB on disk.
    """
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


# ---------------------------------------------------------------- the child processes


def child_minio_upload(spec: dict) -> None:
    """The module's engine without Ansible: the same code path, none of Ansible's start-up."""
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_options import request_from_params
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_upload import upload
    request = request_from_params(spec, check_mode=False)
    result = upload(request, diff=False)
    result.pop("files")
    print(json.dumps(result))


def child_boto3(spec: dict) -> None:
    """boto3's own TransferManager: ``upload_file`` per file with a TransferConfig like minio_upload's."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    size = parse_size(spec["part_size"])
    config = TransferConfig(multipart_threshold=size, multipart_chunksize=size, max_concurrency=spec["concurrency"])
    client = boto3.client("s3", endpoint_url=spec["endpoint_url"], region_name=spec["region"],
                          aws_access_key_id=spec["access_key"], aws_secret_access_key=spec["secret_key"],
                          config=Config(s3={"addressing_style": "path"}, max_pool_connections=spec["concurrency"] + 4))
    root = Path(spec["src"])
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != EXCLUDE):
        client.upload_file(str(path), spec["bucket"], spec["prefix"] + path.relative_to(root).as_posix(), Config=config)


# ---------------------------------------------------------------- measuring


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int | None) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds; 0 when unknown."""
    if not pid:
        return 0.0
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Bench:
    """One command per tool and re-run variant; each runs as a child process."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], data: Path) -> None:
        self.args, self.env, self.data = args, env, data
        self.endpoint = env["AWS_S3_ENDPOINT"]
        try:
            self.server_pid: int | None = int(Path(args.server_pid_file).read_text())
        except (OSError, ValueError):
            self.server_pid = None

    def spec(self, bucket: str, prefix: str, state: Path, **extra: object) -> dict:
        spec = {"src": str(self.data), "bucket": bucket, "prefix": prefix, "exclude": [EXCLUDE],
                "endpoint_url": self.endpoint, "region": self.env.get("AWS_DEFAULT_REGION", "us-east-1"),
                "access_key": self.env["AWS_ACCESS_KEY_ID"], "secret_key": self.env["AWS_SECRET_ACCESS_KEY"],
                "part_size": self.args.part_size, "concurrency": self.args.concurrency, "state_dir": str(state),
                "request_checksum": self.args.request_checksum}
        spec.update(extra)
        return spec

    def child(self, kind: str, spec: dict) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--spec", json.dumps(spec)]

    def command(self, tool: str, bucket: str, prefix: str, state: Path) -> list[str]:
        """``state`` is the state_dir of this upload and its re-runs: empty for the upload itself."""
        target = "s3://%s/%s" % (bucket, prefix)
        if tool == "minio_upload":
            return self.child("minio_upload", self.spec(bucket, prefix, state))
        if tool == "minio_upload_no_cache":
            return self.child("minio_upload", self.spec(bucket, prefix, state / "empty"))
        if tool == "minio_upload_size_mtime":
            return self.child("minio_upload", self.spec(bucket, prefix, state, compare="size_mtime"))
        if tool == "minio_upload_ansible":
            args = {k: v for k, v in self.spec(bucket, prefix, state).items() if k not in ("access_key", "secret_key")}
            return [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                    "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", "rhoai.gpuaas.minio_upload",
                    "-a", json.dumps(args)]
        if tool == "boto3":
            return self.child("boto3", self.spec(bucket, prefix, state))
        if tool == "s5cmd":
            return [str(BIN / "s5cmd"), "--endpoint-url", self.endpoint, "cp", "--exclude", EXCLUDE,
                    "%s/*" % self.data, target]
        if tool == "s5cmd_sync":
            return [str(BIN / "s5cmd"), "--endpoint-url", self.endpoint, "sync", "--exclude", EXCLUDE,
                    "%s/" % self.data, target]
        if tool == "awscli":
            return [str(BIN / "aws"), "--endpoint-url", self.endpoint, "s3", "cp", "--recursive", "--only-show-errors",
                    "--exclude", EXCLUDE, str(self.data), target]
        if tool == "aws_s3_sync":
            return [str(BIN / "aws"), "--endpoint-url", self.endpoint, "s3", "sync", "--only-show-errors",
                    "--exclude", EXCLUDE, str(self.data), target]
        raise ValueError(tool)

    def measure(self, tool: str, bucket: str, prefix: str, state: Path) -> dict:
        """Wall seconds, client CPU seconds (the child and its reaped children) and server CPU seconds."""
        env = {**os.environ, **self.env, "PATH": "%s:%s" % (BIN, os.environ.get("PATH", "")),
               "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections")}
        cpu, server, start = children_cpu(), process_cpu(self.server_pid), time.perf_counter()
        proc = subprocess.run(self.command(tool, bucket, prefix, state), env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        used, served = children_cpu() - cpu, process_cpu(self.server_pid) - server
        if proc.returncode != 0:
            raise SystemExit("%s failed:\n%s\n%s" % (tool, proc.stdout[-2000:], proc.stderr[-2000:]))
        row = {"seconds": wall, "cpu_seconds": used, "server_cpu_seconds": served}
        if tool.startswith("minio_upload") and tool != "minio_upload_ansible":
            result = json.loads(proc.stdout)
            row.update(elapsed=result["elapsed"], hashed_bytes=result["hashed_bytes"], sent_bytes=result["bytes"],
                       checksum=result["checksum"])
        return row


def median_row(rows: list[dict], total: int) -> dict:
    seconds = statistics.median(row["seconds"] for row in rows)
    cpu = statistics.median(row["cpu_seconds"] for row in rows)
    server = statistics.median(row["server_cpu_seconds"] for row in rows)
    out = {"runs": rows, "median_seconds": seconds, "mb_per_s": total / seconds / 1e6,
           "cpu_seconds": cpu, "cpu_s_per_gib": cpu / (total / GiB), "server_cpu_s_per_gib": server / (total / GiB)}
    for key in ("hashed_bytes", "sent_bytes", "checksum"):
        if key in rows[0]:
            out[key] = rows[-1][key]
    if "elapsed" in rows[0]:   # the engine's own time, without the interpreter's start-up and imports
        out["median_elapsed"] = statistics.median(row["elapsed"] for row in rows)
    return out


def run_child(args: argparse.Namespace) -> None:
    spec = json.loads(args.spec)
    {"minio_upload": child_minio_upload, "boto3": child_boto3}[args.child](spec)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args)
        return
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        raise SystemExit("unknown tools: %s" % ", ".join(sorted(unknown)))
    env = load_env(args.env_file)
    files = make_dataset(Path(args.data_dir), parse_size(args.size), args.shards, args.small_files)
    total = sum(path.stat().st_size for path in files)
    newest = max(path.stat().st_ctime for path in files)
    while time.time() < newest + 2.5:  # minio_upload keeps digests only of files settled for 2 s
        time.sleep(0.1)
    s3 = s3_client(env)
    uploads: dict[str, list[dict]] = {tool: [] for tool in tools}
    reruns: dict[str, list[dict]] = {}
    session = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as states:
        bench = Bench(args, env, Path(args.data_dir))
        for run in range(args.runs):
            order = tools[run % len(tools):] + tools[:run % len(tools)]
            for tool in order:
                bucket = "%s-%s-%d-%s" % (args.bucket_prefix, session, run, tool.replace("_", "-"))
                prefix = "model/"
                state = Path(states) / ("%s-%d" % (tool, run))   # a first upload: no digests yet
                s3.create_bucket(Bucket=bucket)
                try:
                    uploads[tool].append(bench.measure(tool, bucket, prefix, state))
                    row = uploads[tool][-1]
                    print("run %d %-24s %7.2fs  cpu %6.2fs  server cpu %6.2fs" % (
                        run + 1, tool, row["seconds"], row["cpu_seconds"], row["server_cpu_seconds"]), flush=True)
                    for variant in RERUNS.get(tool, ()):
                        reruns.setdefault(variant, []).append(bench.measure(variant, bucket, prefix, state))
                        row = reruns[variant][-1]
                        print("      re-run %-17s %7.2fs  cpu %6.2fs" % (variant, row["seconds"], row["cpu_seconds"]), flush=True)
                finally:
                    drop_bucket(s3, bucket)
    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "endpoint": env["AWS_S3_ENDPOINT"],
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "dataset": {"bytes": total, "files": len(files), "shards": args.shards, "small_files": args.small_files},
        "runs": args.runs,
        "settings": {"part_size": args.part_size, "concurrency": args.concurrency, "request_checksum": args.request_checksum},
        "uploads": {tool: median_row(rows, total) for tool, rows in uploads.items()},
        "reruns": {tool: median_row(rows, total) for tool, rows in reruns.items()},
    }
    if "s5cmd" in report["uploads"]:
        base = report["uploads"]["s5cmd"]
        for data in report["uploads"].values():
            data["throughput_vs_s5cmd"] = data["mb_per_s"] / base["mb_per_s"]
            data["cpu_vs_s5cmd"] = data["cpu_s_per_gib"] / base["cpu_s_per_gib"] if base["cpu_s_per_gib"] else None
    out = ROOT / "benchmarks" / "results" / ("upload-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("\n%d files, %.1f MiB, median of %d runs" % (len(files), total / MiB, args.runs))
    print("%-26s %8s %9s %9s %12s %10s" % ("upload", "seconds", "MB/s", "x s5cmd", "cpu s/GiB", "cpu x s5cmd"))
    for tool, data in report["uploads"].items():
        print("%-26s %8.2f %9.1f %9s %12.2f %10s" % (
            tool, data["median_seconds"], data["mb_per_s"], "%.2f" % data["throughput_vs_s5cmd"] if "throughput_vs_s5cmd" in data else "-",
            data["cpu_s_per_gib"], "%.2f" % data["cpu_vs_s5cmd"] if data.get("cpu_vs_s5cmd") else "-"))
    print("%-26s %8s %9s %12s %14s" % ("unchanged re-run", "seconds", "elapsed", "cpu s/GiB", "hashed bytes"))
    for tool, data in report["reruns"].items():
        elapsed = "%.3f" % data["median_elapsed"] if "median_elapsed" in data else "-"
        print("%-26s %8.2f %9s %12.3f %14s" % (tool, data["median_seconds"], elapsed, data["cpu_s_per_gib"],
                                              data.get("hashed_bytes", "-")))
    print("results: %s" % out)


if __name__ == "__main__":
    main()
