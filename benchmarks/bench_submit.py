"""Submit benchmark: 1,000 jobs from 10 users with their own tokens against the live app, then the
order a dispatcher starts them in.

    .venv/bin/python benchmarks/bench_submit.py                  # SQLite and PostgreSQL
    .venv/bin/python benchmarks/bench_submit.py --db sqlite --jobs 200

Per database: a fresh database; 10 users made as `srm-bench user add` makes them; the real
`srm-bench serve --no-dispatcher` under uvicorn. The submissions come as a shared service sees
them at their worst: user 0 queues its 100 jobs first, then users 1-9 submit their 100 each at
once (9 concurrent clients). Reported: each POST /v1/jobs's latency (p50/p99).

Then a claim-only loop (no training: each claimed job is marked finished at once) takes every job
with Dispatcher.claim(), as `srm-bench dispatch` would, and the claim order's fairness is measured:
for each prefix of the order, the largest difference in jobs started between two users who still
had jobs waiting; reported as the worst prefix (0-1 is round-robin) beside the same figure for the
order the jobs were submitted in (first come, first served: what the claim did before).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_api_load  # noqa: E402

from service import db, users  # noqa: E402
from service.models import Job  # noqa: E402

SPEC = {"dataset": "textures[n_per_class=8,image_size=16]", "backbone": "cifar_resnet20",
        "variants": ["baseline", "srm"], "folds": 2, "overrides": {"iterations": 2}}


@contextmanager
def database(kind: str, admin_url: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    import psycopg

    name = f"srm_bench_submit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(url: str, home: Path, queue_limit: int):
    with bench_api_load.serving(url, home, env_extra={"SRM_BENCH_API_TOKEN": uuid.uuid4().hex,
                                                      "SRM_BENCH_MAX_QUEUED_JOBS_PER_USER": str(queue_limit)}) as base:
        yield base


def submit_all(base: str, tokens: dict[str, str], per_user: int) -> list[float]:
    """User 0's jobs first, then every other user's at once; the latency of each POST."""
    latencies: list[float] = []
    lock = threading.Lock()

    def submit(name: str) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=60) as http:
            for _ in range(per_user):
                start = time.perf_counter()
                response = http.post("/v1/jobs", json=SPEC)
                elapsed = time.perf_counter() - start
                if response.status_code != 201:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                with lock:
                    latencies.append(elapsed)

    names = list(tokens)
    submit(names[0])
    threads = [threading.Thread(target=submit, args=(name,)) for name in names[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def claim_order(url: str) -> tuple[list[str], list[float]]:
    """Every job claimed by one dispatcher, each marked finished at once; (submitters in claim order,
    seconds per claim)."""
    from service.dispatcher import Dispatcher

    sessions = db.session_factory(url)
    dispatcher = Dispatcher(sessions, owner="bench", max_jobs=1)
    order, seconds = [], []
    while True:
        start = time.perf_counter()
        job_id = dispatcher.claim()
        seconds.append(time.perf_counter() - start)
        if job_id is None:
            return order, seconds[:-1]
        with sessions() as session:
            job = session.get(Job, job_id)
            job.status = "succeeded"
            order.append(job.submitted_by)
            session.commit()


def submitted_order(url: str) -> list[str]:
    from sqlalchemy import select

    with db.session_factory(url)() as session:
        return list(session.scalars(select(Job.submitted_by).order_by(Job.created_at, Job.id)))


def worst_spread(order: list[str]) -> int:
    """The largest gap in jobs started between two users that both still had jobs waiting, over every
    prefix of the start order."""
    total, started, worst = Counter(order), Counter(), 0
    for who in order:
        started[who] += 1
        waiting = [u for u in total if started[u] < total[u]] or list(total)
        counts = [started[u] for u in waiting]
        worst = max(worst, max(counts) - min(counts))
    return worst


def first_start(order: list[str], who: str) -> int:
    return order.index(who) + 1


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.99 * len(ms)))]


def run(kind: str, admin_url: str, n_jobs: int, n_users: int) -> dict:
    per_user = n_jobs // n_users
    with database(kind, admin_url) as url, tempfile.TemporaryDirectory() as home:
        db.upgrade(url)
        with db.session_factory(url)() as session:
            tokens = {f"user{i}": users.add_user(session, f"user{i}") for i in range(n_users)}
        with serving(url, Path(home), queue_limit=per_user) as base:
            started = time.perf_counter()
            latencies = submit_all(base, tokens, per_user)
            wall = time.perf_counter() - started
        order, claims = claim_order(url)
        fifo = submitted_order(url)
    last_user = f"user{n_users - 1}"
    return {"db": kind, "jobs": len(latencies), "wall_s": wall, "submit": percentiles(latencies),
            "claim": percentiles(claims), "rr_spread": worst_spread(order), "fifo_spread": worst_spread(fifo),
            "rr_first": first_start(order, last_user), "fifo_first": first_start(fifo, last_user)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--pg-admin-url", default=os.environ.get("SRM_BENCH_PG_ADMIN_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    rows = [run(kind, args.pg_admin_url, args.jobs, args.users) for kind in args.db]
    print(f"\n{args.jobs} jobs from {args.users} users (user0's {args.jobs // args.users} first, then the other "
          f"{args.users - 1} at once); claim-only dispatch loop\n")
    print("| database | submissions | POST /v1/jobs p50 | p99 | claim p50 | claim p99 | worst spread, round-robin "
          "| worst spread, first-come | last user's first start, round-robin | first-come |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['db']} | {r['jobs']} in {r['wall_s']:.1f} s | {r['submit'][0]:.1f} ms | {r['submit'][1]:.1f} ms "
              f"| {r['claim'][0]:.1f} ms | {r['claim'][1]:.1f} ms | {r['rr_spread']} | {r['fifo_spread']} "
              f"| #{r['rr_first']} | #{r['fifo_first']} |")


if __name__ == "__main__":
    main()
