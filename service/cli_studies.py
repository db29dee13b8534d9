"""`srm-bench plan` (the power planner) and `srm-bench study ...` (comparisons over several datasets)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.table import Table

from service.cli import FINISHED, TOKEN_OPTION, URL_OPTION, _parse_variant, app, console, friendly_errors
from service.client import Client

study_app = typer.Typer(help="Studies: the same comparison on several datasets, ranked across them.",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")


def _fmt(value: Any, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def print_plan(plan: dict[str, Any], title: str) -> None:
    table = Table("variant", "pairs", "sigma of gains", "n_test/n_train", "detectable (points)",
                  "floor (points)", f"repeats to detect {plan['effect']:g}", title=title)
    for row in plan["variants"]:
        table.add_row(row["variant"], str(row["n_pairs"]), _fmt(row["sigma"]), _fmt(row["test_train_ratio"], "{:.3f}"),
                      _fmt(row["detectable_effect"]), _fmt(row["floor_effect"]),
                      "never" if row["detectable_effect"] and row["repeats_needed"] is None
                      else _fmt(row["repeats_needed"], "{}"))
    console.print(table)
    for row in plan["variants"]:
        console.print(f"{row['variant']}: {row['note']}", highlight=False)


@app.command()
@friendly_errors
def plan(job: Optional[str] = typer.Argument(None, help="a job id"),
         study: Optional[str] = typer.Option(None, "--study", help="plan every job of this study instead"),
         effect: float = typer.Option(0.5, help="the gain (top-1 points) to detect"),
         url: Optional[str] = URL_OPTION) -> None:
    """Power planner: the effect the design detects (alpha 0.05, power 0.8, corrected test) and the repeats
    that would detect --effect."""
    if (job is None) == (study is None):
        raise ValueError("give a job id or --study ID (one of them)")
    client = Client(url)
    if job:
        result = client.plan("jobs", job, effect)
        print_plan(result, f"job {job} on {result['dataset']}")
        return
    for item in client.plan("studies", study, effect)["jobs"]:
        print_plan(item, f"study {study}: {item['dataset']} (job {item['job_id']})")


@study_app.command("submit")
@friendly_errors
def study_submit(spec_file: Optional[Path] = typer.Argument(None, help="a JSON or YAML study spec"),
                 preset: Optional[str] = typer.Option(None, help="study-generated or study-real"),
                 dataset: Optional[list[str]] = typer.Option(None, help="repeatable: 2 or more datasets"),
                 backbone: Optional[str] = typer.Option(None),
                 variant: Optional[list[str]] = typer.Option(None, help="repeatable; srm or srm:pooling=avg+max"),
                 folds: Optional[int] = typer.Option(None), repeats: Optional[int] = typer.Option(None),
                 protocol: Optional[str] = typer.Option(None), rope: Optional[float] = typer.Option(None),
                 name: Optional[str] = typer.Option(None), idempotency_key: Optional[str] = typer.Option(None),
                 url: Optional[str] = URL_OPTION, token: Optional[str] = TOKEN_OPTION) -> None:
    """Submit a study: one job per dataset, created together."""
    body: dict[str, Any] = yaml.safe_load(spec_file.read_text()) if spec_file else {}
    flags = {"preset": preset, "datasets": list(dataset) if dataset else None, "backbone": backbone,
             "variants": [_parse_variant(v) for v in variant] if variant else None, "folds": folds,
             "repeats": repeats, "protocol": protocol, "rope": rope, "name": name}
    body |= {k: v for k, v in flags.items() if v is not None}
    created = Client(url, token).submit_study(body, idempotency_key)
    console.print(f"study [bold]{created['id']}[/bold] {created['status']}: "
                  + ", ".join(f"{j['dataset']} (job {j['id']}, {j['n_trials']} trials)" for j in created["jobs"]))


def follow_study(client: Client, study_id: str, poll_s: float = 2.0) -> dict[str, Any]:
    """Wait until every job of the study has ended, printing a line whenever a job's status changes."""
    seen: dict[str, str] = {}
    while True:
        detail = client.study(study_id)
        for job in detail["jobs"]:
            if seen.get(job["id"]) != job["status"]:
                seen[job["id"]] = job["status"]
                console.print(f"  {job['dataset']}: job {job['id'][:8]} {job['status']}")
        if all(job["status"] in FINISHED for job in detail["jobs"]):
            return detail
        time.sleep(poll_s)


@study_app.command("status")
@friendly_errors
def study_status(study: str, watch: bool = typer.Option(False, "--watch", "-w"),
                 url: Optional[str] = URL_OPTION) -> None:
    """A study's jobs and their status (--watch: until they end)."""
    client = Client(url)
    detail = follow_study(client, study) if watch else client.study(study)
    console.print(f"study {detail['id']} {detail['status']}: "
                  + ", ".join(f"{j['dataset']} {j['status']}" for j in detail["jobs"]))


def print_study_results(results: dict[str, Any]) -> None:
    comparison = results["comparison"]
    for item in results["excluded_datasets"]:
        console.print(f"[yellow]{item['dataset']} left out:[/yellow] {item['reason']}")
    if comparison is None:
        console.print(results.get("note", "no comparison yet"))
        return
    variants = list(comparison["average_ranks"])
    table = Table("dataset", *variants, title=f"study {results['study_id']}: top-1 (%) and verdict vs baseline")
    for item in results["datasets"]:
        rows = {r["variant"]: r for r in item["rows"]}
        table.add_row(item["dataset"], *[
            _fmt(rows[v]["top1_mean"]) + (f" ({rows[v]['gain']['verdict']})" if rows.get(v, {}).get("gain") else "")
            if v in rows else "-" for v in variants])
    table.add_row("average rank", *[f"{comparison['average_ranks'][v]:.2f}" for v in variants])
    console.print(table)
    friedman, nemenyi = comparison["friedman"], comparison["nemenyi"]
    if friedman:
        console.print(f"Friedman chi2 = {friedman['statistic']:.3f}, p = {friedman['pvalue']:.4g}; "
                      f"Nemenyi critical difference {nemenyi['critical_difference']:.2f} over "
                      f"{comparison['n_datasets']} datasets; groups not significantly different: "
                      + "; ".join("{" + ", ".join(g) + "}" for g in comparison["groups"]), highlight=False)
    console.print(comparison.get("note", ""), highlight=False)


@study_app.command("results")
@friendly_errors
def study_results(study: str, cd: Optional[Path] = typer.Option(None, help="also save the CD diagram PNG here"),
                  url: Optional[str] = URL_OPTION) -> None:
    """Average ranks, Friedman, Nemenyi groups; --cd saves the critical difference diagram."""
    client = Client(url)
    print_study_results(client.study_results(study))
    if cd:
        cd.write_bytes(client.study_plot(study, "cd"))
        console.print(f"critical difference diagram: {cd}")
