from __future__ import annotations

import threading

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from matcher.store import create_case, get_case, list_cases, set_case_status
from tests.store.builders import new_case

ROUNDS = 25


def test_two_writers_do_not_fail_with_database_is_locked(
    factory: sessionmaker[Session], engine: Engine
) -> None:
    """Read-then-write transactions from two threads at once: all must commit (busy timeout)."""
    with factory() as session:
        shared = create_case(session, new_case("shared")).id
        session.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(ROUNDS):
                with factory() as session:
                    get_case(session, shared)  # read first, as the service will
                    create_case(session, new_case(f"{name} {i}"))
                    set_case_status(session, shared, "found" if i % 2 else "active")
                    session.commit()
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with factory() as session:
        assert len(list_cases(session, limit=1000)) == 1 + 2 * ROUNDS


def test_an_idle_reading_session_does_not_block_writers(
    factory: sessionmaker[Session], engine: Engine
) -> None:
    with factory() as reader:
        list_cases(reader)  # its transaction stays open until the session ends
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM cases"))
        with factory() as writer:
            create_case(writer, new_case())
            writer.commit()
