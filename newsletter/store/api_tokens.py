"""API tokens: made, listed, revoked, and found by the token a request presents."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.errors import AlreadyExists, InvalidInput
from newsletter.intake.api_tokens import new_token, normalise_scopes, token_hash, token_name
from newsletter.models import ApiToken, utcnow

LAST_USED_EVERY = timedelta(minutes=1)
"""How stale `last_used_at` may get: a busy token writes it once a minute, not per request."""


def create_api_token(session: Session, name: str, scopes) -> tuple[ApiToken, str]:
    """A new token and its secret, which is shown once and never stored."""
    name, scopes = token_name(name), normalise_scopes(scopes)
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise AlreadyExists(
            f"a token named {name!r} exists already (revoke it, or pick another name)"
        )
    secret = new_token()
    token = ApiToken(name=name, token_hash=token_hash(secret), scopes=scopes)
    session.add(token)
    session.flush()
    return token, secret


def list_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_api_token(session: Session, name: str) -> ApiToken:
    """Refuse the named token from now on; kept, so `tokens list` shows who had access."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name.strip()))
    if token is None:
        raise InvalidInput(f"no token named {name!r} (see `newsletter tokens list`)")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def usable_api_token(session: Session, secret: str) -> ApiToken | None:
    """The unrevoked token whose secret this is; None for any other string."""
    return session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(secret), ApiToken.revoked_at.is_(None)
        )
    )


def note_api_token_use(session: Session, token: ApiToken, now: datetime | None = None) -> None:
    """Record that the token was used, at most once a LAST_USED_EVERY (one cheap UPDATE)."""
    now = now or utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
