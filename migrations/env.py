"""Alembic's entry point, configured from code: database.py hands it an open connection.

The seller never runs Alembic by hand: ``python shopbot.py`` upgrades the
database when it starts (see database.upgrade). A developer who changes a model
writes the next revision with ``python -m shopkit revision "what changed"``.
"""
from alembic import context

from models import Base, is_modelled

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table instead
    include_name=is_modelled,  # the search index is no model: autogenerate leaves it alone
)
with context.begin_transaction():
    context.run_migrations()
