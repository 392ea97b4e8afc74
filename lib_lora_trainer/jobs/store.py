"""The jobs table: one SQLite file (WAL) in the data dir, safe for several processes at once."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from .states import ACTIVE, QUEUED, RUNNING, check_transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    engine TEXT NOT NULL,
    gpu TEXT NOT NULL DEFAULT '0',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    job_dir TEXT NOT NULL,
    config TEXT NOT NULL,
    pid INTEGER,
    returncode INTEGER,
    error_kind TEXT,
    error TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    installed_path TEXT,
    resume_from TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    launcher TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""


@dataclass
class Job:
    id: str
    name: str
    state: str
    engine: str
    job_dir: str
    config: dict
    gpu: str = "0"
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    returncode: int | None = None
    error_kind: str | None = None
    error: str | None = None
    progress: dict = field(default_factory=dict)
    installed_path: str | None = None
    resume_from: str | None = None
    attempts: int = 0
    launcher: str | None = None  # "pid:start time" of the process launching it, while pid is NULL

    @property
    def folder(self) -> Path:
        return Path(self.job_dir)


_JSON_FIELDS = ("config", "progress")


def _row_to_job(row: sqlite3.Row) -> Job:
    data = dict(row)
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key] or "{}")
    return Job(**data)


class JobStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            _add_missing_columns(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: safe across threads and processes.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        try:
            yield db
        finally:
            db.close()

    def create(self, name: str, engine: str, job_dir: str, config: dict, gpu: str = "0",
               state: str = QUEUED, job_id: str | None = None) -> Job:
        job = Job(id=job_id or new_job_id(), name=name, state=state, engine=engine, job_dir=job_dir,
                  config=config, gpu=gpu, created_at=time.time())
        cols = [f.name for f in fields(Job)]
        values = [json.dumps(getattr(job, c)) if c in _JSON_FIELDS else getattr(job, c) for c in cols]
        with self._connect() as db:
            db.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def list(self, states: tuple[str, ...] | None = None) -> list[Job]:
        with self._connect() as db:
            if states:
                rows = db.execute(f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(states))}) "
                                  "ORDER BY created_at", states).fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
        return [_row_to_job(r) for r in rows]

    def update(self, job_id: str, expect_state: str | None = None, **values: Any) -> Job:
        """Set fields; a state change is checked, and `expect_state` makes it compare-and-set."""
        for key in _JSON_FIELDS:
            if key in values:
                values[key] = json.dumps(values[key])
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no job {job_id}")
                if expect_state is not None and row["state"] != expect_state:
                    raise StaleStateError(f"job {job_id} is {row['state']}, not {expect_state}")
                if "state" in values and values["state"] != row["state"]:
                    check_transition(row["state"], values["state"])
                if values:
                    sets = ", ".join(f"{k} = ?" for k in values)
                    db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*values.values(), job_id])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get(job_id)

    def claim_next(self, gpu: str, launcher: str | None = None) -> Job | None:
        """Atomically move the oldest queued job on `gpu` to running, if none runs there already.
        The row names its launcher: until the launch stores a pid, a reconcile elsewhere knows the
        job is being started (not dead) as long as that process lives."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                busy = db.execute("SELECT 1 FROM jobs WHERE gpu = ? AND state IN (?, ?)",
                                  (gpu, RUNNING, "preparing")).fetchone()
                row = None if busy else db.execute(
                    "SELECT id FROM jobs WHERE gpu = ? AND state = ? ORDER BY created_at LIMIT 1",
                    (gpu, QUEUED)).fetchone()
                if row:
                    db.execute("UPDATE jobs SET state = ?, started_at = ?, attempts = attempts + 1, pid = NULL, "
                               "returncode = NULL, launcher = ? WHERE id = ?",
                               (RUNNING, time.time(), launcher, row["id"]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get(row["id"]) if row else None

    def active(self) -> list[Job]:
        return self.list(ACTIVE)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A data dir made by an older version lacks newer columns; several processes may race here."""
    have = {r["name"] for r in db.execute("PRAGMA table_info(jobs)")}
    for name, decl in (("launcher", "TEXT"),):
        if name not in have:
            try:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


class StaleStateError(RuntimeError):
    pass


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
