"""Which model every process of the store serves (issue 23): one row, written by a reindex's
swap in the transaction that logs the `model` index change, so that every process serving the
store moves to it (matcher/service/index_follow.py) and a process that starts serves it.

Before revision 0020 the model a reindex swapped in was a file of one process's data dir
(`serving.json`); the first start after the upgrade moves that file's content here."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Integer, String, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column

from matcher.store.index_log import ChangeKind, log_change
from matcher.store.models import Base, utcnow
from matcher.store.models.base import MODEL_ID_LENGTH

_ROW = 1  # the table's one row


class ServingModel(Base):
    __tablename__ = "serving_model"
    __table_args__ = (CheckConstraint(f"id = {_ROW}", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # the model settings, as JSON values
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LENGTH))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def serving_model(session: Session) -> dict[str, Any] | None:
    """The model settings recorded for the store (None: none yet, or a store not migrated to
    revision 0020, which a read-only look such as `matcher calibrate` may meet)."""
    if not inspect(session.get_bind()).has_table(ServingModel.__tablename__):
        return None
    row = session.get(ServingModel, _ROW)
    return None if row is None else dict(row.settings)


def set_serving_model(session: Session, settings: dict[str, Any], model_id: str) -> None:
    """Records the model every process is to serve and logs the `model` change that moves
    them, in the caller's transaction (the log's lock is held from here to the commit)."""
    row = session.get(ServingModel, _ROW)
    if row is None:
        session.add(ServingModel(id=_ROW, settings=settings, model_id=model_id))
    else:
        row.settings, row.model_id, row.changed_at = settings, model_id, utcnow()
    session.flush()
    log_change(session, ChangeKind.MODEL)
