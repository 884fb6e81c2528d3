"""For developers: ``python -m shopkit revision "what changed"`` writes the next migration.

It compares the models (models.py) with what the migrations in migrations/
make, and writes the difference as migrations/versions/NNNN_what_changed.py,
to read and edit before committing (Alembic cannot guess a rename or a data
migration).
"""
import sys

from .database import new_revision

if len(sys.argv) != 3 or sys.argv[1] != "revision":
    sys.exit('usage: python -m shopkit revision "what changed"')
print(f"Wrote {new_revision(sys.argv[2])}: read it, and edit it where Alembic guessed wrong.")
