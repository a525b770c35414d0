"""The search's storage: Optuna's RDBStorage on an SQLite file (one machine) or a database URL (several).

One code path for both. What Optuna's database storage gives: transactions (a full disk
fails a transaction, it cannot tear a file, so every finished trial stays readable),
heartbeats and fail_stale_trials (a killed worker's trial is failed once its heartbeat is
older than the grace period). What SQLite needs on top: BEGIN IMMEDIATE (see _serialise_sqlite).
"""
import importlib.util
import os
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy

from utils.plumbing.errors import SearchError
from utils.plumbing.language import _

# A killed worker's trial is failed (and its point enqueued again) once its heartbeat is
# this old. Short, because a resumed search waits that long for the trials of a killed run.
HEARTBEAT = {"heartbeat_interval": 2, "grace_period": 10}
SQLITE_MAGIC = b"SQLite format 3\x00"


def storage_url(storage, folder):
    """None -> sqlite:///<folder>/search.db; a file path -> its sqlite:/// URL; a URL unchanged."""
    if storage is None:
        storage = Path(folder) / "search.db"
    storage = str(storage)
    return storage if "://" in storage else f"sqlite:///{Path(storage).resolve()}"


def sqlite_path(url):
    """The file of an sqlite:/// URL, else None."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def masked(url):
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def make_folder(folder, what):
    """mkdir -p, or a SearchError that names the regular file standing in the way."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise SearchError(_("cannot use {folder} as the {what}: {blocker} is a regular file, not a folder; choose "
                            "another path").format(folder=folder, what=what, blocker=blocker)) from None
    except OSError as e:
        raise SearchError(_("cannot create the {what} {folder}: {error}").format(
            what=what, folder=folder, error=e.strerror)) from None


def _check_sqlite_file(path):
    make_folder(path.parent, _("folder of the search storage"))
    if path.exists():
        if not path.is_file():
            raise SearchError(_("the search storage {path} is not a regular file; expected an SQLite database "
                                "file").format(path=path))
        with path.open("rb") as f:
            head = f.read(16)
        if head and head != SQLITE_MAGIC:
            raise SearchError(_("the search storage {path} is not an SQLite database (it starts with {head}); move "
                                "it away or choose another --storage").format(path=path, head=repr(head[:8])))


def _database_url(url):
    """postgresql:// means psycopg (3) to SQLAlchemy 2.1; use psycopg2 if that is what is installed."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://{rest}"
    return url


def _serialise_sqlite(engine):
    """Every transaction starts with BEGIN IMMEDIATE (the SQLAlchemy recipe for pysqlite).

    pysqlite otherwise begins a transaction only at the first write, so two processes can
    both read a trial as WAITING and both claim it; Optuna's SELECT ... FOR UPDATE is a
    no-op on SQLite. BEGIN IMMEDIATE takes the write lock first; others wait (timeout 60 s).
    Write-ahead log with synchronous=NORMAL: a commit survives a killed process (only a power
    cut can undo the last commits, never tear the file), without an fsync per commit.
    """
    def on_connect(dbapi_conn, connection_record):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    sqlalchemy.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    engine.dispose()  # pooled connections were opened before the listeners


_OPEN = {}  # url -> storage: opening one costs 2-4 s (schema version checks), so each process opens it once


def open_storage(url):
    """Open an sqlite:/// file or a database URL as an RDBStorage with heartbeats; SearchError if impossible."""
    key = (url, os.getpid(), tuple(HEARTBEAT.items()))
    if key not in _OPEN:
        _OPEN[key] = _open_storage(url)
    return _OPEN[key]


def _open_storage(url):
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path)
        kwargs = {"connect_args": {"timeout": 60}}
    else:
        kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgres") else {}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(_database_url(url), engine_kwargs=kwargs, **HEARTBEAT)
            if path is not None:
                _serialise_sqlite(storage.engine)
            return storage
        except Exception as e:
            # Two processes creating the tables of a new database at once can collide; retry.
            if attempt < 2 and ("already exists" in str(e) or "duplicate key" in str(e)):
                time.sleep(1 + attempt)
                continue
            raise SearchError(_("cannot open the search storage {url}: {error}").format(
                url=masked(url), error=describe(e))) from None


def describe(e):
    """One line about a storage error, from the database's own message; the advice that works for a full disk.

    Optuna wraps database errors in StorageInternalError ("An exception is raised during the
    commit ..."); the cause it wraps says what happened, e.g. "database or disk is full".
    """
    while e.__cause__ is not None or getattr(e, "orig", None) is not None:
        e = getattr(e, "orig", None) or e.__cause__
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    if "full" in text or "No space" in text:
        text += _(" -- the disk is full. The storage is a database, so every finished trial is kept; free some "
                  "space and run the same command again to resume")
    return text


def storage_errors():
    """The exception types a storage raises when it cannot be read or written."""
    return (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)


def exception_chain(e):
    """e, then the exception it was raised from or while handling, and so on."""
    seen = set()
    while e is not None and id(e) not in seen:
        yield e
        seen.add(id(e))
        e = e.__cause__ or e.__context__


def storage_error_in(e):
    """The storage error behind e, or None. Optuna can hide one: when recording a trial's end
    fails (a full disk), its optimize loop ends in an AssertionError raised while handling it."""
    return next((x for x in exception_chain(e) if isinstance(x, storage_errors())), None)
