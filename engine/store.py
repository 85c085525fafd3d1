"""The SQLite store: the only module that speaks SQL.

One connection per thread, in autocommit mode; every write is an explicit `BEGIN IMMEDIATE ...
COMMIT` that rolls back on error, so the daemon, the CLI and the interface can share the file.
WAL lets readers go on while one process writes; a short busy timeout makes writers queue.
`PRAGMA user_version` numbers the schema; `MIGRATIONS[i]` moves a store from version i to i+1.

Callers get frozen dataclasses (`Sweep`, `Run`), never a cursor.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridrun.engine.clean import clean_metrics, clean_text
from gridrun.engine.errors import GridrunError
from gridrun.engine.matrix import RunSpec, SweepSpec, slug

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")

MIGRATIONS: list[str] = [
    # 0 -> 1: the first schema
    """
    CREATE TABLE sweeps (
        id       INTEGER PRIMARY KEY,
        name     TEXT NOT NULL UNIQUE,
        spec     TEXT NOT NULL,              -- JSON: SweepSpec.to_json()
        created  REAL NOT NULL,
        updated  REAL NOT NULL
    );
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        sweep_id     INTEGER NOT NULL REFERENCES sweeps(id),
        idx          INTEGER NOT NULL,       -- 1-based position in its sweep
        key          TEXT NOT NULL,          -- canonical JSON of params: identity in the sweep
        params       TEXT NOT NULL,
        stage        INTEGER NOT NULL DEFAULT 1,
        run_dir      TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        attempt      INTEGER NOT NULL DEFAULT 1,
        retries_left INTEGER NOT NULL DEFAULT 0,
        priority     INTEGER NOT NULL DEFAULT 0,
        exclusive    INTEGER NOT NULL DEFAULT 0, -- 1: must have its GPU to itself (after an OOM)
        device       TEXT,
        pid          INTEGER,
        pid_start    TEXT,                   -- the process's start time, so a reused pid is not ours
        exit_code    INTEGER,
        error        TEXT,
        flags        TEXT NOT NULL DEFAULT '[]',
        metric_names TEXT NOT NULL DEFAULT '[]',
        last_metrics TEXT NOT NULL DEFAULT '{}',
        peak_mem_mb  REAL,
        created      REAL NOT NULL,
        started      REAL,
        ended        REAL,
        UNIQUE (sweep_id, key),
        UNIQUE (sweep_id, idx)
    );
    CREATE INDEX runs_by_status ON runs (status, priority DESC, sweep_id, idx);
    CREATE TABLE metrics (
        run_id  INTEGER NOT NULL REFERENCES runs(id),
        seq     INTEGER NOT NULL,
        source  TEXT NOT NULL,               -- 'report' (metrics.jsonl) or 'stdout' (parsed)
        data    TEXT NOT NULL,               -- JSON object of one report
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE requests (
        id       INTEGER PRIMARY KEY,
        kind     TEXT NOT NULL CHECK (kind IN ('cancel', 'stop', 'stop_now')),
        run_id   INTEGER REFERENCES runs(id),
        created  REAL NOT NULL,
        done     REAL
    );
    """,
    # 1 -> 2: a change counter, so that readers (the interface) fetch only the runs that
    # changed since their last look. Statements one by one: trigger bodies hold ';'.
    [
        "ALTER TABLE runs ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE changes (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
        "INSERT INTO changes (id, n) VALUES (1, (SELECT COUNT(*) FROM runs))",
        "UPDATE runs SET version = id",
        "CREATE INDEX runs_by_version ON runs (version)",
        """CREATE TRIGGER runs_inserted AFTER INSERT ON runs BEGIN
               UPDATE changes SET n = n + 1 WHERE id = 1;
               UPDATE runs SET version = (SELECT n FROM changes WHERE id = 1) WHERE id = NEW.id;
           END""",
        # not for the insert trigger's own stamping (version changed); and recursive triggers
        # are off, so this one's inner UPDATE does not fire it again
        """CREATE TRIGGER runs_updated AFTER UPDATE ON runs
           WHEN NEW.version = OLD.version BEGIN
               UPDATE changes SET n = n + 1 WHERE id = 1;
               UPDATE runs SET version = (SELECT n FROM changes WHERE id = 1) WHERE id = NEW.id;
           END""",
    ],
    # 2 -> 3: a `slots` request (new slot counts for the running daemon) with its values in
    # `data` (JSON). SQLite cannot change a CHECK: the table is rebuilt.
    [
        """CREATE TABLE requests_new (
               id       INTEGER PRIMARY KEY,
               kind     TEXT NOT NULL CHECK (kind IN ('cancel', 'stop', 'stop_now', 'slots')),
               run_id   INTEGER REFERENCES runs(id),
               created  REAL NOT NULL,
               done     REAL,
               data     TEXT
           )""",
        "INSERT INTO requests_new (id, kind, run_id, created, done) "
        "SELECT id, kind, run_id, created, done FROM requests",
        "DROP TABLE requests",
        "ALTER TABLE requests_new RENAME TO requests",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Sweep:
    id: int
    name: str
    spec: dict
    created: float

    @property
    def varying(self) -> list[str]:
        return self.spec.get("varying", [])

    @property
    def metric(self) -> str | None:
        return self.spec.get("metric")

    @property
    def mode(self) -> str:
        return self.spec.get("mode", "max")


@dataclass(frozen=True)
class SweepCounts:
    sweep: Sweep
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Run:
    id: int
    sweep: str
    sweep_id: int
    index: int
    params: dict
    stage: int
    run_dir: str
    status: str
    attempt: int
    retries_left: int
    priority: int
    exclusive: bool
    device: str | None
    pid: int | None
    pid_start: str | None
    exit_code: int | None
    error: str | None
    flags: list[str]
    metric_names: list[str]
    last_metrics: dict
    peak_mem_mb: float | None
    created: float
    started: float | None
    ended: float | None
    version: int = 0          # the store's change counter when this run last changed

    def to_json(self) -> dict:
        return {
            "id": self.id, "sweep": self.sweep, "index": self.index, "status": self.status,
            "device": self.device, "attempt": self.attempt, "params": self.params,
            "metrics": self.last_metrics, "metric_names": self.metric_names,
            "flags": self.flags, "started": self.started, "ended": self.ended,
            "exit_code": self.exit_code, "error": self.error, "run_dir": self.run_dir,
            "stage": self.stage,
        }


@dataclass(frozen=True)
class AddResult:
    sweep: str
    added: int
    existing: int
    new_run_ids: list[int] = field(default_factory=list)


_RUN_COLUMNS = ("r.id, s.name, r.sweep_id, r.idx, r.params, r.stage, r.run_dir, r.status, "
                "r.attempt, r.retries_left, r.priority, r.exclusive, r.device, r.pid, "
                "r.pid_start, r.exit_code, r.error, r.flags, r.metric_names, r.last_metrics, "
                "r.peak_mem_mb, r.created, r.started, r.ended, r.version")


def _run(row: Sequence) -> Run:
    return Run(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7],
               row[8], row[9], row[10], bool(row[11]), row[12], row[13], row[14], row[15],
               row[16], json.loads(row[17]), json.loads(row[18]), json.loads(row[19]), row[20],
               row[21], row[22], row[23], row[24])


def _sweep(row: Sequence) -> Sweep:
    return Sweep(row[0], row[1], json.loads(row[2]), row[3])


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Store:
    """A handle on `<home>/gridrun.db`; safe to share between threads (one connection each)."""

    def __init__(self, home: str | Path):
        self.home = Path(home)
        self.path = self.home / "gridrun.db"
        self._local = threading.local()
        self._conn()  # open now: a corrupt file is reported by whoever opens the store

    # -- connection and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GridrunError(f"cannot create the home folder: {e.strerror}",
                               path=str(self.home)) from None
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as e:
            raise GridrunError(f"not a gridrun store ({e}); the file was left untouched",
                               path=str(self.path),
                               hint="move it aside, or pass --home DIR for a new store") from None
        if version > SCHEMA_VERSION:
            raise GridrunError(f"store schema version {version} is newer than this gridrun "
                               f"understands ({SCHEMA_VERSION})", path=str(self.path),
                               hint="upgrade gridrun")
        if version < SCHEMA_VERSION:
            self._migrate(conn, version)
        return conn

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the write lock
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for i in range(version, SCHEMA_VERSION):
                step = MIGRATIONS[i]
                statements = step.split(";") if isinstance(step, str) else step
                for statement in statements:
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {i + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front (no upgrade
        deadlocks between readers that later write)."""
        with self._corruption_is_user_error():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._corruption_is_user_error():
            return self._conn().execute(sql, args).fetchall()

    @contextmanager
    def _corruption_is_user_error(self) -> Iterator[None]:
        """A damaged file (pages, not just the header) is named, never an 'internal error'.
        OperationalError (locked, busy) is not damage and goes on as it is."""
        try:
            yield
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as e:
            raise GridrunError(f"the store is damaged ({e}); the file was left untouched",
                               path=str(self.path),
                               hint="move it aside, or pass --home DIR for a new store") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- sweeps and adding runs ----------------------------------------------------------------

    def add_sweep(self, spec: SweepSpec) -> AddResult:
        """Store a sweep's runs; runs already there (same parameters) are left alone."""
        now = time.time()
        res = spec.resources
        with self.write() as conn:
            row = conn.execute("SELECT id, spec FROM sweeps WHERE name = ?", (spec.name,)).fetchone()
            if row is None:
                sweep_id = conn.execute(
                    "INSERT INTO sweeps (name, spec, created, updated) VALUES (?, ?, ?, ?)",
                    (spec.name, dumps(spec.to_json()), now, now)).lastrowid
                varying = list(spec.varying)
            else:
                sweep_id = row[0]
                old = json.loads(row[1])
                # the union, so that slugs of later adds still name what varies across the sweep
                varying = old.get("varying", []) + [k for k in spec.varying
                                                    if k not in old.get("varying", [])]
                # what the daemon decided (the bases of later stages) outlives re-adding the file
                merged = {**spec.to_json(), "varying": varying,
                          "stage_bases": old.get("stage_bases", {})}
                conn.execute("UPDATE sweeps SET spec = ?, updated = ? WHERE id = ?",
                             (dumps(merged), now, sweep_id))
            new_ids = self._insert_runs(conn, sweep_id, spec.name, spec.runs, varying,
                                        res.retries, res.priority)
        return AddResult(spec.name, len(new_ids), len(spec.runs) - len(new_ids), new_ids)

    def _insert_runs(self, conn: sqlite3.Connection, sweep_id: int, sweep_name: str,
                     runs: Sequence[RunSpec], varying: list[str], retries: int, priority: int
                     ) -> list[int]:
        """Runs not yet in the sweep (by parameters) get the next indices and a folder."""
        existing = {k for (k,) in conn.execute("SELECT key FROM runs WHERE sweep_id = ?",
                                               (sweep_id,))}
        next_idx = conn.execute("SELECT COALESCE(MAX(idx), 0) FROM runs WHERE sweep_id = ?",
                                (sweep_id,)).fetchone()[0]
        new_ids = []
        now = time.time()
        for run in runs:
            key = run.key
            if key in existing:
                continue
            existing.add(key)
            next_idx += 1
            folder = self.home / sweep_name / f"{next_idx:04d}-{slug(run.params, varying)}"
            cur = conn.execute(
                "INSERT INTO runs (sweep_id, idx, key, params, stage, run_dir, retries_left,"
                " priority, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sweep_id, next_idx, key, dumps(run.params), run.stage, str(folder),
                 retries, priority, now))
            new_ids.append(cur.lastrowid)
        return new_ids

    def add_stage(self, sweep_id: int, number: int, base: dict, runs: Sequence[RunSpec],
                  keys: list[str]) -> list[int]:
        """Record the base chosen for a stage and queue its runs, in one transaction; a stage
        already expanded (another process was first) is left as it is."""
        with self.write() as conn:
            spec = json.loads(conn.execute("SELECT spec FROM sweeps WHERE id = ?",
                                           (sweep_id,)).fetchone()[0])
            bases = spec.setdefault("stage_bases", {})
            if str(number) in bases:
                return []
            bases[str(number)] = base
            spec["varying"] = spec.get("varying", []) + [k for k in keys
                                                         if k not in spec.get("varying", [])]
            conn.execute("UPDATE sweeps SET spec = ?, updated = ? WHERE id = ?",
                         (dumps(spec), time.time(), sweep_id))
            name = conn.execute("SELECT name FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()[0]
            res = spec.get("resources", {})
            return self._insert_runs(conn, sweep_id, name, runs, spec["varying"],
                                     res.get("retries", 0), res.get("priority", 0))

    def sweeps(self) -> list[Sweep]:
        return [_sweep(r) for r in self.read(
            "SELECT id, name, spec, created FROM sweeps ORDER BY created, id")]

    def sweep(self, name: str) -> Sweep | None:
        rows = self.read("SELECT id, name, spec, created FROM sweeps WHERE name = ?", (name,))
        return _sweep(rows[0]) if rows else None

    def sweep_by_id(self, sweep_id: int) -> Sweep | None:
        rows = self.read("SELECT id, name, spec, created FROM sweeps WHERE id = ?", (sweep_id,))
        return _sweep(rows[0]) if rows else None

    def sweep_counts(self) -> list[SweepCounts]:
        counts: dict[int, dict[str, int]] = {}
        for sweep_id, status, n in self.read(
                "SELECT sweep_id, status, COUNT(*) FROM runs GROUP BY sweep_id, status"):
            counts.setdefault(sweep_id, {})[status] = n
        return [SweepCounts(s, counts.get(s.id, {})) for s in self.sweeps()]

    def require_sweep(self, name: str) -> Sweep:
        sweep = self.sweep(name)
        if sweep is None:
            from gridrun.engine.errors import did_you_mean
            names = [s.name for s in self.sweeps()]
            raise GridrunError(f'no sweep named "{name}" in {self.home}',
                               hint=did_you_mean(name, names)
                               or (f"sweeps: {', '.join(names)}" if names else
                                   "add one with `gridrun queue add FILE`"))
        return sweep

    # -- reading runs --------------------------------------------------------------------------

    def runs(self, sweep: str | None = None, status: str | Iterable[str] | None = None,
             ids: Iterable[int] | None = None) -> list[Run]:
        where, args = [], []
        if sweep is not None:
            where.append("s.name = ?")
            args.append(sweep)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"r.status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if ids is not None:
            ids = list(ids)
            if len(ids) > 500:  # old SQLite builds allow 999 variables a statement
                found = [r for start in range(0, len(ids), 500)
                         for r in self.runs(sweep, status, ids[start:start + 500])]
                return sorted(found, key=lambda r: r.id)
            where.append(f"r.id IN ({','.join('?' * len(ids))})")
            args += ids
        sql = (f"SELECT {_RUN_COLUMNS} FROM runs r JOIN sweeps s ON s.id = r.sweep_id"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.id")
        return [_run(row) for row in self.read(sql, args)]

    def run(self, run_id: int) -> Run | None:
        found = self.runs(ids=[run_id])
        return found[0] if found else None

    def change_counter(self) -> int:
        """Grows with every insert or update of a run: compare it to see whether to re-read."""
        return self.read("SELECT n FROM changes WHERE id = 1")[0][0]

    def runs_changed_since(self, version: int) -> list[Run]:
        sql = (f"SELECT {_RUN_COLUMNS} FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
               "WHERE r.version > ? ORDER BY r.id")
        return [_run(row) for row in self.read(sql, (version,))]

    def metrics_after(self, run_id: int, seq: int) -> list[tuple[int, dict]]:
        """(seq, row) of a run's metric rows after `seq`, for incremental readers."""
        rows = self.read("SELECT seq, data FROM metrics WHERE run_id = ? AND seq > ? "
                         "ORDER BY seq", (run_id, seq))
        return [(n, json.loads(d)) for n, d in rows]

    def metric_series(self, run_ids: Sequence[int], metric: str, after: int = 0
                      ) -> list[tuple[int, int, Any, Any]]:
        """(run_id, seq, epoch, value) of one metric for many runs, extracted by SQLite itself
        (no JSON parsing here): what sparklines need, fast on big stores."""
        out = []
        path = "$." + json.dumps(metric)  # quoted: any metric name is a valid JSON path key
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start:start + 500])
            out += self.read(
                "SELECT run_id, seq, json_extract(data, '$.epoch'), json_extract(data, ?) "
                f"FROM metrics WHERE run_id IN ({','.join('?' * len(chunk))}) AND seq > ? "
                "ORDER BY run_id, seq", [path, *chunk, after])
        return out

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(self.read("SELECT status, COUNT(*) FROM runs GROUP BY status")))
        return counts

    def queued(self) -> list[Run]:
        """Queued runs in the order they should start: priority, then sweep age, then index."""
        sql = (f"SELECT {_RUN_COLUMNS} FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
               "WHERE r.status = 'queued' ORDER BY r.priority DESC, s.created, s.id, r.idx")
        return [_run(row) for row in self.read(sql)]

    def metrics(self, run_id: int) -> list[dict]:
        rows = self.read("SELECT data FROM metrics WHERE run_id = ? ORDER BY seq", (run_id,))
        return [json.loads(d) for (d,) in rows]

    def metrics_for(self, run_ids: Sequence[int]) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {i: [] for i in run_ids}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = list(run_ids[chunk_start:chunk_start + 500])
            rows = self.read(f"SELECT run_id, data FROM metrics WHERE run_id IN "
                             f"({','.join('?' * len(chunk))}) ORDER BY run_id, seq", chunk)
            for run_id, data in rows:
                out[run_id].append(json.loads(data))
        return out

    # -- what the CLI and the interface may change --------------------------------------------

    def cancel(self, run_ids: Iterable[int]) -> tuple[list[int], list[int]]:
        """Queued runs are cancelled at once; running ones get a request the daemon applies.
        Returns (cancelled now, cancel requested)."""
        now_done, requested = [], []
        with self.write() as conn:
            for run_id in run_ids:
                status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
                if status is None:
                    continue
                if status[0] == "queued":
                    conn.execute("UPDATE runs SET status = 'cancelled', ended = ?, error = "
                                 "'cancelled before it started' WHERE id = ?", (time.time(), run_id))
                    now_done.append(run_id)
                elif status[0] == "running":
                    conn.execute("INSERT INTO requests (kind, run_id, created) VALUES "
                                 "('cancel', ?, ?)", (run_id, time.time()))
                    requested.append(run_id)
        return now_done, requested

    def retry(self, run_ids: Iterable[int]) -> list[int]:
        """Failed or cancelled runs go back to the queue as a new attempt."""
        retried = []
        with self.write() as conn:
            for run_id in run_ids:
                cur = conn.execute(
                    "UPDATE runs SET status = 'queued', attempt = attempt + 1, exit_code = NULL,"
                    " error = NULL, ended = NULL, started = NULL, device = NULL, pid = NULL "
                    "WHERE id = ? AND status IN ('failed', 'cancelled')", (run_id,))
                if cur.rowcount:
                    retried.append(run_id)
        return retried

    def request(self, kind: str, run_id: int | None = None) -> None:
        with self.write() as conn:
            conn.execute("INSERT INTO requests (kind, run_id, created) VALUES (?, ?, ?)",
                         (kind, run_id, time.time()))

    # -- the daemon's side ---------------------------------------------------------------------

    def pending_requests(self) -> list[tuple[int, str, int | None]]:
        return self.read("SELECT id, kind, run_id FROM requests WHERE done IS NULL ORDER BY id")

    def finish_requests(self, request_ids: Iterable[int]) -> None:
        ids = list(request_ids)
        if ids:
            with self.write() as conn:
                conn.executemany("UPDATE requests SET done = ? WHERE id = ?",
                                 [(time.time(), i) for i in ids])

    def clear_requests(self) -> list[int]:
        """A new daemon starts with no leftover requests: a stop was meant for its predecessor.
        A cancel still holds for its run: a run it names that is queued (a run requeued by the
        restore included) is cancelled now. Returns the runs cancelled."""
        cancelled = []
        with self.write() as conn:
            now = time.time()
            for (run_id,) in conn.execute("SELECT DISTINCT run_id FROM requests WHERE done IS "
                                          "NULL AND kind = 'cancel'").fetchall():
                cur = conn.execute("UPDATE runs SET status = 'cancelled', ended = ?, error = "
                                   "'cancelled' WHERE id = ? AND status = 'queued'", (now, run_id))
                if cur.rowcount:
                    cancelled.append(run_id)
            conn.execute("UPDATE requests SET done = ? WHERE done IS NULL", (now,))
        return cancelled

    def mark_running(self, run_id: int, device: str, pid: int | None = None,
                     pid_start: str | None = None) -> bool:
        """queued -> running; False when the run was cancelled meanwhile."""
        with self.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', device = ?, pid = ?, pid_start = ?, "
                "started = ?, ended = NULL, exit_code = NULL, error = NULL "
                "WHERE id = ? AND status = 'queued'", (device, pid, pid_start, time.time(), run_id))
            return cur.rowcount == 1

    def set_pid(self, run_id: int, pid: int, pid_start: str | None) -> None:
        """The process of a run already marked running (marked first, so that a crash between
        the two never leaves a started run marked queued)."""
        with self.write() as conn:
            conn.execute("UPDATE runs SET pid = ?, pid_start = ? WHERE id = ?",
                         (pid, pid_start, run_id))

    def set_device(self, run_id: int, device: str) -> None:
        """Where a running run runs, once a cluster has told (see engine.ray_backend)."""
        with self.write() as conn:
            conn.execute("UPDATE runs SET device = ? WHERE id = ? AND status = 'running'",
                         (device, run_id))

    def finish(self, run_id: int, status: str, exit_code: int | None, error: str | None) -> None:
        assert status in FINISHED
        with self.write() as conn:
            conn.execute("UPDATE runs SET status = ?, exit_code = ?, error = ?, ended = ?, "
                         "pid = NULL WHERE id = ?", (status, exit_code, error, time.time(), run_id))

    def requeue(self, run_id: int, *, exclusive: bool | None = None, use_retry: bool = False,
                error: str | None = None) -> None:
        """Back to queued as a new attempt (after a crash, a stop, an OOM or a retry)."""
        with self.write() as conn:
            conn.execute(
                "UPDATE runs SET status = 'queued', attempt = attempt + 1, pid = NULL, "
                "device = NULL, started = NULL, ended = NULL, exit_code = NULL, error = ?, "
                "exclusive = COALESCE(?, exclusive), "
                "retries_left = retries_left - ? WHERE id = ?",
                (error, None if exclusive is None else int(exclusive), int(use_retry), run_id))

    def fail_queued(self, run_id: int, error: str) -> None:
        with self.write() as conn:
            conn.execute("UPDATE runs SET status = 'failed', error = ?, ended = ? "
                         "WHERE id = ? AND status = 'queued'", (error, time.time(), run_id))

    def reset_metrics(self, run_id: int) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("UPDATE runs SET last_metrics = '{}', metric_names = '[]' WHERE id = ?",
                         (run_id,))

    def save_progress(self, updates: Sequence[Progress]) -> None:
        """One transaction per daemon tick for every running run's new metrics."""
        if not updates:
            return
        updates = [storable(u) for u in updates]
        with self.write() as conn:
            for u in updates:
                # seq only grows within an attempt, even when rows are replaced, so that
                # incremental readers can ask for "after seq N"
                start = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM metrics WHERE "
                                     "run_id = ?", (u.run_id,)).fetchone()[0]
                if u.replace_source:
                    conn.execute("DELETE FROM metrics WHERE run_id = ? AND source = ?",
                                 (u.run_id, u.replace_source))
                if u.drop_from_epoch:
                    source, epoch = u.drop_from_epoch
                    conn.execute("DELETE FROM metrics WHERE run_id = ? AND source = ? AND "
                                 "json_type(data, '$.epoch') IN ('integer', 'real') AND "
                                 "json_extract(data, '$.epoch') >= ?", (u.run_id, source, epoch))
                if u.rows:
                    conn.executemany(
                        "INSERT INTO metrics (run_id, seq, source, data) VALUES (?, ?, ?, ?)",
                        [(u.run_id, start + i + 1, u.source, dumps(row))
                         for i, row in enumerate(u.rows)])
                conn.execute("UPDATE runs SET last_metrics = ?, metric_names = ?, flags = ?, "
                             "peak_mem_mb = COALESCE(?, peak_mem_mb) WHERE id = ?",
                             (dumps(u.last), dumps(sorted(u.names)), dumps(sorted(u.flags)),
                              u.peak_mem_mb, u.run_id))

    # -- deleting runs and daemon settings (queue rm, queue slots) ----------------------------

    def delete_ended(self, run_ids: Iterable[int]) -> tuple[list[Run], list[str]]:
        """Delete runs that have ended (done, failed, cancelled) with their metric rows and
        requests, in one transaction; a run that is queued or running by now is kept. A sweep
        left with no run is deleted too, so that adding its file again queues it afresh.
        Returns (the runs deleted, the names of the sweeps deleted). Their folders are the
        caller's to remove."""
        ids = list(run_ids)
        deleted: list[Run] = []
        with self.write() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
                    f"WHERE r.id IN ({marks}) AND r.status IN ('done', 'failed', 'cancelled')",
                    chunk).fetchall()
                deleted += [_run(row) for row in rows]
            gone = [r.id for r in deleted]
            for start in range(0, len(gone), 500):
                chunk = gone[start:start + 500]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM metrics WHERE run_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM requests WHERE run_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
            emptied = [name for (name,) in conn.execute(
                "SELECT name FROM sweeps s WHERE NOT EXISTS "
                "(SELECT 1 FROM runs r WHERE r.sweep_id = s.id) AND s.id IN "
                f"({','.join('?' * len({r.sweep_id for r in deleted}))})",
                sorted({r.sweep_id for r in deleted}))]
            conn.executemany("DELETE FROM sweeps WHERE name = ?", [(n,) for n in emptied])
            if gone:  # readers that follow the change counter must look again
                conn.execute("UPDATE changes SET n = n + 1 WHERE id = 1")
        return deleted, emptied

    def run_ids(self) -> set[int]:
        """Every run id in the store (readers use it to notice deleted runs)."""
        return {i for (i,) in self.read("SELECT id FROM runs")}

    def request_slots(self, cpu_slots: int | None, slots_per_gpu: int | None) -> None:
        """Ask the daemon for new slot counts; None leaves a count as it is, a per-GPU count
        of 0 means no fixed count (packing by memory)."""
        with self.write() as conn:
            conn.execute("INSERT INTO requests (kind, created, data) VALUES ('slots', ?, ?)",
                         (time.time(), dumps({"cpu_slots": cpu_slots,
                                              "slots_per_gpu": slots_per_gpu})))

    def request_data(self, request_id: int) -> dict:
        """The values a request carries (a `slots` request's counts); {} when none."""
        rows = self.read("SELECT data FROM requests WHERE id = ?", (request_id,))
        try:
            data = json.loads(rows[0][0]) if rows and rows[0][0] else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class Progress:
    """What the daemon learnt about one running run since its last tick."""
    run_id: int
    source: str
    rows: list[dict]
    last: dict
    names: set[str]
    flags: set[str]
    peak_mem_mb: float | None = None
    replace_source: str | None = None  # drop earlier rows of this source first
    drop_from_epoch: tuple[str, float] | None = None  # (source, epoch): drop its rows from there


def storable(u: Progress) -> Progress:
    """A run's progress as strict JSON can hold it: whatever the run reported is cleaned here,
    at the store's door (non-finite numbers become null and flag the run `diverged`)."""
    rows, diverged = [], False
    for row in u.rows:
        row, nonfinite = clean_metrics(row)
        rows.append(row)
        diverged |= nonfinite
    last, nonfinite = clean_metrics(u.last)
    flags = {clean_text(f) for f in u.flags} | ({"diverged"} if diverged or nonfinite else set())
    return Progress(u.run_id, u.source, rows, last, {clean_text(n) for n in u.names}, flags,
                    u.peak_mem_mb, u.replace_source, u.drop_from_epoch)


def open_store(home: str | Path) -> Store:
    return Store(home)
