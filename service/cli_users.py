"""`srm-bench user ...` and `srm-bench token revoke`: who may submit, run on the server's database.

These talk to SQL directly (like `migrate`), not to the API: creating the first user must not
need a user. The token is printed once, on stdout alone, so `TOKEN=$(srm-bench user add ann)` works.
"""
from __future__ import annotations

import typer
from rich.table import Table

from service.cli import app, console, err_console, friendly_errors

user_app = typer.Typer(help="Users who submit jobs with their own bearer token.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


def _sessions():
    from service import db, settings

    url = settings.database_url()
    db.upgrade(url)
    return db.session_factory(url)


@user_app.command("add")
@friendly_errors
def add(name: str = typer.Argument(..., help="the user's name (a-z 0-9 _ . -)"),
        admin: bool = typer.Option(False, "--admin", help="may cancel anyone's jobs and has no queue quota")) -> None:
    """Create a user (or give a revoked one a new token) and print the token once."""
    from service import users

    with _sessions()() as session:
        token = users.add_user(session, name, admin)
    err_console.print(f"user {name!r} created{' (admin)' if admin else ''}; the token below is shown only once. "
                      "Clients send it as 'Authorization: Bearer <token>' (srm-bench: SRM_BENCH_API_TOKEN).")
    typer.echo(token)


@user_app.command("list")
@friendly_errors
def list_users() -> None:
    """Users, whether each is an admin and whether their token is valid."""
    from service import users

    table = Table("user", "admin", "token", "created")
    with _sessions()() as session:
        for user in users.list_users(session):
            table.add_row(user.name, "yes" if user.is_admin else "", "valid" if user.token_sha256 else
                          f"revoked {user.revoked_at:%Y-%m-%d %H:%M}", f"{user.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@token_app.command("revoke")
@friendly_errors
def revoke(name: str = typer.Argument(..., help="the user whose token stops working")) -> None:
    """Revoke a user's token at once (their jobs stay); `user add NAME` gives them a new one."""
    from service import users

    with _sessions()() as session:
        users.revoke_token(session, name)
    console.print(f"token of user {name!r} revoked")
