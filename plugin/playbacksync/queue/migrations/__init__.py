"""Alembic migrations for the queue database, run in-process at open (no alembic.ini).

The caller passes an open SQLAlchemy connection already inside a transaction
(BEGIN IMMEDIATE): two processes opening the same file migrate one after the
other, and a failed migration leaves the file as it was (SQLite DDL is transactional).
"""
from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
# Revisions, oldest first; tests use them to build old files.
QUEUE_TABLE = "0001"
WORKER_COLUMNS = "0002"
MEDIA_REFERENCE = "0003"
HEAD = MEDIA_REFERENCE


def alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", HERE)
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection, revision: str = "head") -> bool:
    """Bring the schema to ``revision``; False if it was already at head (the usual open)."""
    if revision == "head" and current_revision(connection) == HEAD:
        return False
    from alembic import command

    command.upgrade(alembic_config(connection), revision)
    return True


def downgrade(connection, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)


def known_revisions() -> set:
    """Every revision this version has a migration for (loads alembic)."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(HERE).walk_revisions()}


def current_revision(connection):
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
