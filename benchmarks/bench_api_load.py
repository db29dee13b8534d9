"""Load benchmark: p50/p99 latency of GET /v1/jobs/{id}/results and GET /v1/leaderboard
with a million trial rows, on PostgreSQL and on SQLite, at a fixed request rate.

    .venv/bin/python benchmarks/bench_api_load.py                      # both databases, 1M trials
    .venv/bin/python benchmarks/bench_api_load.py --db sqlite --trials 100000 --duration 10
    .venv/bin/python benchmarks/bench_api_load.py --workers 1 2        # each server size, side by side

What it does, per database: a fresh database migrated to head; jobs, trials and per-variant
summaries bulk-inserted (PostgreSQL COPY, SQLite executemany in one transaction); the real
`srm-bench serve --no-dispatcher --workers N` under uvicorn on a free port (for each N in --workers);
then an open-loop load of
--rate requests/s (a new request every 1/rate s, whether or not earlier ones returned) for
--duration seconds per endpoint, each request for a random finished job or (dataset, backbone).
Before the load, --sequential requests one at a time give each endpoint's service time alone
(on a busy machine the open loop mostly measures queueing behind a starved CPU).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service import db  # noqa: E402

VARIANTS = ("baseline", "se", "ge", "srm")
TRIAL_COLUMNS = ("job_id", "variant", "fold", "seed", "spec", "content_hash", "status", "attempts", "reused",
                 "top1", "top5", "metrics", "train_time_s", "device", "started_at", "finished_at")
JOB_COLUMNS = ("id", "name", "spec", "status", "dataset", "backbone", "protocol", "protocol_hash", "n_trials",
               "cancel_requested", "created_at", "started_at", "finished_at")
SUMMARY_COLUMNS = ("job_id", "variant", "dataset", "backbone", "protocol", "protocol_hash", "n_trials",
                   "top1_mean", "top1_std", "top5_mean", "top5_std", "params", "macs", "images_per_s",
                   "created_at")


def combos(n: int) -> list[tuple[str, str]]:
    """(dataset, backbone) pairs the jobs are spread over, as a shared service would see."""
    datasets = [f"textures[n_per_class={8 + i}]" for i in range(max(1, n // 5))]
    backbones = ["cifar_resnet20", "cifar_resnet32", "cifar_resnet56", "resnet18", "resnet50"]
    return [(d, b) for d in datasets for b in backbones][:n]


def generate(n_trials: int, folds: int, n_combos: int, seed: int = 0):
    """Rows for jobs of len(VARIANTS) x folds trials each; yields (job_rows, trial_rows, summary_rows)."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    per_job = len(VARIANTS) * folds
    pairs = combos(n_combos)
    jobs, trials, summaries = [], [], []
    for j in range(n_trials // per_job):
        job_id = uuid.uuid4().hex
        dataset, backbone = pairs[j % len(pairs)]
        spec = json.dumps({"dataset": dataset, "backbone": backbone, "folds": folds})
        jobs.append((job_id, f"bench-{j}", spec, "succeeded", dataset, backbone, "quick", "h" * 64, per_job,
                     False, now, now, now))
        for v, variant in enumerate(VARIANTS):
            values = []
            for fold in range(folds):
                top1 = 60 + v + rng.gauss(0, 1)
                values.append(top1)
                metrics = json.dumps({"top1": top1, "top5": top1 + 20, "params": 270000 + v * 1000,
                                      "macs": 40_000_000, "images_per_s": 900.0 + rng.random(),
                                      "group_top1": None})
                trials.append((job_id, variant, fold, 0, json.dumps({"variant": {"kind": variant}}),
                               uuid.uuid4().hex + uuid.uuid4().hex, "succeeded", 1, False, top1, top1 + 20,
                               metrics, 12.5, "cpu", now, now))
            mean = statistics.fmean(values)
            summaries.append((job_id, variant, dataset, backbone, "quick", "h" * 64, folds, mean,
                              statistics.stdev(values), mean + 20, statistics.stdev(values), 270000 + v * 1000,
                              40_000_000, 900.0, now))
    return jobs, trials, summaries


@contextmanager
def database(kind: str, admin_url: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    import psycopg

    name = f"srm_bench_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bulk_insert(url: str, jobs, trials, summaries) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA synchronous=OFF")
        with conn:
            for table, columns, rows in (("jobs", JOB_COLUMNS, jobs), ("trials", TRIAL_COLUMNS, trials),
                                         ("variant_summaries", SUMMARY_COLUMNS, summaries)):
                marks = ",".join("?" * len(columns))
                conn.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",
                                 [tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)
                                  for row in rows])
        conn.execute("ANALYZE")
        conn.close()
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        with conn.cursor() as cur:
            for table, columns, rows in (("jobs", JOB_COLUMNS, jobs), ("trials", TRIAL_COLUMNS, trials),
                                         ("variant_summaries", SUMMARY_COLUMNS, summaries)):
                with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(url: str, home: Path, workers: int = 1):
    port = free_port()
    env = {**os.environ, "SRM_BENCH_DATABASE_URL": url, "SRM_BENCH_HOME": str(home)}
    env.pop("SRM_BENCH_API_TOKEN", None)
    process = subprocess.Popen([str(Path(sys.executable).parent / "srm-bench"), "serve", "--port", str(port),
                                "--no-dispatcher", "--workers", str(workers), "--log-level", "warning"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/v1/presets", timeout=2)
            break
        except httpx.HTTPError as err:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {process.stderr.read().decode()[-2000:]}") from err
            time.sleep(0.2)
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _percentiles(seconds: list[float]) -> dict:
    ms = sorted(x * 1000 for x in seconds)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50), 1), "p90_ms": round(pick(0.90), 1), "p99_ms": round(pick(0.99), 1),
            "max_ms": round(ms[-1], 1)}


def sequential(base: str, paths: list[str], n: int) -> dict:
    """One request at a time: the service time of a request, without queueing behind others."""
    latencies = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for path in paths[:20]:
            client.get(path)
        for _ in range(n):
            start = time.perf_counter()
            client.get(random.choice(paths)).raise_for_status()
            latencies.append(time.perf_counter() - start)
    return {"requests": n} | _percentiles(latencies)


async def load(base: str, paths: list[str], rate: float, duration: float) -> dict:
    """Open loop: one request every 1/rate s regardless of responses; latency per request."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        for path in paths[:20]:  # warm up connections and caches
            await client.get(path)

        async def one(path: str) -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.HTTPError:  # e.g. a keep-alive connection the server closed as it was reused
                errors += 1
                return
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(random.choice(paths))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests": n, "errors": errors, "achieved_rps": round(n / elapsed, 1)} | _percentiles(latencies)


def run(kind: str, args, rows) -> dict:
    jobs, trials, summaries = rows
    report: dict = {"database": kind, "trials": len(trials), "jobs": len(jobs), "summaries": len(summaries)}
    with database(kind, args.pg_admin_url) as url, tempfile.TemporaryDirectory() as home:
        db.upgrade(url)
        start = time.perf_counter()
        bulk_insert(url, jobs, trials, summaries)
        report["insert_s"] = round(time.perf_counter() - start, 1)
        job_paths = [f"/v1/jobs/{row[0]}/results" for row in random.sample(jobs, min(2000, len(jobs)))]
        board_paths = [f"/v1/leaderboard?dataset={d}&backbone={b}&protocol=quick" for d, b in combos(args.combos)]
        for workers in args.workers:
            with serving(url, Path(home), workers) as base:
                report[f"workers={workers}"] = {
                    "results_sequential": sequential(base, job_paths, args.sequential),
                    "leaderboard_sequential": sequential(base, board_paths, args.sequential),
                    "results": asyncio.run(load(base, job_paths, args.rate, args.duration)),
                    "leaderboard": asyncio.run(load(base, board_paths, args.rate, args.duration))}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--folds", type=int, default=5, help="folds per job (jobs have 4 variants)")
    parser.add_argument("--combos", type=int, default=50, help="distinct (dataset, backbone) pairs")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per endpoint")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="API processes of the server")
    parser.add_argument("--sequential", type=int, default=200, help="requests sent one at a time first")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "SRM_BENCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    start = time.perf_counter()
    rows = generate(args.trials, args.folds, args.combos)
    print(json.dumps({"generated_rows_s": round(time.perf_counter() - start, 1)}), flush=True)
    for kind in kinds:
        print(json.dumps(run(kind, args, rows)), flush=True)


if __name__ == "__main__":
    main()
