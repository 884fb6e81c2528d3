"""The database: connecting to it, and upgrading its schema when the code is newer.

Part of shopkit, the machinery under the shop (see __init__.py).

``open_database(url)`` is the first thing the bot does with its database:

1. An empty database gets the whole schema by running every migration in
   ``migrations/versions``: one file per schema change, numbered 0001, 0002...
2. A database without Alembic's version table is recognised when its tables
   are exactly release 1's (made by release 1's create_all) or exactly the
   current models' (made by ``Base.metadata.create_all``, as the spec's
   example does), and is stamped with that revision. Anything else is refused.
3. If the code has newer migrations, they run: on SQLite after a consistent
   copy of the file, ``shop.db.before-<revision>``; on PostgreSQL inside one
   transaction. Either way a failure leaves the database as it was.

A database newer than the code, or one the shop does not recognise, is left
untouched: ``DatabaseError`` carries one clear line, and main() exits with 2.
So is a SQLite file that cannot be used: a missing folder, a file the shop
may not read, or a damaged one (``PRAGMA quick_check`` runs at every start, so
that a damaged file does not start answering every customer "Sorry").
Two instances starting at once take turns: the second waits until the first
has upgraded, then finds nothing to do.

On a clean stop, ``close_database()`` moves SQLite's write-ahead log into the
database file, so that shop.db alone holds everything.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from .storage import Base

logger = logging.getLogger("shopbot")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"  # the shop's own, beside models.py


class DatabaseError(Exception):
    """The database cannot be used as it is; the message says why, in one line, and what to do."""


# ---------------------------------------------------------------------------
# Connecting
# ---------------------------------------------------------------------------

def _unicode_lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _tune_sqlite(dbapi_connection, _connection_record, busy_timeout: float = 15.0) -> None:
    """Per-connection SQLite settings the bot relies on."""
    # SQLite's own lower() only folds ASCII; search needs every alphabet (models.lowercase).
    dbapi_connection.create_function("unicode_lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")  # off by default in SQLite
    # WAL lets customers read while a purchase is being written; the busy
    # timeout makes a second writer wait instead of failing with
    # "database is locked".
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # 512 KB of page cache per connection instead of 2 MB: a pooled connection per worker thread,
    # and the operating system caches the file anyway (peak memory, issue 17).
    cursor.execute("PRAGMA cache_size = -512")
    cursor.close()


def _tune_postgresql(dbapi_connection, _connection_record, lock_timeout: float = 15.0) -> None:
    """Wait at most ``lock_timeout`` seconds for another transaction's lock, as SQLite's busy timeout does."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a plain SET, outside any transaction, lasts for the connection
    dbapi_connection.execute(f"SET lock_timeout = {int(lock_timeout * 1000)}")
    dbapi_connection.autocommit = autocommit


def connect(database_url: str, pool_size: int = 5, busy_timeout: float = 15.0) -> sessionmaker:
    """A session factory for the database, which must already have the current schema (see open_database).

    ``pool_size`` matters for server databases only: give it the number of
    worker threads that may hold a connection at once. ``busy_timeout`` is how
    long a statement waits for another writer (SQLite) or lock (PostgreSQL)
    before it fails.
    """
    # hide_parameters: a database error must not print a product's hidden content into the log.
    if database_url.startswith("sqlite"):
        # telebot's worker threads share the engine, hence check_same_thread.
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": busy_timeout},
                               hide_parameters=True)
        event.listen(engine, "connect", lambda dbapi, record: _tune_sqlite(dbapi, record, busy_timeout))
    else:
        # pool_pre_ping: a restarted database server costs one reconnect,
        # not an error shown to a customer.
        engine = create_engine(database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               hide_parameters=True)
        event.listen(engine, "connect", lambda dbapi, record: _tune_postgresql(dbapi, record, busy_timeout))
    # expire_on_commit=False: a handler may still read what it just committed
    # (to deliver a purchase) without another round trip to the database.
    return sessionmaker(engine, expire_on_commit=False)


BACKUP_STEP = 4096  # pages copied at a time (16 MB of 4 KB pages) when someone watches the progress


def backup_sqlite(database_path: str, copy_path: str, progress=None) -> None:
    """A consistent copy of a live SQLite database (the backup API, safe while the bot writes).

    A copy that fails (a full disk, say) is removed with its journal: half a copy is no copy, and it
    would keep the disk full for the shop. ``progress(copied, total)``, if given, hears how many pages
    are copied, BACKUP_STEP at a time.
    """
    source, target = sqlite3.connect(database_path), sqlite3.connect(copy_path)
    try:
        if progress is None:
            source.backup(target)
        else:
            source.backup(target, pages=BACKUP_STEP,
                          progress=lambda _status, remaining, total: progress(total - remaining, total))
    except BaseException:
        target.close()
        remove_sqlite_file(copy_path)
        raise
    finally:
        source.close()
        target.close()


def remove_sqlite_file(path: str) -> None:
    """Remove a SQLite file and whatever SQLite keeps beside it (-journal, -wal, -shm), if they exist."""
    for name in (path, f"{path}-journal", f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def free_bytes(folder: str) -> int:
    """Free space, in bytes, on the disk that holds ``folder`` (for the shop's user, as ``df`` shows it)."""
    return shutil.disk_usage(folder).free


def close_database(session_factory: sessionmaker) -> None:
    """On a clean stop: move SQLite's write-ahead log (shop.db-wal) into shop.db, then close every connection.

    Until then recent writes live in the -wal file only, and a seller who
    copies shop.db alone would lose them.
    """
    engine = session_factory.kw["bind"]
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
        if busy:
            logger.warning("The database was still busy at stop: keep %s-wal with it", engine.url.database)
    engine.dispose()


# ---------------------------------------------------------------------------
# Restoring a copy: python shopbot.py --restore FILE
# ---------------------------------------------------------------------------

def unpack_copy(copy: str, target: str) -> None:
    """The copy, unpacked to ``target``: gunzip for a .gz (as backups.py makes them), else copied as it is."""
    try:
        if copy.endswith(".gz"):
            with gzip.open(copy, "rb") as source, open(target, "wb") as unpacked:
                shutil.copyfileobj(source, unpacked)
        else:
            shutil.copyfile(copy, target)
    except (OSError, EOFError) as error:  # gzip's BadGzipFile is an OSError, a cut-off file an EOFError
        with contextlib.suppress(FileNotFoundError):
            os.remove(target)
        raise DatabaseError(f"cannot read {copy}: {error}; nothing was changed") from None


def check_copy(path: str, copy: str) -> None:
    """SQLite's integrity_check on the unpacked copy: it is put in place whole and sound, or not at all."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems != ["ok"]:
        os.remove(path)
        first = " ".join(problems[0].replace("*** in database main ***", "").split())
        raise DatabaseError(f"{copy} is damaged or is not a SQLite database ({first}); nothing was changed. "
                            "Try an older copy")


def restore_sqlite(database_path: str, copy: str, stamp: str) -> str | None:
    """Put a backup copy in place of the (stopped) shop's database; returns where the database before was kept.

    The database before is moved aside with its write-ahead log
    (``shop.db.before-restore-<stamp>`` and its ``-wal``): SQLite would
    otherwise apply the crashed database's log to the restored copy. The
    ``-shm`` file is only an index of that log, and is removed.
    """
    incoming = database_path + ".restoring"
    unpack_copy(copy, incoming)
    check_copy(incoming, copy)
    aside = f"{database_path}.before-restore-{stamp}"
    kept = None
    if os.path.exists(database_path):
        os.replace(database_path, aside)
        kept = aside
    if os.path.exists(database_path + "-wal"):
        os.replace(database_path + "-wal", aside + "-wal")
    with contextlib.suppress(FileNotFoundError):
        os.remove(database_path + "-shm")
    os.replace(incoming, database_path)
    return kept


# ---------------------------------------------------------------------------
# Can the database be used at all?
# ---------------------------------------------------------------------------

def sqlite_file(database_url: str) -> str | None:
    """The file of a SQLite database URL; None for a database server or an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def check_sqlite_file(path: str) -> None:
    """Say in one line why SQLite could not use ``path``, before it fails with "unable to open database file"."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DatabaseError(f"the folder {folder} does not exist: create it, or fix DATABASE_URL")
    if os.path.isdir(path):
        raise DatabaseError(f"{path} is a folder, not a database file: fix DATABASE_URL")
    # SQLite writes its journal (shop.db-wal, shop.db-shm) beside the database.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseError(f"the shop may not write in {folder}: let the user that runs it write there")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseError(f"the shop may not read and write {path}: let the user that runs it do so")


def check_integrity(connection: Connection, thorough: bool = False) -> None:
    """On SQLite, ``PRAGMA quick_check``: a damaged file must not start serving, and failing every customer.

    ``thorough``: ``integrity_check`` instead, which also compares every index with its table (after a stop
    that was not clean: instance.py). It reads more, so it is not run at every start.
    """
    if connection.dialect.name != "sqlite":
        return
    check = "integrity_check" if thorough else "quick_check"
    problems = [row[0] for row in connection.exec_driver_sql(f"PRAGMA {check}")]
    if problems != ["ok"]:
        first = " ".join(problems[0].replace("*** in database main ***", "").split())  # one line
        raise DatabaseError(f"the database is damaged (SQLite's {check}: {first}); nothing was changed. "
                            "Restore your latest backup: python shopbot.py --restore FILE (see Backups in the README)")


def unusable(error: SQLAlchemyError, doing: str) -> DatabaseError:
    """One line for a database that failed us; SQLite's riddles for a damaged file are named for what they are."""
    reason = str(error.orig or error)
    if "file is not a database" in reason or "malformed" in reason:
        return DatabaseError(f"the database is damaged or is not a SQLite database ({reason}); nothing was "
                             "changed. Restore your latest backup (see Backups in the README), or fix DATABASE_URL")
    return DatabaseError(f"cannot {doing} the database: {reason}")


# ---------------------------------------------------------------------------
# Which revision is the database at, and which is the code at?
# ---------------------------------------------------------------------------

def revisions_of(migrations: Path = MIGRATIONS) -> set[str]:
    """The revisions the code has: the numbers of migrations/versions/NNNN_*.py.

    Read from the file names, so that the usual start, with nothing to
    upgrade, does not pay for importing Alembic.
    """
    return {name[:4] for name in os.listdir(migrations / "versions") if name[:4].isdigit()}


def head_revision(migrations: Path = MIGRATIONS) -> str:
    """The newest revision the code has."""
    return max(revisions_of(migrations))


def stored_revision(connection: Connection) -> str | None:
    """The revision Alembic recorded in the database, or None when it has no version table."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def matches(connection: Connection, metadata) -> bool:
    """True when the database's tables, columns and indexes are exactly ``metadata``'s (the search index,
    which is no model, aside)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    # A table the shop keeps outside its models (models.py's search index) is left out of the comparison.
    context = MigrationContext.configure(connection, opts={"include_name": metadata.info.get("include_name")})
    return not compare_metadata(context, metadata)


# ---------------------------------------------------------------------------
# Upgrading
# ---------------------------------------------------------------------------

def migration_engine(database_url: str):
    """An engine for running migrations: one connection, one transaction around all of them."""
    engine = create_engine(database_url, poolclass=NullPool, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def prepare(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
            # Off while tables are rebuilt (SQLite's batch mode copies a table, then drops the
            # old one; with foreign keys on, the drop would cascade to the rows pointing at it).
            # foreign_key_check runs before the commit instead.
            dbapi_connection.execute("PRAGMA foreign_keys = OFF")
            dbapi_connection.execute("PRAGMA busy_timeout = 15000")
            dbapi_connection.execute("PRAGMA journal_mode = WAL")

        @event.listens_for(engine, "begin")
        def begin(connection):
            # IMMEDIATE takes the write lock at once: a second instance waits here for the first.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def alembic_config(connection: Connection, migrations: Path):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection  # env.py runs the migrations on it
    return config


def known_revisions(config) -> dict:
    """revision id -> its module, for every migration the code has."""
    from alembic.script import ScriptDirectory

    return {script.revision: script.module for script in ScriptDirectory.from_config(config).walk_revisions()}


def recognise(connection: Connection, revisions: dict, head: str) -> str | None:
    """The revision whose tables a database without a version table has; None when it has no tables."""
    if not inspect(connection).get_table_names():
        return None
    for revision, metadata in (("0001", revisions["0001"].RELEASE_1), (head, Base.metadata)):
        if matches(connection, metadata):
            return revision
    raise DatabaseError("the database has tables that are neither release 1's nor this code's "
                        f"(revision {head}); nothing was changed. Is DATABASE_URL right?")


def adopt(connection: Connection, config, revisions: dict, head: str) -> str | None:
    """Stamp a database made by create_all with the revision it matches; None when it is empty."""
    from alembic import command

    revision = recognise(connection, revisions, head)
    if revision is not None:
        command.stamp(config, revision)
    return revision


def copy_before_upgrade(database_url: str, revision: str) -> str | None:
    """On SQLite, a consistent copy of the database as it is, beside it: shop.db.before-<revision>."""
    path = sqlite_file(database_url)
    if path is None:
        return None
    copy = f"{path}.before-{revision}"
    backup_sqlite(path, copy)
    return copy


def check_foreign_keys(connection: Connection) -> None:
    """SQLite checked no foreign keys while the migrations ran: check them all now, before the commit."""
    if connection.dialect.name == "sqlite" and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
        raise DatabaseError("the upgrade would break the links between tables; nothing was changed")


def newer_than_code(stored: str, head: str) -> DatabaseError:
    return DatabaseError(f"the database is at revision {stored}, newer than this code ({head}): "
                         "run the newer shopbot, or restore the copy made before that upgrade")


def run_migrations(connection: Connection, migrations: Path, database_url: str, head: str) -> tuple:
    """Inside the caller's transaction: recognise the database, copy it, upgrade it. (before, after, copy)."""
    from alembic import command

    if connection.dialect.name == "postgresql":  # the second instance waits here for the first
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('shopbot migrations'))"))
    config = alembic_config(connection, migrations)
    revisions = known_revisions(config)
    before = stored_revision(connection)  # read again under the lock: another instance may have upgraded
    if before is not None and before not in revisions:
        raise newer_than_code(before, head)
    if before is None:
        before = adopt(connection, config, revisions, head)
    if before == head:
        return before, head, None
    copy = copy_before_upgrade(database_url, before) if before else None
    try:
        command.upgrade(config, "head")
        check_foreign_keys(connection)
    except Exception as error:  # whatever failed, the transaction is rolled back as this leaves
        kept = f"; the copy from before is {copy}, should you need it" if copy else ""
        raise DatabaseError(f"the upgrade to revision {head} failed and was rolled back, so the database is "
                            f"as it was{kept}. The error: {error}") from error
    return before, head, copy


def upgrade(database_url: str, migrations: Path = MIGRATIONS, checked: bool = False) -> None:
    """Bring the database to the code's revision (see the module's docstring); DatabaseError if it cannot.
    ``checked``: its integrity was checked already (open_database)."""
    head = head_revision(migrations)
    quick = create_engine(database_url, poolclass=NullPool, hide_parameters=True)
    try:
        with quick.connect() as connection:
            if not checked:
                check_integrity(connection)
            if stored_revision(connection) == head:
                return  # the usual start: nothing to do
    except SQLAlchemyError as error:
        raise unusable(error, "open") from None
    finally:
        quick.dispose()
    engine = migration_engine(database_url)
    try:
        with engine.begin() as connection:
            before, after, copy = run_migrations(connection, migrations, database_url, head)
    except SQLAlchemyError as error:
        raise unusable(error, "upgrade") from None
    finally:
        engine.dispose()
    if before != after:
        logger.info("Database upgraded from %s to revision %s%s", f"revision {before}" if before else "empty",
                    after, f"; the copy from before is {copy}" if copy else "")


def open_database(database_url: str, pool_size: int = 5, checked: bool = False) -> sessionmaker:
    """Check that the database can be used, upgrade it if the code is newer, then connect to it.

    ``checked``: describe_database checked it a moment ago (shopbot.py, at start), so its
    quick_check, which reads the whole file, is not run a second time.
    """
    path = sqlite_file(database_url)
    if path:
        check_sqlite_file(path)
    upgrade(database_url, checked=checked)
    return connect(database_url, pool_size)


def revision_state(connection: Connection, head: str) -> str:
    """Where the database stands against the code's migrations, in words; DatabaseError if it cannot be served."""
    stored = stored_revision(connection)
    if stored is None:
        stored = recognise(connection, known_revisions(alembic_config(connection, MIGRATIONS)), head)
        if stored is None:
            return "empty: the tables are made at the first start"
    if stored not in revisions_of():
        raise newer_than_code(stored, head)
    if stored == head:
        return f"revision {head}, up to date"
    return f"revision {stored}: upgraded to {head} at the next start"


def describe_database(database_url: str, thorough: bool = False) -> str:
    """For ``shopbot.py --check``: one line on the database, or DatabaseError. Changes nothing, creates nothing.
    ``thorough``: SQLite's integrity_check rather than quick_check (check_integrity)."""
    path = sqlite_file(database_url)
    if path:
        check_sqlite_file(path)
        if not os.path.exists(path):
            return f"{path} does not exist yet: it is made at the first start"
    engine = create_engine(database_url, poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect() as connection:
            check_integrity(connection, thorough)
            state = revision_state(connection, head_revision())
    except SQLAlchemyError as error:
        raise unusable(error, "open") from None
    finally:
        engine.dispose()
    return state + (f"; {'integrity_check' if thorough else 'quick_check'} ok" if path else "")


def new_revision(message: str) -> Path:
    """Write the next migration, from what the models have and the migrations do not yet.

    For developers: ``python -m shopkit revision "add the product kind"``
    writes migrations/versions/NNNN_add_the_product_kind.py, to read and edit
    before committing (Alembic cannot guess a data migration or a rename).
    """
    from alembic import command

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/scratch.db"
        upgrade(url)
        engine = migration_engine(url)
        try:
            with engine.begin() as connection:
                script = command.revision(alembic_config(connection, MIGRATIONS), message, autogenerate=True,
                                          rev_id=f"{int(head_revision()) + 1:04d}")
        finally:
            engine.dispose()
    return Path(script.path)
