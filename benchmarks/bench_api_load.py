"""Load benchmark: p50/p99 latency of GET /v1/jobs/{id}/results and GET /v1/leaderboard
with millions of trial rows, on PostgreSQL and on SQLite, at a fixed request rate.

    .venv/bin/python benchmarks/bench_api_load.py                      # both databases, 1M trials
    .venv/bin/python benchmarks/bench_api_load.py --trials 10000000 --keep   # 10M, kept for the next run
    .venv/bin/python benchmarks/bench_api_load.py --db sqlite --trials 100000 --duration 10
    .venv/bin/python benchmarks/bench_api_load.py --workers 1 2        # each server size, side by side
    .venv/bin/python benchmarks/bench_api_load.py --training           # also with a trial training beside

What it does, per database: a fresh database migrated to head (with --keep, one under --store,
default /tmp/srm-bench-load, reused by later runs of the same size); jobs, trials and per-variant
summaries (with their pairs) bulk-inserted chunk by chunk (PostgreSQL COPY, SQLite executemany in
big transactions), then the leaderboard table rebuilt from the summaries as the migration does; the real
`srm-bench serve --no-dispatcher --workers N` under uvicorn on a free port (for each N in --workers);
then an open-loop load of
--rate requests/s (a new request every 1/rate s, whether or not earlier ones returned) for
--duration seconds per endpoint, each request for a random finished job or (dataset, backbone).
Before the load, --sequential requests one at a time give each endpoint's service time alone
(on a busy machine the open loop mostly measures queueing behind a starved CPU). Each report
carries the machine's load average (`os.getloadavg`) before and after, as the machine may be shared.
With --training, the load is measured twice: alone, and with `python -m workers` training a
CIFAR ResNet-56 trial on the CPU beside the server (what a job on the same machine costs it).
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
                   "pairs", "test_train_ratio", "created_at")


def combos(n: int) -> list[tuple[str, str]]:
    """(dataset, backbone) pairs the jobs are spread over, as a shared service would see."""
    datasets = [f"textures[n_per_class={8 + i}]" for i in range(max(1, n // 5))]
    backbones = ["cifar_resnet20", "cifar_resnet32", "cifar_resnet56", "resnet18", "resnet50"]
    return [(d, b) for d in datasets for b in backbones][:n]


def generate(n_trials: int, folds: int, n_combos: int, seed: int = 0, chunk_jobs: int = 20_000):
    """Rows for jobs of len(VARIANTS) x folds trials each, in chunks of (job_rows, trial_rows, summary_rows),
    so that 10M trials never sit in memory at once."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    per_job = len(VARIANTS) * folds
    pairs = combos(n_combos)
    specs = {variant: json.dumps({"variant": {"kind": variant}, "n_folds": folds}) for variant in VARIANTS}
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
                metrics = (f'{{"top1": {top1!r}, "top5": {top1 + 20!r}, "params": {270000 + v * 1000}, '
                           f'"macs": 40000000, "images_per_s": {900.0 + rng.random()!r}, "group_top1": null}}')
                trials.append((job_id, variant, fold, 0, specs[variant], f"{job_id}{v:02d}{fold:04d}", "succeeded",
                               1, False, top1, top1 + 20, metrics, 12.5, "cpu", now, now))
            mean = statistics.fmean(values)
            pairs_json = json.dumps({f"k{folds}/r0/f{fold}/s0": value for fold, value in enumerate(values)})
            summaries.append((job_id, variant, dataset, backbone, "quick", "h" * 64, folds, mean,
                              statistics.stdev(values), mean + 20, statistics.stdev(values), 270000 + v * 1000,
                              40_000_000, 900.0, pairs_json, 0.25, now))
        if len(jobs) >= chunk_jobs:
            yield jobs, trials, summaries
            jobs, trials, summaries = [], [], []
    if jobs:
        yield jobs, trials, summaries


@contextmanager
def database(kind: str, admin_url: str, keep: Path | None, n_trials: int):
    """(url, already filled): a temporary database, or with `keep` one kept for later runs of this size."""
    if kind == "sqlite":
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            path = keep / f"bench-{n_trials}.db"
            yield f"sqlite:///{path}", path.exists() and _filled(f"sqlite:///{path}")
            return
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db", False
        return
    import psycopg

    name = f"srm_bench_load_{n_trials}" if keep else f"srm_bench_load_{uuid.uuid4().hex[:8]}"
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url, bool(exists) and _filled(url)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _filled(url: str) -> bool:
    """Whether an earlier run finished filling this database (it writes a marker job last)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM jobs WHERE id = 'bench-filled'")).scalar() == 1
    except Exception:
        return False
    finally:
        engine.dispose()


def bulk_insert(url: str, chunks) -> tuple[int, int, int]:
    """Insert generated chunks; returns the numbers of (jobs, trials, summaries) written."""
    counts = [0, 0, 0]
    tables = (("jobs", JOB_COLUMNS), ("trials", TRIAL_COLUMNS), ("variant_summaries", SUMMARY_COLUMNS))
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA synchronous=OFF")
        for chunk in chunks:
            with conn:  # one transaction per chunk
                for i, ((table, columns), rows) in enumerate(zip(tables, chunk, strict=True)):
                    marks = ",".join("?" * len(columns))
                    conn.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",
                                     [tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)
                                      for row in rows])
                    counts[i] += len(rows)
        conn.execute("ANALYZE")
        conn.close()
        return tuple(counts)
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        for chunk in chunks:
            with conn.cursor() as cur:
                for i, ((table, columns), rows) in enumerate(zip(tables, chunk, strict=True)):
                    with cur.copy(f"COPY {table} ({','.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    counts[i] += len(rows)
            conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    return tuple(counts)


def rebuild_leaderboard(url: str) -> None:
    """The leaderboard table from the inserted summaries, as migration 0008's backfill builds it."""
    from service.leaderboard import rebuild

    with db.session_factory(url)() as session:
        rebuild(session)
        session.commit()


def mark_filled(url: str) -> None:
    from sqlalchemy import text

    with db.session_factory(url)() as session:
        session.execute(text("INSERT INTO jobs (id, spec, status, dataset, backbone, protocol, protocol_hash, "
                             "n_trials, cancel_requested, created_at) VALUES ('bench-filled', '{}', 'queued', "
                             "'-', '-', '-', '-', 0, false, CURRENT_TIMESTAMP)"))
        session.commit()


def sample_jobs(url: str, n: int) -> list[str]:
    from sqlalchemy import text

    with db.session_factory(url)() as session:
        ids = session.execute(text("SELECT id FROM jobs WHERE status = 'succeeded' LIMIT 200000")).scalars().all()
    return random.sample(list(ids), min(n, len(ids)))


@contextmanager
def training_beside():
    """A CIFAR ResNet-56 SRM trial training on the CPU (python -m workers) for as long as the block runs."""
    process = subprocess.Popen([sys.executable, "-m", "workers", "--dataset", "textures", "--backbone",
                                "cifar_resnet56", "--variant", "srm", "--set", "epochs=1000"], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(15)  # past start-up and data generation: training proper
    try:
        yield
    finally:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(url: str, home: Path, workers: int = 1, env_extra: dict[str, str] | None = None):
    """`srm-bench serve --no-dispatcher` on a free port (writes open unless ``env_extra`` sets a token)."""
    port = free_port()
    env = {**os.environ, "SRM_BENCH_DATABASE_URL": url, "SRM_BENCH_HOME": str(home)}
    env.pop("SRM_BENCH_API_TOKEN", None)
    env.update(env_extra or {})
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


def measure(base: str, job_paths: list[str], board_paths: list[str], args) -> dict:
    """Both endpoints, one request at a time and then at --rate, with the load average around them."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    report = {"results_sequential": sequential(base, job_paths, args.sequential),
              "leaderboard_sequential": sequential(base, board_paths, args.sequential),
              "results": asyncio.run(load(base, job_paths, args.rate, args.duration)),
              "leaderboard": asyncio.run(load(base, board_paths, args.rate, args.duration))}
    return report | {"loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def run(kind: str, args) -> dict:
    report: dict = {"database": kind}
    keep = Path(args.store) if args.keep else None
    with database(kind, args.pg_admin_url, keep, args.trials) as (url, filled), \
            tempfile.TemporaryDirectory() as home:
        db.upgrade(url)
        if not filled:
            start = time.perf_counter()
            jobs, trials, summaries = bulk_insert(url, generate(args.trials, args.folds, args.combos))
            report |= {"jobs": jobs, "trials": trials, "summaries": summaries,
                       "insert_s": round(time.perf_counter() - start, 1)}
            start = time.perf_counter()
            rebuild_leaderboard(url)
            report["leaderboard_rebuild_s"] = round(time.perf_counter() - start, 1)
            mark_filled(url)
        else:
            report["reused"] = url
        job_paths = [f"/v1/jobs/{job_id}/results" for job_id in sample_jobs(url, 2000)]
        board_paths = [f"/v1/leaderboard?dataset={d}&backbone={b}&protocol=quick" for d, b in combos(args.combos)]
        for workers in args.workers:
            with serving(url, Path(home), workers) as base:
                report[f"workers={workers}"] = measure(base, job_paths, board_paths, args)
                if args.training:
                    with training_beside():
                        report[f"workers={workers},training"] = measure(base, job_paths, board_paths, args)
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
    parser.add_argument("--keep", action="store_true", help="keep the filled databases under --store for reuse")
    parser.add_argument("--store", default="/tmp/srm-bench-load", help="where --keep keeps the SQLite file")
    parser.add_argument("--training", action="store_true", help="measure again with a trial training beside")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "SRM_BENCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    for kind in kinds:
        print(json.dumps(run(kind, args)), flush=True)


if __name__ == "__main__":
    main()
