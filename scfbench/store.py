"""Crash-safe results store: one SQLite database in WAL mode, one row per finished job.

A single writer (the process that runs :func:`scfbench.parallel.run_jobs`) commits every record in its own
transaction with ``synchronous=FULL``; a process killed at any moment (``kill -9`` included) leaves every
committed record intact and no partial one. The job key is the primary key, so a record can never be stored
twice, and a rerun skips the keys already present. The file records its schema version; a store written with
another version is refused.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from scfbench.jobs import SCHEMA_VERSION

__all__ = ["ResultStore", "check_store"]

_MAGIC = "scfbench-results"
#: Meta entry listing the molecules runs left out (JSON list).
_SKIPPED = "skipped_molecules"


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    return conn


def check_store(path: str | Path) -> bool:
    """Check an existing store without changing it.

    Parameters
    ----------
    path : str or Path
        Store file.

    Returns
    -------
    bool
        True when the file exists and is a store of this schema version, False when it does not exist.

    Raises
    ------
    ValueError
        The file exists but is not an scfbench store, or was written with another schema version.
    """
    path = Path(path)
    if not path.exists():
        return False
    if path.is_dir():
        raise ValueError(f"results store {str(path)!r} is a folder, not a file.")
    try:
        conn = _connect(path, readonly=True)
        try:
            rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        raise ValueError(f"{str(path)!r} is not an scfbench results store.") from None
    if rows.get("format") != _MAGIC:
        raise ValueError(f"{str(path)!r} is not an scfbench results store.")
    version = rows.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise ValueError(f"results store {str(path)!r} has schema version {version}, this scfbench writes "
                         f"version {SCHEMA_VERSION}; use a new --out file.")
    return True


class ResultStore:
    """Append-only store of job records.

    Parameters
    ----------
    path : str or Path
        SQLite file; created (with its folder) when missing and ``create`` is True.
    create : bool
        Create a new store if the file does not exist; otherwise a missing file is an error.
    readonly : bool
        Open for reading only (reports).

    Raises
    ------
    ValueError
        Missing file (``create=False``), not a store, or another schema version.
    """

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        exists = check_store(self.path)
        if not exists and (not create or readonly):
            raise ValueError(f"results store {str(self.path)!r} does not exist.")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path, readonly=readonly)
        if not exists:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, molecule TEXT, basis TEXT, xc TEXT, "
                "guess TEXT, status TEXT, record TEXT NOT NULL)")
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                   [("format", _MAGIC), ("schema_version", str(SCHEMA_VERSION))])
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Fold the write-ahead log into the store file (so that the file alone holds every record) and close."""
        if not self.readonly:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def keys(self) -> set[str]:
        """Keys of all stored jobs."""
        return {row[0] for row in self._conn.execute("SELECT key FROM runs")}

    def add(self, record: dict) -> bool:
        """Store one record durably (committed before returning); False when its key was already present.

        Parameters
        ----------
        record : dict
            JSON-serialisable job record with at least ``key``, ``molecule``, ``basis``, ``xc``, ``guess`` and
            ``status``. Non-finite floats are stored as null.
        """
        text = json.dumps(_finite(record), sort_keys=True, allow_nan=False, default=_plain)
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO runs (key, molecule, basis, xc, guess, status, record) VALUES (?,?,?,?,?,?,?)",
            (record["key"], record["molecule"], record["basis"], record["xc"], record["guess"], record["status"],
             text))
        return cur.rowcount == 1

    def records(self) -> list[dict]:
        """All records in insertion order."""
        return [json.loads(row[0]) for row in self._conn.execute("SELECT record FROM runs ORDER BY rowid")]

    def add_skipped(self, entries: list[dict]) -> None:
        """Record molecules a run left out (``--skip-unsupported``); entries already recorded are kept once.

        Parameters
        ----------
        entries : list of dict
            JSON-ready dicts with at least ``molecule`` and ``geometry_sha256``.
        """
        if not entries:
            return
        current = self.skipped()
        seen = {(e["molecule"], e.get("geometry_sha256")) for e in current}
        for e in entries:
            if (e["molecule"], e.get("geometry_sha256")) not in seen:
                current.append(e)
                seen.add((e["molecule"], e.get("geometry_sha256")))
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (_SKIPPED, json.dumps(current, sort_keys=True)))

    def skipped(self) -> list[dict]:
        """Molecules left out by runs into this store (see :meth:`add_skipped`), in the order first recorded."""
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (_SKIPPED,)).fetchone()
        return json.loads(row[0]) if row else []

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def _plain(value):
    """JSON fallback for NumPy scalars and arrays."""
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    raise TypeError(f"cannot store a value of type {type(value).__name__} in a record.")


def _finite(value):
    """Copy of a JSON-like value with NaN and infinities replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
