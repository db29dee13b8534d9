"""The leaderboard table equals a from-scratch aggregation of the summaries, on SQLite and PostgreSQL."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from service import db
from service.leaderboard import read_leaderboard, rebuild
from service.models import LeaderboardRow, VariantSummary
from service.results import aggregate_leaderboard, write_summaries
from tests.databases import empty_database
from tests.service.factories import finished_job

BASELINE = [60.0, 62.0, 61.0, 63.0, 59.0]
SRM = [66.0, 65.0, 67.0, 69.0, 64.0]
SE = [61.0, 64.0, 60.0, 65.0, 60.0]
FILTERS = [{}, {"dataset": "textures"}, {"dataset": "textures", "backbone": "cifar_resnet20", "protocol": "quick"},
           {"backbone": "resnet18"}, {"protocol": "paper"}, {"dataset": "nothing"}]


def _finish_jobs(session) -> list:
    """Jobs over three groups; one group with two jobs, one with an exact tie of means (ge = se)."""
    jobs = [finished_job(session, {"baseline": BASELINE, "se": SE, "srm": SRM}),
            finished_job(session, {"baseline": BASELINE[:3], "srm": [70.0, 71.0, 72.0]}),
            finished_job(session, {"se": SE, "ge": SE}, backbone="resnet18"),
            finished_job(session, {"baseline": [90.0, 91.0]}, protocol="paper", protocol_hash="x" * 64),
            finished_job(session, {"srm": [99.0, 99.0]}, status="cancelled")]
    for job in jobs:
        write_summaries(session, job)
        session.commit()
    return jobs


def _assert_table_is_the_aggregation(session) -> None:
    for filters in FILTERS:
        assert read_leaderboard(session, **filters) == aggregate_leaderboard(session, **filters), filters


def test_table_equals_a_from_scratch_aggregation_after_jobs_finish(sessions):
    with sessions() as session:
        _finish_jobs(session)
        _assert_table_is_the_aggregation(session)
        boards = read_leaderboard(session, dataset="textures", backbone="cifar_resnet20")
        assert session.scalar(select(func.count()).select_from(LeaderboardRow)) == 3 + 2 + 1
        resnet18 = read_leaderboard(session, backbone="resnet18")[0]["rows"]
    main = next(b for b in boards if b["protocol_hash"] == "p" * 64)
    srm = main["rows"][0]
    pooled = SRM + [70.0, 71.0, 72.0] + [99.0, 99.0]  # the cancelled job's summary counts, as it always did
    assert (srm["variant"], srm["rank"], srm["tie_group"], srm["n_jobs"]) == ("srm", 1, 1, 3)
    assert srm["top1_mean"] == pytest.approx(np.mean(pooled))
    assert srm["top1_std"] == pytest.approx(np.std(pooled, ddof=1))
    assert main["n_jobs"] == 3
    assert [(r["variant"], r["rank"], r["tie_group"]) for r in resnet18] == [("ge", 1, 1), ("se", 2, 1)]


def test_writing_a_jobs_summaries_again_replaces_its_rows(sessions):
    with sessions() as session:
        job = _finish_jobs(session)[0]
        before = read_leaderboard(session)
        write_summaries(session, job)  # e.g. a job re-finished after a take-over
        session.commit()
        assert read_leaderboard(session) == before
        _assert_table_is_the_aggregation(session)


def test_a_request_reads_the_table_not_the_summaries(client, sessions):
    with sessions() as session:
        _finish_jobs(session)
        expected = aggregate_leaderboard(session, dataset="textures")
        session.execute(delete(VariantSummary))  # history gone, the table untouched
        session.commit()
        assert aggregate_leaderboard(session, dataset="textures") == []
    assert client.get("/v1/leaderboard", params={"dataset": "textures"}).json() == expected


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_backfills_the_table_from_existing_summaries(kind, tmp_path):
    with empty_database(kind, tmp_path, "srm_bench_board") as url:
        db.upgrade(url)
        sessions = db.session_factory(url)
        with sessions() as session:
            _finish_jobs(session)
            expected = aggregate_leaderboard(session)
        db.downgrade(url, "0006")  # the table goes; the summaries stay
        db.upgrade(url)
        with sessions() as session:
            assert read_leaderboard(session) == expected
            rebuild(session)
            session.commit()
            assert read_leaderboard(session) == expected
        sessions.kw["bind"].dispose()
