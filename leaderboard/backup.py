"""Online backup and verified restore of the leaderboard database.

A backup is always a SQLite file at the schema's head revision, whatever the source:

* SQLite source: the sqlite3 backup API, run on a connection whose read transaction also
  counted the rows, so the copy and its counts are one snapshot while the server writes on
  (WAL readers never block writers).
* PostgreSQL (any other URL): every table read in one ``REPEATABLE READ, READ ONLY``
  transaction and written into a freshly migrated SQLite file; a portable, logical dump.

Both end with ``PRAGMA integrity_check`` and ``foreign_key_check`` on the copy and row
counts equal to the snapshot's, then an atomic rename onto the destination.

A restore copies the file's rows into a target database (SQLite or PostgreSQL) in one
transaction, refuses a target that holds rows or that a running server holds open unless
``force``, and verifies the result: the same row count per table, and on SQLite an
integrity check.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import leaderboard.models  # noqa: F401  (registers the tables on the metadata)
from leaderboard.core.db import as_utc, create_db_engine, is_sqlite, write_engine
from leaderboard.migrate import check_current, current_revision, head_revision, upgrade
from tuner.errors import InputError, PodiumError

_EXISTS = "{path} exists: backup refuses to overwrite it (pass --force)"
_NOT_EMPTY = ("the target database {where} holds {rows} row(s): restore refuses to overwrite "
              "it (pass --force to replace its contents)")
_IN_USE = ("the target database {where} is in use ({who}): stop the server before a restore "
           "(or pass --force to restore under it)")
_NOT_A_BACKUP = "{path} is not a leaderboard backup: {why}"
# SQLite's unix VFS: the dead-man-switch byte of the -shm file, read-locked by every
# connection that has the database open (UNIX_SHM_DMS = (22 + 8) * 4 + 8).
_SHM_DMS = 128
_REVISION = ("the backup {path} is at schema revision {found}, this podium needs {head}: "
             "restore it with the podium that wrote it, then migrate")


class BackupError(PodiumError):
    """A backup or restore could not be made or did not verify; nothing was replaced."""

    exit_code = 2


@dataclass(frozen=True)
class Snapshot:
    """Row counts per table of one consistent copy, and its schema revision."""

    revision: str
    counts: dict[str, int]

    def summary(self) -> str:
        parts = [f"{count} {table}" for table, count in self.counts.items()]
        return f"{', '.join(parts)} (revision {self.revision})"


def tables() -> list[str]:
    """The leaderboard's tables, parents before children."""
    return [table.name for table in SQLModel.metadata.sorted_tables]


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InputError(f"{url} is not a SQLite file")
    return Path(database).expanduser()


def _verify_sqlite_file(connection: sqlite3.Connection, path: Path) -> None:
    try:
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        orphans = connection.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(_NOT_A_BACKUP.format(path=path, why=error)) from None
    if problems != ["ok"]:
        raise BackupError(f"{path} failed the integrity check: {'; '.join(problems[:3])}")
    if orphans:
        raise BackupError(f"{path} has {len(orphans)} row(s) whose foreign key points nowhere")


def _sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    return {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in tables()}


def read_backup(path: Path) -> Snapshot:
    """Verify a backup file (integrity, foreign keys, schema) and return its counts."""
    if not path.is_file():
        raise InputError(f"no backup file {path}")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        _verify_sqlite_file(connection, path)
        try:
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            counts = _sqlite_counts(connection)
        except sqlite3.DatabaseError as error:
            raise BackupError(_NOT_A_BACKUP.format(path=path, why=error)) from None
    if revision is None:
        raise BackupError(_NOT_A_BACKUP.format(path=path, why="no schema revision"))
    return Snapshot(revision=revision[0], counts=counts)


# ---------------------------------------------------------------------------- backup

def backup(url: str, destination: Path, *, force: bool = False) -> Snapshot:
    """Copy the live database at ``url`` into the SQLite file ``destination``."""
    destination = destination.expanduser()
    if destination.exists() and not force:
        raise InputError(_EXISTS.format(path=destination))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    engine = create_db_engine(url)
    try:
        check_current(engine)
        if is_sqlite(url):
            snapshot = _backup_sqlite(_sqlite_path(url), partial)
        else:
            snapshot = _backup_logical(engine, partial)
        copied = read_backup(partial)
        if copied.counts != snapshot.counts:
            raise BackupError(f"the copy's row counts {copied.counts} differ from the "
                              f"snapshot's {snapshot.counts}")
        os.replace(partial, destination)
        return copied
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)


def _backup_sqlite(source: Path, partial: Path) -> Snapshot:
    # One read transaction both counts the rows and feeds the backup API: one snapshot.
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True,
                                 isolation_level=None)) as src, \
            closing(sqlite3.connect(partial)) as dst:
        src.execute("PRAGMA busy_timeout=30000")
        src.execute("BEGIN")
        revision = src.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        counts = _sqlite_counts(src)
        src.backup(dst)
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
    return Snapshot(revision=revision, counts=counts)


def _backup_logical(engine: Engine, partial: Path) -> Snapshot:
    target = create_db_engine(f"sqlite:///{partial}")
    try:
        upgrade(target)
        source = engine.execution_options(isolation_level="REPEATABLE READ")
        with source.connect() as src, write_engine(target).begin() as dst:
            src.exec_driver_sql("SET TRANSACTION READ ONLY")
            revision = current_revision_in(src)
            counts = _copy_rows(src, dst)
            src.rollback()
    finally:
        target.dispose()
    return Snapshot(revision=revision, counts=counts)


def current_revision_in(connection: Connection) -> str:
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _copy_rows(src: Connection, dst: Connection) -> dict[str, int]:
    counts = {}
    for table in SQLModel.metadata.sorted_tables:
        rows = [{name: as_utc(value) if isinstance(value, datetime) else value
                 for name, value in row.items()}
                for row in src.execute(select(table)).mappings()]
        if rows:
            dst.execute(table.insert(), rows)
        counts[table.name] = len(rows)
    return counts


# ---------------------------------------------------------------------------- restore

def restore(path: Path, url: str, *, force: bool = False) -> Snapshot:
    """Load the backup ``path`` into the database at ``url``; verify the counts after.

    Refuses (unless ``force``) a target that holds rows, or that another process holds
    open: a running server would keep serving, and writing, from under the restore.
    """
    path = path.expanduser()
    if not force:
        in_use = holders(url)  # first: before this process opens the target itself
        if in_use:
            raise InputError(_IN_USE.format(where=_where(url), who=in_use))
    snapshot = read_backup(path)
    if snapshot.revision != head_revision():
        raise BackupError(_REVISION.format(path=path, found=snapshot.revision,
                                           head=head_revision()))
    source = create_db_engine(f"sqlite:///{path}")
    target = create_db_engine(url)
    try:
        if current_revision(target) is None:
            upgrade(target)
        check_current(target)
        with source.connect() as src, write_engine(target).begin() as dst:
            held = sum(_counts(dst).values())
            if held and not force:
                raise InputError(_NOT_EMPTY.format(where=_where(url), rows=held))
            for table in reversed(SQLModel.metadata.sorted_tables):
                dst.execute(table.delete())
            counts = _copy_rows(src, dst)
            if counts != snapshot.counts:
                raise BackupError(f"copied {counts}, the backup holds {snapshot.counts}")
            _reset_sequences(dst)
        restored = _verify_target(target)
    finally:
        source.dispose()
        target.dispose()
    if restored != snapshot.counts:
        raise BackupError(f"the restored database holds {restored}, the backup "
                          f"{snapshot.counts}")
    return Snapshot(revision=snapshot.revision, counts=restored)


def holders(url: str) -> str | None:
    """Who else holds the database at ``url`` open, in words; None when nobody does.

    SQLite (WAL): every connection holds a shared lock on the dead-man-switch byte of the
    ``-shm`` file while it is open (SQLite's unix VFS), so an exclusive lock on that byte
    is refused while any other process has the database open, even idle. An open-file-
    description lock, so that it never disturbs this process's own SQLite locks.
    PostgreSQL (any other URL): other client sessions on the same database.
    """
    if is_sqlite(url):
        return _sqlite_holders(_sqlite_path(url))
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            others = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalar_one()
    finally:
        engine.dispose()
    return f"{others} other session(s) are connected to it" if others else None


def _sqlite_holders(path: Path) -> str | None:
    shm = path.with_name(path.name + "-shm")
    try:
        descriptor = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return None  # no -shm file: no connection has it open in WAL mode
    command = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
    lock = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, _SHM_DMS, 1, 0)
    try:
        fcntl.fcntl(descriptor, command, lock)
    except OSError:
        return "another process (a running server?) has it open"
    else:
        unlock = struct.pack("hhqqi", fcntl.F_UNLCK, os.SEEK_SET, _SHM_DMS, 1, 0)
        fcntl.fcntl(descriptor, command, unlock)
        return None
    finally:
        os.close(descriptor)


def _counts(connection: Connection) -> dict[str, int]:
    return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables}


def _reset_sequences(connection: Connection) -> None:
    """PostgreSQL: move each serial id's sequence past the restored rows."""
    if connection.dialect.name != "postgresql":
        return
    for table in SQLModel.metadata.sorted_tables:
        id_column = table.columns.get("id")
        if id_column is None or not id_column.autoincrement or \
                id_column.type.python_type is not int:
            continue
        connection.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM \"{table.name}\""))


def _verify_target(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            problems = [row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"the restored database failed the integrity check: "
                                  f"{'; '.join(problems[:3])}")
        return _counts(connection)

