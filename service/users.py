"""Users and their bearer tokens: created and revoked by `srm-bench user add` / `token revoke`.

A token is 32 random bytes, shown once; SQL keeps only its SHA-256 (a random token needs no slow
hash), so a stolen database holds no usable token. The bootstrap admin token
(SRM_BENCH_API_TOKEN) lives in the environment, not here.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import User, utcnow

BOOTSTRAP_ADMIN = "admin"  # the name jobs submitted with SRM_BENCH_API_TOKEN are recorded under
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a user's name (None when writes are open and no token came) and rights."""

    name: str | None
    is_admin: bool


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str, admin: bool = False) -> str:
    """Create a user and return their token (the only time it is seen). A revoked user gets a new one."""
    if not NAME_PATTERN.match(name) or name == BOOTSTRAP_ADMIN:
        raise ValueError(f"invalid user name {name!r}: use 1-100 of a-z 0-9 _ . - starting with a letter or "
                         f"digit, and not {BOOTSTRAP_ADMIN!r} (the bootstrap token's name)")
    token = "srmb_" + secrets.token_urlsafe(32)
    user = session.get(User, name)
    if user is not None and user.token_sha256 is not None:
        raise ValueError(f"user {name!r} already exists with a valid token; `srm-bench token revoke {name}` first")
    if user is None:
        user = User(name=name, created_at=utcnow())
        session.add(user)
    user.token_sha256, user.is_admin, user.revoked_at = token_sha256(token), admin, None
    session.commit()
    return token


def revoke_token(session: Session, name: str) -> None:
    """The user's token stops working at once; their jobs and their name stay."""
    user = session.get(User, name)
    if user is None:
        raise ValueError(f"no user {name!r}; `srm-bench user list` shows the users")
    user.token_sha256, user.revoked_at = None, utcnow()
    session.commit()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def caller_for(session: Session, token: str, bootstrap_token: str | None) -> Caller | None:
    """The caller a bearer token stands for, or None for an unknown or revoked token.

    The bootstrap token is compared in constant time; a user token is found by its hash (the
    database never sees the token), then the stored hash is compared in constant time too.
    """
    if bootstrap_token is not None and hmac.compare_digest(token.encode(), bootstrap_token.encode()):
        return Caller(BOOTSTRAP_ADMIN, True)
    digest = token_sha256(token)
    user = session.scalars(select(User).where(User.token_sha256 == digest)).first()
    if user is None or not hmac.compare_digest(user.token_sha256.encode(), digest.encode()):
        return None
    return Caller(user.name, user.is_admin)
