"""Alembic migrations of the store, run from code by `matcher.store.db.migrate`."""
