"""Which processes hold the store, so that a reindex runs alone (issue 19, defect 12) and the
housekeeping runs on one server (issue 23).

A server holds the store for its lifetime (`serve`; several servers may share one store), a
reindex for its run (`reindex`; one at a time: two at once would race to embed and to record
the model). A reindex may run beside servers, in one of them or as `matcher reindex`: its swap
records the new model in the store, and every server moves to it (model_follow.py).

Each holder's row is renewed every HEARTBEAT_S by a thread of its own. A row is stale when it
was not renewed for STALE_AFTER_S (a machine that died, a process frozen), or at once when it
names a process of this machine that is gone (`kill -9`, a crash): the next claim removes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.store import session_factory, session_scope
from matcher.store.db import table_names
from matcher.store.holders import (
    Holder,
    add_holder,
    holders,
    locked_holders,
    remove_holders,
    renew_holder,
)
from matcher.wiring import make_engine

log = logging.getLogger(__name__)

SERVE, REINDEX = "serve", "reindex"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0


class StoreBusy(Exception):
    """Another process holds the store in a way that excludes this one; the message says
    which and what to do."""


def _alive(holder: Holder, now: dt.datetime) -> bool:
    if now - holder.beat_at > dt.timedelta(seconds=STALE_AFTER_S):
        return False
    if holder.host != socket.gethostname():
        return True  # only its heartbeat can tell
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _describe(holder: Holder) -> str:
    what = "a server" if holder.kind == SERVE else "a reindex"
    return (f"{what} (pid {holder.pid} on {holder.host}, since "
            f"{holder.started_at:%Y-%m-%d %H:%M:%S} UTC)")


def _refusal(kind: str, others: list[Holder]) -> str | None:
    """Why a `kind` holder may not join these live `others` (None: it may)."""
    reindexes = [h for h in others if h.kind == REINDEX]
    if kind == REINDEX and reindexes:
        return (f"{_describe(reindexes[0])} is running on this store: wait for it to end "
                "(run `matcher reindex` again to resume one that was stopped)")
    return None


class Hold:
    """A claimed row with the thread that renews it; `release()` ends it (idempotent)."""

    def __init__(self, sessions: sessionmaker[Session], holder: Holder,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.sessions = sessions
        self.holder = holder
        self.on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"hold-{holder.kind}",
                                        daemon=True)
        self._thread.start()

    @property
    def id(self) -> str:
        return self.holder.id

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with session_scope(self.sessions) as session:
                    kept = renew_holder(session, self.id, dt.datetime.now(dt.UTC))
            except Exception:  # a store outage: the next beat tries again
                log.warning("could not renew the %s hold on the store", self.holder.kind,
                            exc_info=True)
                continue
            if not kept:
                log.error("the %s hold on the store was taken for stale (no heartbeat for "
                          "%.0f s): another process may now reindex", self.holder.kind,
                          STALE_AFTER_S)
                if self.on_lost is not None:
                    self.on_lost()
                return

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S + 5)
        try:
            with session_scope(self.sessions) as session:
                remove_holders(session, [self.id])
        except Exception:  # its heartbeat stops: stale within STALE_AFTER_S
            log.warning("could not release the %s hold on the store", self.holder.kind,
                        exc_info=True)


def claim(sessions: sessionmaker[Session], kind: str,
          on_lost: Callable[[], None] | None = None) -> Hold:
    """Adds this process as a `kind` holder, or raises StoreBusy. Decided in one transaction
    with the table locked; stale rows found on the way are removed."""
    now = dt.datetime.now(dt.UTC)
    holder = Holder(secrets.token_hex(16), kind, socket.gethostname(), os.getpid(), now, now)
    with session_scope(sessions) as session:
        found = locked_holders(session)
        stale = [h for h in found if not _alive(h, now)]
        if stale:
            remove_holders(session, [h.id for h in stale])
            log.info("removed %d stale holds on the store: %s", len(stale),
                     "; ".join(_describe(h) for h in stale))
        live = [h for h in found if h not in stale]
        refused = _refusal(kind, live)
        if refused is None:
            add_holder(session, holder)
    if refused is not None:
        raise StoreBusy(refused)
    return Hold(sessions, holder, on_lost)


def keeps_house(sessions: sessionmaker[Session], hold: Hold) -> bool:
    """Whether this server does the store's housekeeping (retention purge, the orphan sweep,
    trimming the index change log): the longest-running live server does, so it is done
    once for all the servers of a store. When that one dies, the next takes over once its
    row is stale (at once on the same machine). Every step is safe to run twice, so the
    moment two servers both think it theirs does no harm."""
    now = dt.datetime.now(dt.UTC)
    with sessions() as session:
        found = holders(session)  # oldest first
    servers = [h for h in found if h.kind == SERVE and _alive(h, now)]
    return not servers or servers[0].id == hold.id


def check_reindex_allowed(settings: Settings) -> None:
    """A look before a `matcher reindex` opens the store (loads the models, reads the saved
    indexes): StoreBusy when another reindex holds it now. The claim that decides comes
    later, in the job (`claim`)."""
    engine = make_engine(settings)
    try:
        if "store_holders" not in table_names(engine):
            return  # a store no holder of this version has opened
        with session_factory(engine)() as session:
            found = holders(session)
        now = dt.datetime.now(dt.UTC)
        refused = _refusal(REINDEX, [h for h in found if _alive(h, now)])
    finally:
        engine.dispose()
    if refused is not None:
        raise StoreBusy(refused)
