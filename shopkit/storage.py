"""Storage: the declarative base every table inherits from, and the machinery's own two tables.

The shop's tables (users, products, purchases...) are in models.py, on this
``Base``. The machinery keeps two small tables of its own beside them:
``Setting``, a key-value store (how far Telegram's ledger has been read, the
seller's switches), and ``Dialog``, the question the bot is waiting for an
answer to (routes.py).
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def utcnow() -> datetime:
    """Naive UTC time: stored the same way on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base every model inherits from."""


class Setting(Base):
    """A small key-value store for the seller's switches (e.g. sale alerts per admin)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), default="")

    def __repr__(self) -> str:
        return f"<Setting {self.key}={self.value!r}>"


class Dialog(Base):
    """A question the bot asked someone, waiting for their next message: which question, and the answers so far.

    Kept in the database, so that a restart in the middle of adding a product
    loses nothing (routes.py asks and answers).
    """

    __tablename__ = "dialogs"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<Dialog {self.telegram_id} {self.state}>"


def insert_for(session: Session):
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def put_setting(session: Session, key: str, value: str) -> None:
    """Insert or update one setting in a single statement, so that two threads at once cannot collide."""
    statement = insert_for(session)(Setting).values(key=key, value=value)
    session.execute(statement.on_conflict_do_update(index_elements=[Setting.key], set_={"value": value}))
