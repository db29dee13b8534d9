"""Reaching the Ray cluster: an existing one at RAY_ADDRESS (with its auth token), or a local one.

Ray 2.60 turns token authentication on by default, but a driver given an explicit address only
sends a token when RAY_AUTH_MODE=token is set; Ray itself enables that mode only for a cluster it
finds on its own. So a service pointed at a token-protected head with RAY_AUTH_TOKEN (or
RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) but no mode failed every trial with InvalidAuthToken.
Here a configured token always turns token mode on (a token is harmless against a cluster without
auth), and `probe` asks the head for real, so a missing or wrong token is said once, at start and
in /healthz, instead of failing trials one by one.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import settings

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN = "RAY_AUTH_TOKEN"
TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
TOKEN_HELP = (f"give this process the head's token: {TOKEN}=<token> or {TOKEN_PATH}=<file> "
              "(`ray get-auth-token` prints it on the head)")


class RayUnavailable(RuntimeError):
    """The cluster at RAY_ADDRESS cannot be used; the message says why and what to do."""


def address() -> str | None:
    """RAY_ADDRESS: None for a local Ray started on demand (unset or "local"), "auto" for the one
    `ray start` ran on this machine, else the head's host:port."""
    value = (settings.current().ray_address or "").strip()
    return None if value in ("", "local") else value


def token_source() -> str | None:
    """Where this process's Ray token comes from, or None when it has none."""
    if os.environ.get(TOKEN):
        return f"${TOKEN}"
    path = os.environ.get(TOKEN_PATH)
    if path:
        return path if Path(path).is_file() else None
    home_file = Path.home() / ".ray" / "auth_token"
    return str(home_file) if home_file.is_file() else None


def use_token_if_available() -> bool:
    """Turn on Ray's token mode when a token is configured and the mode is not set explicitly."""
    mode = os.environ.get(AUTH_MODE)
    if mode is not None:
        return mode.lower() == "token"
    if token_source() is None:
        return False
    os.environ[AUTH_MODE] = "token"
    _refresh_ray_config()
    return True


def _refresh_ray_config() -> None:
    """Ray's C++ side caches its config (auth mode included); make it read the environment again."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token auth
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise RayUnavailable(f"RAY_ADDRESS={addr!r} should look like host:port (the head's GCS port, 6379 by default)")
    return host or "127.0.0.1", int(port)


def probe(addr: str, timeout: float = 3.0) -> None:
    """Ask the head at ``addr`` for its session name; raise RayUnavailable saying why it failed."""
    host, port = _split(addr)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise RayUnavailable(f"Ray head at {addr} is not reachable: {err}") from None
    use_token_if_available()
    from ray._raylet import GcsClient

    try:
        GcsClient(address=f"{host}:{port}").internal_kv_get(b"session_name", namespace=b"session",
                                                            timeout=timeout)
    except Exception as err:
        if "auth" in type(err).__name__.lower() or "InvalidAuthToken" in str(err):
            source = token_source()
            why = (f"the token from {source} is wrong" if source and os.environ.get(AUTH_MODE) == "token"
                   else "this process has no token")
            raise RayUnavailable(f"Ray head at {addr} refused the connection: it requires token "
                                 f"authentication and {why}; {TOKEN_HELP}") from None
        raise RayUnavailable(f"Ray head at {addr} did not answer: {type(err).__name__}: {err}") from None


_connecting = threading.Lock()  # a dispatcher's job threads connect at once; ray.init must run once


def connect() -> None:
    """Reuse a connected Ray; else the cluster at RAY_ADDRESS (checked first); else a new local Ray."""
    import ray

    with _connecting:
        if ray.is_initialized():
            return
        addr = address()
        if addr not in (None, "auto"):
            probe(addr)
        options = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
        if addr is None:
            # "local" rather than None: None would attach to whatever `ray start` ran last on this machine.
            _in_lasting_thread(lambda: ray.init(address="local", **options))
        else:
            ray.init(address=addr, **options)


def _in_lasting_thread(start: Callable[[], object]) -> None:
    """Run ``start`` (a ray.init that starts a local Ray) in a thread that lives as long as the process.

    Ray makes its GCS and raylet die with their parent through PR_SET_PDEATHSIG, which Linux ties to
    the *thread* that started them: a local Ray started from a dispatcher's job thread was killed
    when that job ended, and the service died a minute later ("Failed to connect to GCS")."""
    started, errors = threading.Event(), []

    def own() -> None:
        try:
            start()
        except BaseException as err:  # handed to the caller below
            errors.append(err)
        started.set()
        if not errors:
            threading.Event().wait()  # never returns: the Ray processes stay bound to a live thread

    threading.Thread(target=own, name="local-ray-owner", daemon=True).start()
    started.wait()
    if errors:
        raise errors[0]


_cache: dict[str, tuple[float, str | None]] = {}


def status(max_age: float = 5.0) -> dict:
    """For /healthz: whether RAY_ADDRESS answers (a real connection, cached for ``max_age`` seconds)."""
    addr = address()
    if addr is None:
        return {"ok": True, "address": None, "note": "a local Ray is started on demand"}
    if addr == "auto":
        return {"ok": True, "address": addr, "note": "the Ray that `ray start` runs on this machine is used"}
    key = f"{addr}|{token_source()}|{os.environ.get(AUTH_MODE)}"
    checked_at, error = _cache.get(key, (0.0, None))
    if time.monotonic() - checked_at > max_age:
        try:
            probe(addr)
            error = None
        except RayUnavailable as err:
            error = str(err)
        _cache[key] = (time.monotonic(), error)
    return {"ok": error is None, "address": addr} | ({"error": error} if error else {})
