"""The `srm-bench` command line: serve the API, submit and watch jobs, print results, run the demo."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.client import Client, ClientError
from srm_models import __version__

app = typer.Typer(help="SRM Bench: benchmark channel-recalibration modules (SRM, SE, GE and more, or your own).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
# Piped output (CI logs, files) would get rich's 80 columns and an unreadable results table.
PIPED_WIDTH = None if os.isatty(1) or "COLUMNS" in os.environ else 150
console = Console(width=PIPED_WIDTH)
err_console = Console(stderr=True)

URL_OPTION = typer.Option(None, "--url", envvar="SRM_BENCH_URL", help="API base URL [default: http://127.0.0.1:8000]")
TOKEN_OPTION = typer.Option(None, "--token", envvar="SRM_BENCH_API_TOKEN", help="bearer token for writes")
FINISHED = ("succeeded", "failed", "cancelled")


def friendly_errors(command):
    """CLI errors end in one red line and exit code 1, never in a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ClientError, ValueError, OSError) as err:
            err_console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(1) from None
    return wrapper


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(f"srm-bench {__version__}")
        raise typer.Exit()
    from workers.plugins import PluginError, load_plugins

    try:  # SRM_BENCH_PLUGINS and installed entry points: a broken one is named here, once
        load_plugins()
    except PluginError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None


# --- server side ----------------------------------------------------------------------------

def _ray_refusal() -> str | None:
    """Why the Ray cluster at RAY_ADDRESS cannot be used (None when it can, or when Ray is local)."""
    from workers import ray_cluster

    return ray_cluster.status(max_age=0).get("error")


@app.command()
@friendly_errors
def serve(host: str = typer.Option("127.0.0.1", help="interface to listen on"),
          port: int = typer.Option(8000, help="port to listen on"),
          dispatcher: bool = typer.Option(True, help="also run queued jobs (--no-dispatcher: API only)"),
          workers: int = typer.Option(1, min=1, max=64, help="API processes; the dispatcher still runs once"),
          log_level: str = typer.Option("info")) -> None:
    """Serve the REST API (and, by default, a dispatcher that runs queued jobs on Ray)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from service import db, settings
    from service.api.app import create_app, dispatcher_thread

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    refusal = _ray_refusal() if dispatcher else None
    if refusal:  # the API still serves; queued jobs wait, and /healthz says why
        err_console.print(f"[red]error:[/red] {refusal}. Jobs stay queued until Ray accepts this service.")
    if workers == 1:
        uvicorn.run(create_app(with_dispatcher=dispatcher), host=host, port=port, log_level=log_level)
        return
    # Several API processes (uvicorn spawns each and imports the app factory there, without a
    # dispatcher); the schema is upgraded here first so they never race to create it, and the one
    # dispatcher runs in this supervising process.
    url = settings.database_url()
    db.upgrade(url)
    config = uvicorn.Config("service.api:create_app", factory=True, workers=workers, host=host, port=port,
                            log_level=log_level)
    with dispatcher_thread(db.session_factory(url)) if dispatcher else contextlib.nullcontext():
        try:
            Multiprocess(config, sockets=[_tcp_listener(host, port)]).run()
        except KeyboardInterrupt:
            pass


def _tcp_listener(host: str, port: int) -> socket.socket:
    """The shared listening socket for API processes, created as IPPROTO_TCP.

    uvicorn's own --workers path binds it with proto 0; asyncio then never sets TCP_NODELAY on
    accepted connections, and every keep-alive response waits ~40 ms for the client's delayed
    ACK (github.com/Kludex/uvicorn/issues/3149).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.set_inheritable(True)
    return listener


@app.command()
@friendly_errors
def dispatch(log_level: str = typer.Option("info")) -> None:
    """Run a dispatcher alone (no API): several may share one PostgreSQL."""
    from service import db, settings
    from service.dispatcher import Dispatcher

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    refusal = _ray_refusal()
    if refusal:
        err_console.print(f"[red]error:[/red] {refusal}")
        raise typer.Exit(1)
    db.upgrade(settings.database_url())
    worker = Dispatcher()
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        worker.stop()


@app.command()
@friendly_errors
def migrate() -> None:
    """Bring the database schema to the newest migration (serve does this at start)."""
    from service import db, settings

    db.upgrade(settings.database_url())
    console.print(f"database at {settings.database_url()} is up to date")


# --- client side ----------------------------------------------------------------------------

def _parse_override(item: str) -> tuple[str, Any]:
    from workers.overrides import parse_override

    return parse_override(item, "--override")


def _parse_variant(item: str) -> dict[str, Any] | str:
    """`srm` or `srm:pooling=avg+max,integration=cfc`."""
    kind, _, options = item.partition(":")
    if not options:
        return kind
    return {"kind": kind, **dict(_parse_override(o) for o in options.split(","))}


@app.command()
@friendly_errors
def submit(spec_file: Path | None = typer.Argument(None, help="a JSON or YAML job spec"),
           preset: str | None = typer.Option(None, help="a paper experiment (see `srm-bench presets`)"),
           dataset: str | None = typer.Option(None), backbone: str | None = typer.Option(None),
           variant: list[str] | None = typer.Option(None, help="repeatable; srm or srm:pooling=avg+max"),
           folds: int | None = typer.Option(None, help="k for k-fold CV"),
           official_split: bool = typer.Option(False, help="use the dataset's official split (folds=null)"),
           repeats: int | None = typer.Option(None, help="repetitions of k-fold CV (1-20), each reshuffled"),
           rope: float | None = typer.Option(None, help="region of practical equivalence, top-1 points"),
           seed: list[int] | None = typer.Option(None, help="repeatable"),
           protocol: str | None = typer.Option(None),
           override: list[str] | None = typer.Option(None, help="repeatable protocol change: key=value"),
           name: str | None = typer.Option(None),
           idempotency_key: str | None = typer.Option(None, help="retrying with the same key returns the first job"),
           task: str | None = typer.Option(None, help="classification (default) or style_transfer"),
           style_image: str | None = typer.Option(None, help="style_transfer: a data-dir image or generated:waves"),
           perceptual_net: str | None = typer.Option(None, help="style_transfer: vgg16 (default) or random"),
           perceptual_net_path: str | None = typer.Option(None, help="style_transfer: VGG-16 weights in the data dir"),
           placement: str | None = typer.Option(None, help="style_transfer: residual (default) or all_norms"),
           url: str | None = URL_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Submit a job from a spec file, flags, or a preset; flags change what the file or preset says."""
    body: dict[str, Any] = yaml.safe_load(spec_file.read_text()) if spec_file else {}
    if not isinstance(body, dict):
        raise ValueError(f"{spec_file} should hold a mapping of job fields")
    flags = {"preset": preset, "dataset": dataset, "backbone": backbone, "folds": folds, "protocol": protocol,
             "repeats": repeats, "rope": rope,
             "name": name, "variants": [_parse_variant(v) for v in variant] if variant else None,
             "seeds": list(seed) if seed else None,
             "overrides": dict(_parse_override(o) for o in override) if override else None,
             "task": task, "style_image": style_image, "perceptual_net": perceptual_net,
             "perceptual_net_path": perceptual_net_path, "placement": placement}
    body |= {k: v for k, v in flags.items() if v is not None}
    if official_split:
        body["folds"] = None
    created = Client(url, token).submit(body, idempotency_key)
    console.print(f"job [bold]{created['id']}[/bold] {created['status']} with {created['n_trials']} trials")


@app.command()
@friendly_errors
def status(job: str | None = typer.Argument(None, help="a job id; omitted: the latest jobs"),
           watch: bool = typer.Option(False, "--watch", "-w", help="follow progress until the job ends"),
           url: str | None = URL_OPTION) -> None:
    """Show a job's progress (live with --watch), or list the latest jobs."""
    client = Client(url)
    if job is None:
        table = Table("id", "name", "status", "dataset", "backbone", "trials", "created")
        for item in client.jobs(limit=20)["items"]:
            table.add_row(item["id"], item["name"] or "", item["status"], item["dataset"], item["backbone"],
                          str(item["n_trials"]), item["created_at"][:19])
        console.print(table)
        return
    detail = follow(client, job) if watch else client.job(job)
    _print_trials(detail)


def follow(client: Client, job_id: str, poll_s: float = 1.0) -> dict[str, Any]:
    """A live progress bar until the job ends; returns its final state."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console) as bar:
        detail = client.job(job_id)
        task = bar.add_task(f"job {job_id[:8]}", total=detail["progress"]["total"], counts="")
        while True:
            counts = detail["progress"]["counts"]
            # running trials count by their epochs done, so the bar moves within a trial too
            bar.update(task, completed=round(detail["progress"]["fraction"] * detail["progress"]["total"], 2),
                       counts=" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            if detail["status"] in FINISHED:
                return detail
            time.sleep(poll_s)
            detail = client.job(job_id)


def _print_trials(detail: dict[str, Any]) -> None:
    progress = detail["progress"]
    console.print(f"job [bold]{detail['id']}[/bold] {detail['status']}: {progress['finished']}/{progress['total']} "
                  f"trials finished ({', '.join(f'{k} {v}' for k, v in sorted(progress['counts'].items()))})")
    if detail.get("error"):
        console.print(f"[red]{detail['error']}[/red]")
    table = Table("variant", "repeat", "fold", "seed", "status", "attempts", "progress", "val top-1", "top-1",
                  "device", "time (s)", "error")
    for t in detail["trials"]:
        table.add_row(t["variant"], str(t["repeat"]), "-" if t["fold"] is None else str(t["fold"]), str(t["seed"]),
                      t["status"] + (" (reused)" if t["reused"] else ""), str(t["attempts"]), _trial_progress(t),
                      "-" if t["val_top1"] is None else f"{t['val_top1']:.2f}",
                      "-" if t["top1"] is None else f"{t['top1']:.4f}", t["device"] or "",
                      "-" if t["train_time_s"] is None else f"{t['train_time_s']:.1f}", (t["error"] or "")[:60])
    console.print(table)


def _trial_progress(trial: dict[str, Any]) -> str:
    """'60% (epoch 3)', or the epoch alone while the trial's epoch count is unknown."""
    epoch = "" if trial["epoch"] is None else f"epoch {trial['epoch']}"
    if trial["progress"] is None:
        return epoch or "-"
    return f"{trial['progress']:.0%}" + (f" ({epoch})" if epoch else "")


@app.command()
@friendly_errors
def cancel(job: str, url: str | None = URL_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Cancel a job: queued trials never start, running ones are stopped, finished ones are kept."""
    detail = Client(url, token).cancel(job)
    console.print(f"job {detail['id']}: {detail['status']}"
                  + (" (stopping its running trials)" if detail["status"] == "running" else ""))


def print_results(results: dict[str, Any], verdicts: bool = True) -> None:
    from service.results import table_note, table_rows, verdict_sentences

    if results.get("task") == "style_transfer":
        from service.style.results import table_rows as style_table_rows

        header, cells = style_table_rows(results)
        from rich.markup import escape

        table = Table(*header, title=escape(f"style transfer: {results['dataset']} / {results['style_image']} / "
                                            f"protocol {results['protocol']} / {results['perceptual_net']}"))
        for row in cells:
            table.add_row(*row)
        console.print(table)
        console.print(results["metric_note"], highlight=False)
        return

    header, cells = table_rows(results)
    table = Table(*header, title=f"{results['dataset']} / {results['backbone']} / protocol {results['protocol']}")
    for row in cells:
        table.add_row(*row)
    console.print(table)
    console.print(table_note(results))
    if verdicts:
        print_verdicts(verdict_sentences(results))


def print_verdicts(sentences: list[str]) -> None:
    for sentence in sentences:
        console.print(sentence, highlight=False)


@app.command()
@friendly_errors
def results(job: str, format: str = typer.Option("table", help="table, markdown, csv or json"),  # noqa: A002
            rope: float | None = typer.Option(None, help="ROPE in top-1 points [default: the job's, else 0.5]"),
            url: str | None = URL_OPTION) -> None:
    """Print a job's per-variant results: gain with its corrected CI, corrected p, P(better/equiv/worse), verdict."""
    if format not in ("table", "markdown", "csv", "json"):
        raise ValueError(f"--format {format!r} is not valid; use table, markdown, csv or json")
    client = Client(url)
    if format == "table":
        print_results(client.results(job, rope=rope))
    elif format == "json":
        console.print_json(json.dumps(client.results(job, rope=rope)))
    else:
        typer.echo(client.results(job, format, rope=rope), nl=False)


@app.command()
@friendly_errors
def analyze(job: str, kind: str = typer.Option(..., "--kind", help="pruning or channel_weights"),
            ratio: list[float] | None = typer.Option(None, help="pruning: repeatable prune ratio in [0, 1]"),
            seed: int | None = typer.Option(None, help="pruning: seed of the random-order control"),
            block: str | None = typer.Option(None, help="channel_weights: block such as conv2_6"),
            watch: bool = typer.Option(False, "--watch", "-w", help="wait for it and print the result"),
            url: str | None = URL_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Queue an analysis of a succeeded job: channel pruning (Fig. 6) or channel-weight correlation (Figs. 7-8)."""
    body = {"kind": kind, "ratios": list(ratio) if ratio else None, "seed": seed, "block": block}
    client = Client(url, token)
    created = client.analyze(job, {k: v for k, v in body.items() if v is not None})
    console.print(f"analysis [bold]{created['id']}[/bold] of job {job}: {created['kind']} {created['status']}")
    if watch:
        analysis(created["id"], watch=True, url=url)


@app.command()
@friendly_errors
def report(job: str, output: Path = typer.Option(Path("report.html"), "--output", "-o", help="where to write the page"),
           url: str | None = URL_OPTION) -> None:
    """Write a finished job's report: one HTML page with its table and plots, images embedded."""
    output.write_text(Client(url).report(job), encoding="utf-8")
    console.print(f"wrote the report of job {job} to {output}")


@app.command()
@friendly_errors
def analysis(analysis_id: str, watch: bool = typer.Option(False, "--watch", "-w", help="wait until it ends"),
             url: str | None = URL_OPTION) -> None:
    """Show an analysis: its status, then its tables and where its plots are."""
    from service.analysis_tables import tables

    client = Client(url)
    detail = client.analysis(analysis_id)
    while watch and detail["status"] not in FINISHED:
        time.sleep(1.0)
        detail = client.analysis(analysis_id)
    console.print(f"analysis [bold]{detail['id']}[/bold] ({detail['kind']} of job {detail['job_id']}): "
                  f"{detail['status']}; trials {detail['progress']}")
    if detail.get("error"):
        console.print(f"[red]{detail['error']}[/red]")
    if detail["result"]:
        for title, header, rows in tables(detail["kind"], detail["result"]):
            table = Table(*header, title=title)
            for row in rows:
                table.add_row(*row)
            console.print(table)
    for name in detail["plots"]:
        console.print(f"plot: {client.url}/v1/analyses/{detail['id']}/plots/{name}.png")


@app.command()
@friendly_errors
def leaderboard(dataset: str | None = typer.Option(None), backbone: str | None = typer.Option(None),
                protocol: str | None = typer.Option(None),
                mlflow_url: bool = typer.Option(False, "--mlflow-url",
                                                help="also print a link to this leaderboard in MLflow's UI"),
                task: str = typer.Option("classification", help="classification or style_transfer"),
                url: str | None = URL_OPTION) -> None:
    """Variants pooled over finished jobs, best top-1 first; --mlflow-url links MLflow's runs table."""
    from service.results import _millions

    if task == "style_transfer":
        _print_style_leaderboard(Client(url).leaderboard(dataset=dataset, protocol=protocol, task=task))
        return

    for board in Client(url).leaderboard(dataset=dataset, backbone=backbone, protocol=protocol):
        table = Table("variant", "jobs", "trials", "top-1 (%)", "top-5 (%)", "params", "MACs", "images/s",
                      title=f"{board['dataset']} / {board['backbone']} / protocol {board['protocol']} "
                            f"({board['protocol_hash'][:8]})")
        for row in board["rows"]:
            table.add_row(row["variant"], str(row["n_jobs"]), str(row["n_trials"]),
                          _mean_std(row["top1_mean"], row["top1_std"]), _mean_std(row["top5_mean"], row["top5_std"]),
                          _millions(row["params"]), _millions(row["macs"]),
                          "-" if row["images_per_s"] is None else f"{row['images_per_s']:.0f}")
        console.print(table)
    if mlflow_url:
        from service.mlflow_link import leaderboard_link

        _print_mlflow_advice(leaderboard_link(dataset))


def _print_style_leaderboard(boards: list[dict[str, Any]]) -> None:
    """Style-transfer boards: lowest final total loss first."""
    from rich.markup import escape

    for board in boards:
        table = Table("rank", "variant", "jobs", "trials", "total loss", "style loss", "content loss",
                      title=escape(f"style transfer: {board['dataset']} / {board['style_image']} / "
                                   f"{board['perceptual_net']} / {board['placement']} / protocol {board['protocol']}"))
        for row in board["rows"]:
            table.add_row(str(row["rank"]), row["variant"], str(row["n_jobs"]), str(row["n_trials"]),
                          *(_mean_std(row[f"{k}_mean"], row[f"{k}_std"]) for k in ("total_loss", "style_loss",
                                                                                   "content_loss")))
        console.print(table)


def _print_mlflow_advice(link: str) -> None:
    """The link; first, when no MLflow UI is configured, the command that starts one."""
    from service.mlflow_link import ui_address

    address = ui_address()
    if address.start_command:
        console.print("No MLflow UI is configured (SRM_BENCH_MLFLOW_UI_URL). Start one with:", soft_wrap=True)
        console.print(f"  {address.start_command}", soft_wrap=True, markup=False)
        console.print("then open:")
    console.print(link, soft_wrap=True, markup=False)


def _mean_std(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


@app.command()
@friendly_errors
def presets() -> None:
    """List the paper's experiments (`submit --preset`) and the studies (`study submit --preset`)."""
    from service.presets import list_presets

    table = Table("preset", "kind", "paper", "what it runs")
    for preset in list_presets():
        table.add_row(preset["name"], preset["kind"], preset["paper"], preset["description"])
    console.print(table)


# --- the demo -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server_thread(port: int):
    """Uvicorn with the API and dispatcher in this process, on a background thread."""
    import uvicorn

    from service.api import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(with_dispatcher=True), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the API did not start on port {port}")
        time.sleep(0.1)
    return server, thread


@app.command()
@friendly_errors
def demo(folds: int = typer.Option(5, help="k for k-fold CV"),
         epochs: int | None = typer.Option(None, help="override the quick protocol's epochs")) -> None:
    """Serve on a free port, compare baseline/SE/GE/SRM on generated textures (5-fold CV), print the table."""
    from service import settings
    from service.mlflow_link import job_runs_link
    from service.results import verdict_sentences

    logging.basicConfig(level=logging.WARNING)
    # Keep the terminal for the progress bar and the table: Tune's own status boxes and warnings off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started = time.monotonic()
    port = _free_port()
    console.print(f"[bold]SRM Bench demo[/bold]: serving on http://127.0.0.1:{port} (docs at /docs), "
                  f"home {settings.home()}")
    server, thread = start_server_thread(port)
    try:
        client = Client(f"http://127.0.0.1:{port}", timeout=120)
        body: dict[str, Any] = {"preset": "demo", "folds": folds}
        if epochs:
            body["overrides"] = {"epochs": epochs}
        created = client.submit(body)
        console.print(f"submitted job {created['id']}: baseline, SE, GE, SRM x {folds} folds = "
                      f"{created['n_trials']} trials on Ray")
        detail = follow(client, created["id"])
        reused = sum(t["reused"] for t in detail["trials"])
        if reused:
            console.print(f"{reused} trials reused from earlier identical runs (same content hash)")
        outcome = client.results(created["id"])
        print_results(outcome, verdicts=False)
        console.print(f"job {detail['status']} in {time.monotonic() - started:.0f} s. "
                      f"Report: {settings.home() / 'reports' / (created['id'] + '.html')}")
        console.print("[bold]Verdicts[/bold] (Bayesian correlated t-test, decided at 0.95; "
                      f"`srm-bench plan {created['id']}` for more):")
        print_verdicts(verdict_sentences(outcome))
        _print_mlflow_advice(job_runs_link())
    finally:
        server.should_exit = True
        thread.join(timeout=90)


import service.cli_studies  # noqa: E402,F401  (registers `plan` and the `study` commands on `app`)
import service.cli_users  # noqa: E402,F401  (registers the `user` and `token` commands on `app`)
