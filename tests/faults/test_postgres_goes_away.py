"""PostgreSQL stops mid-job and starts again: the API says 503 meanwhile, no ended trial is lost."""
from __future__ import annotations

import time

from sqlalchemy import text

from service.db import session_factory
from tests.e2e.conftest import Server
from tests.faults.conftest import start_tiny_job


def _wait_log(server: Server, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in server.log_tail(200_000):
        assert time.monotonic() < deadline, f"no {needle!r} in the log: {server.log_tail()}"
        time.sleep(0.3)


def test_postgres_goes_away_mid_job(own_postgres, tmp_path, ray_address):
    home = tmp_path / "home"
    home.mkdir()
    server = Server(home, own_postgres.url, ray_address)
    server.start()
    try:
        job_id = start_tiny_job(server)

        own_postgres.stop()
        down = server.http.get(f"/v1/jobs/{job_id}")
        listing = server.http.get("/v1/jobs")
        board = server.http.get("/v1/leaderboard")
        # a trial ends while the database is away: its result waits in the dispatcher's memory
        _wait_log(server, "ended trials kept in memory until the database is back", timeout=180)
        own_postgres.start()

        for response in (down, listing, board):
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
            assert "database is unavailable" in response.json()["detail"]
        after = server.wait_finished(job_id, timeout=240)
    finally:
        server.kill()
    assert after["status"] == "succeeded", server.log_tail()
    trials = after["trials"]
    assert len(trials) == 4 and {t["status"] for t in trials} == {"succeeded"}
    assert all(t["attempts"] == 1 for t in trials), trials  # recorded, not run again
    with session_factory(own_postgres.url)() as session:
        rows = session.execute(text("SELECT variant, fold, count(*) FROM trials WHERE job_id = :j "
                                    "GROUP BY variant, fold"), {"j": job_id}).all()
        summaries = session.execute(text("SELECT count(*) FROM variant_summaries WHERE job_id = :j"),
                                    {"j": job_id}).scalar()
    assert sorted((v, f, n) for v, f, n in rows) == [("baseline", 0, 1), ("baseline", 1, 1),
                                                     ("srm", 0, 1), ("srm", 1, 1)]
    assert summaries == 2
