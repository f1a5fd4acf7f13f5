"""Server-side portal sessions in the operational store.

The cookie holds 256 random bits; the store keeps only their sha256 (`session_id`), so a
copy of the store opens no session. A session ends after `IDLE` without a request, after
`ABSOLUTE` in any case, on sign-out, and when the per-invoice link it was opened with is
revoked. Signing in always starts a new session (the old one ends), so a session id
planted before sign-in is worth nothing afterwards.

The cookie is HttpOnly and SameSite=Lax, and Secure (with the `__Host-` prefix) when the
portal's base URL is https.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from q2c.opsdb import ensure_schema, transaction
from q2c.portal.web import ACCOUNT_SCOPE, VIA_SIGN_IN, Customer

SESSIONS_TABLE = "portal_sessions"
COOKIE = "q2c_portal_session"
SECURE_COOKIE = "__Host-q2c_portal_session"
IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=8)
# last_seen_at is written at most this often (every request would serialise the store).
TOUCH_EVERY = dt.timedelta(seconds=60)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,64}")

SESSIONS_DDL = f"""
create table if not exists {SESSIONS_TABLE} (
    session_id text primary key,
    account_key text not null,
    contact_id text not null,
    language text not null,
    scope text not null,
    via text not null,
    link_id text,
    created_at text not null,
    last_seen_at text not null,
    expires_at text not null,
    ended_at text,
    end_reason text
);
create index if not exists portal_sessions_link on {SESSIONS_TABLE} (link_id);
"""


@dataclass(frozen=True)
class CookieSettings:
    """How the session cookie is set: Secure and `__Host-` when the base URL is https."""

    secure: bool

    @property
    def name(self) -> str:
        return SECURE_COOKIE if self.secure else COOKIE

    def header(self, value: str, max_age: int | None = None) -> str:
        parts = [f"{self.name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def ensure_sessions(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, SESSIONS_DDL)


def session_id_of(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def start_session(
    conn: sqlite3.Connection,
    *,
    account_key: str,
    contact_id: str,
    language: str,
    scope: str = ACCOUNT_SCOPE,
    via: str = VIA_SIGN_IN,
    link_id: str | None = None,
    replaces: str | None = None,
    now: dt.datetime,
) -> tuple[str, Customer]:
    """Start a session and return the cookie value and the customer it signs in.

    Args:
        replaces: The cookie value of the browser's current session, which ends.
    """
    cookie_value = secrets.token_urlsafe(32)
    session_id = session_id_of(cookie_value)
    moment = _iso(now)
    with transaction(conn):
        if replaces:
            _end(conn, session_id_of(replaces), "replaced", now)
        conn.execute(
            f"insert into {SESSIONS_TABLE} (session_id, account_key, contact_id, language,"
            " scope, via, link_id, created_at, last_seen_at, expires_at)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, account_key, contact_id, language, scope, via, link_id, moment,
             moment, _iso(now + ABSOLUTE)),
        )
    customer = Customer(account_key=account_key, contact_id=contact_id, language=language,
                        scope=scope, via=via, session_id=session_id)
    return cookie_value, customer


def load_session(conn: sqlite3.Connection, cookie_value: str | None,
                 now: dt.datetime) -> Customer | None:
    """The customer of a live session, or None (unknown, ended, idle or expired)."""
    if not cookie_value or not _TOKEN.fullmatch(cookie_value):
        return None
    row = conn.execute(
        f"select * from {SESSIONS_TABLE} where session_id = ?", (session_id_of(cookie_value),)
    ).fetchone()
    if row is None or row["ended_at"] is not None:
        return None
    last_seen = dt.datetime.fromisoformat(row["last_seen_at"])
    if now >= dt.datetime.fromisoformat(row["expires_at"]):
        end_session(conn, row["session_id"], "expired", now)
        return None
    if now - last_seen >= IDLE:
        end_session(conn, row["session_id"], "idle", now)
        return None
    if now - last_seen >= TOUCH_EVERY:
        conn.execute(f"update {SESSIONS_TABLE} set last_seen_at = ? where session_id = ?"
                     " and ended_at is null", (_iso(now), row["session_id"]))
    return Customer(account_key=row["account_key"], contact_id=row["contact_id"],
                    language=row["language"], scope=row["scope"], via=row["via"],
                    session_id=row["session_id"])


def end_session(conn: sqlite3.Connection, session_id: str, reason: str,
                now: dt.datetime) -> None:
    with transaction(conn):
        _end(conn, session_id, reason, now)


def end_link_sessions(conn: sqlite3.Connection, link_id: str, now: dt.datetime) -> int:
    """End every live session opened with a link; call inside the revocation's
    transaction. Returns how many ended."""
    cursor = conn.execute(
        f"update {SESSIONS_TABLE} set ended_at = ?, end_reason = 'link revoked'"
        " where link_id = ? and ended_at is null", (_iso(now), link_id))
    return cursor.rowcount


def _end(conn: sqlite3.Connection, session_id: str, reason: str, now: dt.datetime) -> None:
    conn.execute(
        f"update {SESSIONS_TABLE} set ended_at = ?, end_reason = ?"
        " where session_id = ? and ended_at is null", (_iso(now), reason, session_id))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")
