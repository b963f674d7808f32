#!/usr/bin/env python3
"""Upload the same model-like data set with minio_upload, s5cmd and `aws s3 cp`, side by side.

Each run uses a fresh prefix per tool (so nothing is skipped), the tools take turns in a
rotating order, and the median of --runs is reported with throughput ratios against s5cmd.
The unchanged re-run of minio_upload (everything skipped) is timed too. Results go to
benchmarks/results/upload-<timestamp>.json. Nothing here asserts timings.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_etag import MiB, parse_size  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_plan import local_files  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils.s3_transfer import Options, Target, Uploader  # noqa: E402

TOOLS = ("minio_upload", "minio_upload_ansible", "s5cmd", "awscli")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2GiB", help="total data set size (default 2GiB), e.g. 256MiB")
    parser.add_argument("--shards", type=int, default=4, help="large files sharing most of --size")
    parser.add_argument("--small-files", type=int, default=8, help="small JSON files (config, tokenizer...)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the median is reported")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma list of %s" % ", ".join(TOOLS))
    parser.add_argument("--env-file", default=str(ROOT / ".testbed" / "s3.env"), help="KEY=value lines with AWS_* settings")
    parser.add_argument("--bucket", default="bench-upload")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "rhoai-bench-upload"))
    parser.add_argument("--part-size", default="32MiB", help="minio_upload part_size")
    parser.add_argument("--concurrency", type=int, default=8, help="minio_upload concurrency")
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
    manifest = root / ".manifest.json"
    spec = {"size": size, "shards": shards, "small": small}
    if manifest.exists() and json.loads(manifest.read_text()) == spec:
        return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".manifest.json")
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
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".manifest.json")


def s3_client(env: dict[str, str]):
    return boto3.client("s3", endpoint_url=env["AWS_S3_ENDPOINT"], region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


def purge_prefix(s3, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def run_cmd(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env={**os.environ, **env, "PATH": "%s:%s" % (BIN, os.environ.get("PATH", ""))},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (cmd[0], proc.stdout[-2000:], proc.stderr[-2000:]))


class Bench:
    """One uploader per tool, each a callable(prefix) that uploads the data set there."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], data: Path, state: str) -> None:
        self.args, self.env, self.data, self.state = args, env, data, state
        self.endpoint = env["AWS_S3_ENDPOINT"]

    def minio_upload(self, prefix: str) -> dict:
        target = Target(bucket=self.args.bucket, prefix=prefix, endpoint_url=self.endpoint,
                        region=self.env.get("AWS_DEFAULT_REGION"), access_key=self.env["AWS_ACCESS_KEY_ID"],
                        secret_key=self.env["AWS_SECRET_ACCESS_KEY"])
        options = Options(part_size=parse_size(self.args.part_size), concurrency=self.args.concurrency, state_dir=self.state)
        return Uploader(target, options).run(local_files(str(self.data), prefix, [], [".manifest.json"]))

    def minio_upload_ansible(self, prefix: str) -> None:
        module_args = {"src": str(self.data), "bucket": self.args.bucket, "prefix": prefix, "exclude": [".manifest.json"],
                       "part_size": self.args.part_size, "concurrency": self.args.concurrency}
        run_cmd([str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                 "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", "rhoai.gpuaas.minio_upload",
                 "-a", json.dumps(module_args)],
                {**self.env, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"), "XDG_CACHE_HOME": self.state})

    def s5cmd(self, prefix: str) -> None:
        run_cmd([str(BIN / "s5cmd"), "--endpoint-url", self.endpoint, "cp", "--exclude", ".manifest.json",
                 "%s/*" % self.data, "s3://%s/%s" % (self.args.bucket, prefix)], self.env)

    def awscli(self, prefix: str) -> None:
        run_cmd([str(BIN / "aws"), "--endpoint-url", self.endpoint, "s3", "cp", "--recursive", "--only-show-errors",
                 "--exclude", ".manifest.json", str(self.data), "s3://%s/%s" % (self.args.bucket, prefix)], self.env)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        raise SystemExit("unknown tools: %s" % ", ".join(sorted(unknown)))
    env = load_env(args.env_file)
    size = parse_size(args.size)
    files = make_dataset(Path(args.data_dir), size, args.shards, args.small_files)
    total = sum(path.stat().st_size for path in files)
    s3 = s3_client(env)
    try:
        s3.head_bucket(Bucket=args.bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=args.bucket)
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    rerun: list[float] = []
    session = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as state:
        bench = Bench(args, env, Path(args.data_dir), state)
        for run in range(args.runs):
            order = tools[run % len(tools):] + tools[:run % len(tools)]
            for tool in order:
                prefix = "%s/%s-%d/" % (tool, session, run)
                times[tool].append(timed(lambda: getattr(bench, tool)(prefix)))
                if tool == "minio_upload":
                    rerun.append(timed(lambda: bench.minio_upload(prefix)))
                purge_prefix(s3, args.bucket, prefix)
                print("run %d %-22s %7.2fs" % (run + 1, tool, times[tool][-1]), flush=True)
    report = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endpoint": env["AWS_S3_ENDPOINT"],
        "cpus": os.cpu_count(),
        "dataset": {"bytes": total, "files": len(files), "shards": args.shards, "small_files": args.small_files},
        "runs": args.runs,
        "minio_upload": {"part_size": args.part_size, "concurrency": args.concurrency},
        "tools": {},
    }
    for tool, values in times.items():
        median = statistics.median(values)
        report["tools"][tool] = {"seconds": values, "median_seconds": median, "mb_per_s": total / median / 1e6}
    if rerun:
        report["minio_upload_unchanged_rerun"] = {"seconds": rerun, "median_seconds": statistics.median(rerun)}
    if "s5cmd" in report["tools"]:
        base = report["tools"]["s5cmd"]["mb_per_s"]
        report["ratio_vs_s5cmd"] = {tool: data["mb_per_s"] / base for tool, data in report["tools"].items()}
    out = ROOT / "benchmarks" / "results" / ("upload-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("\n%d files, %.1f MiB, median of %d runs" % (len(files), total / MiB, args.runs))
    for tool, data in report["tools"].items():
        ratio = report.get("ratio_vs_s5cmd", {}).get(tool)
        print("%-22s %7.2fs %8.1f MB/s%s" % (tool, data["median_seconds"], data["mb_per_s"],
                                            "  x%.2f vs s5cmd" % ratio if ratio is not None else ""))
    if rerun:
        print("%-22s %7.2fs (unchanged re-run, all skipped)" % ("minio_upload rerun", statistics.median(rerun)))
    print("results: %s" % out)


if __name__ == "__main__":
    main()
