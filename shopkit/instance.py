"""One running copy per shop, and whether the last one stopped cleanly.

Two copies serving one database both poll Telegram and both work through an
unfinished broadcast: customers get its message twice. So the lock belongs to
the database, not to the machine or its temp folder (systemd's PrivateTmp
gives the service a temp folder of its own, which a copy started by hand
never sees):

- **SQLite**: ``shop.db.lock`` beside the database, locked with ``flock``. The
  kernel frees it when the process ends, even by ``kill -9``.
- **PostgreSQL**: an advisory lock (``pg_try_advisory_lock``), held by a
  connection of its own for the life of the process. The server frees it when
  that connection ends.

The lock file also tells whether the last copy stopped cleanly: a copy that
serves writes "serving since ..." into it, and a clean stop empties it. After
``kill -9`` or a power cut it is still written, and the next start checks the
whole database (SQLite's ``integrity_check``, which also finds a damaged
index), not only its pages (``quick_check``). See bot.py's ``serve``.
"""
from __future__ import annotations

import fcntl
import os
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from .database import check_sqlite_file, sqlite_file, unusable


class InstanceLock:
    """Held while this copy runs (and for --restore); ``close()`` lets the next copy start."""

    unclean_stop = False  # the last copy that served did not stop cleanly (known on SQLite only)

    def serving(self) -> None:
        """From now on the database is being written: until ``stopped_cleanly``, a stop is not clean."""

    def stopped_cleanly(self) -> None:
        """Everything is written and closed (close_database has run)."""

    def close(self) -> None:
        """Let the next copy start."""


class LockFile(InstanceLock):
    """shop.db.lock, locked by this process; what is written in it says whether the last copy stopped cleanly."""

    def __init__(self, handle):
        self.handle = handle
        handle.seek(0)
        self.unclean_stop = bool(handle.read().strip())

    def write(self, note: str) -> None:
        self.handle.truncate(0)  # opened to append: after truncating, a write starts at the beginning
        self.handle.write(note)
        self.handle.flush()
        os.fsync(self.handle.fileno())  # on the disk before the first write to the database

    def serving(self) -> None:
        self.write(f"serving since {time.strftime('%Y-%m-%d %H:%M:%S')}, process {os.getpid()}\n")

    def stopped_cleanly(self) -> None:
        self.write("")
        self.unclean_stop = False

    def close(self) -> None:
        self.handle.close()


class AdvisoryLock(InstanceLock):
    """PostgreSQL's advisory lock, held by the session of one dedicated connection."""

    def __init__(self, engine, connection):
        self.engine, self.connection = engine, connection

    def close(self) -> None:
        self.connection.close()  # the server lets go of the lock with the session
        self.engine.dispose()


def lock_sqlite(path: str) -> InstanceLock | None:
    check_sqlite_file(path)  # a missing folder is said in one line, not as an OSError about shop.db.lock
    handle = open(path + ".lock", "a+")  # noqa: SIM115 (held open for the life of the process)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return LockFile(handle)


def lock_server(database_url: str) -> InstanceLock | None:
    """An advisory lock for this database and schema (the tests run many shops, one schema each, on one server)."""
    engine = create_engine(database_url, poolclass=NullPool, hide_parameters=True, isolation_level="AUTOCOMMIT")
    try:
        connection = engine.connect()
        held = connection.execute(text(
            "SELECT pg_try_advisory_lock(hashtext('shopbot: one running copy of ' || current_schema()))")).scalar()
    except SQLAlchemyError as error:
        engine.dispose()
        raise unusable(error, "open") from None
    if not held:
        connection.close()
        engine.dispose()
        return None
    return AdvisoryLock(engine, connection)


def hold_instance_lock(database_url: str) -> InstanceLock | None:
    """This shop's lock, or None when another copy holds it; DatabaseError when the database cannot be reached."""
    path = sqlite_file(database_url)
    if path is not None:
        return lock_sqlite(path)
    if make_url(database_url).get_backend_name() == "postgresql":
        return lock_server(database_url)
    return InstanceLock()  # an in-memory database: nothing to share
