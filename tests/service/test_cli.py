"""CLI errors end in a message, never a traceback (the happy paths run against a server in tests/e2e)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.mark.parametrize(("args", "message"), [
    (["submit", "--dataset", "textures", "--backbone", "cifar_resnet20", "--url", UNREACHABLE], "cannot reach"),
    (["status", "abc", "--url", UNREACHABLE], "cannot reach"),
    (["results", "abc", "--url", UNREACHABLE], "cannot reach"),
    (["results", "abc", "--format", "pdf"], "--format 'pdf' is not valid"),
    (["submit", "--override", "epochs", "--url", UNREACHABLE], "takes field=value"),
    (["report", "abc", "--url", UNREACHABLE], "cannot reach"),
    (["leaderboard", "--url", UNREACHABLE], "cannot reach"),
    (["submit", "/no/such/spec.yaml"], "No such file"),
])
def test_errors_are_one_line_without_traceback(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_presets_lists_the_paper_tables():
    result = runner.invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for table in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6", "Table 7"):
        assert table in result.output


def test_migrate_creates_the_schema(srm_home):
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (srm_home / "srm_bench.db").is_file()


def test_version():
    assert runner.invoke(app, ["--version"]).output.startswith("srm-bench ")
