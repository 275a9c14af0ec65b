"""Browser sessions: who may undo an answer.

The annotator name a client sends is only a label (anyone can type "alice"). What ties an answer to the client
that gave it is a session id the app issues in an HttpOnly cookie on the first answer. The ledger records the
session of every answer the app stores, so an undo (DELETE /api/answers/{request}) is only carried out for the
session that gave the answer.

The ledger is one table in the request folder's labels.sqlite, beside the store's own tables, so it outlives
the server and is shared by several servers on one folder. Its rows reference the answers (ON DELETE
CASCADE): when the store deletes an answer (an undo), its session row goes with it in the same statement.
An answer the app did not store (oracle, import) has no session and cannot be undone through the app.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
from pathlib import Path

SESSION_COOKIE = "syn2real_session"
#: What `new_session` makes: 32 random bytes, URL-safe base64.
SESSION_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS annotator_sessions (
    request INTEGER PRIMARY KEY REFERENCES answers(request) ON DELETE CASCADE, session TEXT NOT NULL);
"""


def new_session() -> str:
    return secrets.token_urlsafe(32)


def valid_session(value: str | None) -> bool:
    return value is not None and SESSION_PATTERN.fullmatch(value) is not None


class SessionLedger:
    """request id -> session id of its answer, in `path` (a label store's SQLite file, whose `answers` table
    must exist). Safe to share between threads; each thread has its own connection."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = Path(path)
        self._timeout = timeout
        self._local = threading.local()
        self._connection().executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def record(self, request_id: int, session: str) -> None:
        """`session` gave the (just stored) answer to `request_id`. A no-op when that answer is gone already."""
        try:
            self._connection().execute("INSERT OR REPLACE INTO annotator_sessions VALUES (?, ?)",
                                       (request_id, session))
        except sqlite3.IntegrityError:  # the answer was deleted meanwhile (not through the app)
            pass

    def owner(self, request_id: int) -> str | None:
        """The session that gave the current answer to `request_id`; None when it has no answer from the app."""
        row = self._connection().execute(
            "SELECT s.session FROM annotator_sessions s JOIN answers a ON a.request = s.request "
            "WHERE s.request = ?", (request_id,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
