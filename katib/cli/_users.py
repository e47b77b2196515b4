"""katib user: users, API tokens and roles for `katib server --auth`."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from katib.cli._app import (
    DbOption,
    _store,
    err,
    out,
    user_app,
)
from katib.errors import FieldError, ValidationError


@user_app.command("add")
def user_add(name: str = typer.Argument(..., help="User name."),
             admin: bool = typer.Option(False, "--admin", help="May do everything in every namespace."),
             db: str | None = DbOption) -> None:
    """Create a user and print their first API token (it is stored hashed: keep it)."""
    from katib.store import UserStore

    print(UserStore(_store(db)).add_user(name, admin))


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str | None) -> float | None:
    """``30d``, ``12h``, ``90m``, ``45s`` in seconds (None stays None)."""
    if text is None:
        return None
    number, unit = text.strip()[:-1], text.strip()[-1:]
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except (KeyError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValidationError([FieldError("--expires", "must be a positive number followed by s, m, h or d, "
                                          f"like 30d or 12h (got {text!r})")], "option")
    return seconds


def _span(seconds: float) -> str:
    """A duration as its largest whole unit: ``29d``, ``5h``, ``3m``, ``40s``."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@user_app.command("token")
def user_token(name: str = typer.Argument(..., help="User name."),
               expires: str | None = typer.Option(None, "--expires", metavar="DURATION",
                                                  help="Valid for this long: 45s, 90m, 12h, 30d (default: until revoked)."),
               db: str | None = DbOption) -> None:
    """Print a new API token for the user (its id, for `katib user revoke`, goes to stderr)."""
    from katib.store import UserStore

    token, info = UserStore(_store(db)).issue_token(name, _duration(expires))
    print(token)
    until = "until revoked" if info.expires_at is None else "until " + time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(info.expires_at))
    err.print(f"token {info.id} of {name}, valid {until}", highlight=False)


@user_app.command("tokens")
def user_tokens(name: str = typer.Argument(..., help="User name."), db: str | None = DbOption) -> None:
    """The user's tokens: id, age, expiry and last use (never the tokens themselves)."""
    from katib.store import UserStore

    now = time.time()
    table = Table(box=None)
    for col in ("ID", "AGE", "EXPIRES", "LAST USED"):
        table.add_column(col)
    for t in UserStore(_store(db)).list_tokens(name):
        if t.expires_at is None:
            expires = "never"
        elif t.expired(now):
            expires = f"expired {_span(now - t.expires_at)} ago"
        else:
            expires = f"in {_span(t.expires_at - now)}"
        used = "never" if t.last_used_at is None else f"{_span(now - t.last_used_at)} ago"
        table.add_row(str(t.id), _span(now - t.created_at), expires, used)
    out.print(table)


@user_app.command("revoke")
def user_revoke(name: str = typer.Argument(..., help="User name."),
                token_id: int = typer.Argument(..., help="Token id, as `katib user tokens NAME` shows it."),
                db: str | None = DbOption) -> None:
    """Revoke one of the user's tokens: the server refuses it from the next request on."""
    from katib.store import UserStore

    UserStore(_store(db)).revoke_token(name, token_id)
    out.print(f"token {token_id} of {name} revoked", highlight=False)


@user_app.command("remove")
def user_remove(name: str = typer.Argument(..., help="User name."), db: str | None = DbOption) -> None:
    """Delete the user with their tokens and roles (their experiments stay)."""
    from katib.store import UserStore

    UserStore(_store(db)).remove_user(name)
    out.print(f"user {name} removed", highlight=False)


@user_app.command("ungrant")
def user_ungrant(name: str = typer.Argument(..., help="User name."),
                 namespace: str = typer.Argument(..., help="Namespace."),
                 db: str | None = DbOption) -> None:
    """Take the user's role in a namespace away."""
    from katib.store import UserStore

    UserStore(_store(db)).ungrant(name, namespace)
    out.print(f"{name} has no role in {namespace} now", highlight=False)


@user_app.command("grant")
def user_grant(name: str = typer.Argument(..., help="User name."),
               namespace: str = typer.Argument(..., help="Namespace."),
               role: str = typer.Argument(..., help="viewer, editor or owner."),
               db: str | None = DbOption) -> None:
    """Give the user a role in a namespace (replacing the one they had there)."""
    from katib.store import UserStore

    UserStore(_store(db)).grant(name, namespace, role)
    out.print(f"{name} is {role} in {namespace}", highlight=False)


@user_app.command("list")
def user_list(db: str | None = DbOption) -> None:
    """Users and their roles."""
    from katib.store import UserStore

    for u in UserStore(_store(db)).list_users():
        roles = ", ".join(f"{ns}: {r}" for ns, r in sorted(u.roles.items())) or "-"
        out.print(f"{u.name}{' (admin)' if u.admin else ''}  {roles}", highlight=False)
