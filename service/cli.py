"""The `srm-bench` command line."""
import typer

from srm_models import __version__

app = typer.Typer(help="SRM Bench: benchmark channel-recalibration modules (SRM, SE, GE, CBAM).",
                  no_args_is_help=True)


@app.callback(invoke_without_command=True)
def main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(f"srm-bench {__version__}")
        raise typer.Exit()
