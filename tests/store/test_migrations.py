from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from matcher.config import Settings
from matcher.store import current_revision, migrate
from matcher.store.db import alembic_config
from matcher.store.models import Base
from matcher.wiring import database_url, make_engine

# Tables whose rows have their own id and can be deleted: SQLite must never reuse their ids.
# Those of revision 0007, then those created with AUTOINCREMENT since.
ID_TABLES = ("cases", "case_photos", "sightings", "faces", "candidates", "decisions",
             "audit_events", "api_keys")
LATER_ID_TABLES = ("alerts", "partners", "partner_deliveries", "sighting_reports",
                   "index_changes")

TABLES = {
    "cases", "case_photos", "sightings", "faces", "candidates", "api_keys", "decisions",
    "audit_events", "face_vectors", "store_holders", "alerts", "alert_sequence", "partners",
    "partner_deliveries", "sighting_reports", "index_changes", "serving_model",
}
HEAD = "0020"
# The indexes of candidates besides the unique constraint's, by name: their columns.
CANDIDATE_INDEXES_0004 = {
    "ix_candidates_case_face_id": ["case_face_id"], "ix_candidates_case_id": ["case_id"],
    "ix_candidates_status_case_id": ["status", "case_id"],
}
CANDIDATE_INDEXES_0005 = {
    "ix_candidates_case_face_id": ["case_face_id"],
    "ix_candidates_status_distance_id": ["status", "distance", "id"],
    "ix_candidates_case_id_status_distance_id": ["case_id", "status", "distance", "id"],
}
CANDIDATE_INDEXES_0008 = {
    "ix_candidates_case_face_id": ["case_face_id"],
    "ix_candidates_status_likelihood": ["status", "false_match_rate", "distance_ratio", "id"],
    "ix_candidates_case_id_status_likelihood": [
        "case_id", "status", "false_match_rate", "distance_ratio", "id"],
}
SIGHTING_1 = ("INSERT INTO sightings (id, uploaded_at, app, sha256, path, width, height) "
              "VALUES (1, '2026-01-01 00:00:00+00:00', 'tips', 'ab', 'p', 10, 10)")


def _sighting_with_face_7(connection: Connection) -> None:
    """Sighting 1 and its face 7, in the faces table as revisions 0003 and later have it."""
    connection.execute(text(SIGHTING_1))
    connection.execute(text(
        "INSERT INTO faces (id, sighting_id, box, landmarks, score, size_px, sharpness, "
        "unfit_reasons, fit) VALUES (7, 1, '[0,0,1,1]', '[]', 0.9, 50, 20, '[]', :fit)"),
        {"fit": True})


def test_migrations_create_every_table_on_an_empty_database(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    assert not set(inspect(empty_engine).get_table_names()) & TABLES
    migrate(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES | {"alembic_version"}
    assert current_revision(empty_engine) == HEAD


def test_migrating_again_changes_nothing(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == HEAD


def test_the_migrations_go_down_and_up_again(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "base")
    assert not set(inspect(engine).get_table_names()) & TABLES
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_the_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_is_the_default_under_the_data_dir(tmp_path: Path) -> None:
    url = database_url(Settings(data_dir=tmp_path))
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "matcher.db")
    pg = database_url(Settings(data_dir=tmp_path, database_url="postgresql://u:p@db/matcher"))
    assert pg.drivername == "postgresql+psycopg"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data", sqlite_busy_timeout_ms=1234))
    try:
        migrate(engine)
        assert (tmp_path / "data" / "matcher.db").is_file()
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 1234
    finally:
        engine.dispose()


def test_descriptors_move_to_face_vectors_and_back(empty_engine: Engine) -> None:
    migrate(empty_engine, "0002")
    descriptor = np.arange(128, dtype="<f4").tobytes()
    with empty_engine.begin() as connection:
        connection.execute(text(SIGHTING_1))
        connection.execute(text(
            "INSERT INTO faces (id, sighting_id, box, landmarks, score, size_px, sharpness, "
            "unfit_reasons, fit, model_id, dim, descriptor) VALUES (7, 1, '[0,0,1,1]', '[]', "
            "0.9, 50, 20, '[]', :fit, 'm1', 128, :descriptor)"),
            {"descriptor": descriptor, "fit": True})
        # What points at faces must survive the table copy SQLite needs (no cascade).
        connection.execute(text(
            "INSERT INTO cases (id, category, name, sex, age_when_missing, missing_since, "
            "description, status, public_fields, created_at, updated_at) VALUES (3, 'child', "
            "'A', 'unknown', 8, '2020-01-01', '', 'active', '[]', '2026-01-01 00:00:00+00:00', "
            "'2026-01-01 00:00:00+00:00')"))
        connection.execute(text(
            "INSERT INTO candidates (id, sighting_face_id, case_id, case_face_id, distance, "
            "rank, model_id, threshold, status, created_at) VALUES (5, 7, 3, 7, 0.4, 1, 'm1', "
            "0.6, 'pending', '2026-01-01 00:00:00+00:00')"))
        connection.execute(text(
            "INSERT INTO decisions (candidate_id, sighting_face_id, case_id, verdict, note, "
            "reviewer, created_at) VALUES (5, 7, 3, 'not_match', '', 'inv', "
            "'2026-01-01 00:00:00+00:00')"))
    migrate(empty_engine, "0003")
    with empty_engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT face_id, model_id, dim, descriptor FROM face_vectors")).all()
        kept = [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("candidates", "decisions")]
    assert [(r[0], r[1], r[2], bytes(r[3])) for r in rows] == [(7, "m1", 128, descriptor)]
    assert kept == [1, 1]
    command.downgrade(alembic_config(empty_engine), "0002")
    with empty_engine.connect() as connection:
        back = connection.execute(text("SELECT model_id, descriptor FROM faces")).all()
    assert [(r[0], bytes(r[1])) for r in back] == [("m1", descriptor)]


def test_faces_stored_before_0004_have_no_detection_and_keep_everything_else(
    empty_engine: Engine,
) -> None:
    migrate(empty_engine, "0003")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
    migrate(empty_engine)
    with empty_engine.begin() as connection:
        assert connection.execute(text(
            "SELECT id, detector, keypoints FROM faces")).one() == (7, None, None)
        connection.execute(text("UPDATE faces SET detector = 'yunet', keypoints = '[[1, 2]]'"))
    command.downgrade(alembic_config(empty_engine), "0003")
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT id, score FROM faces")).one() == (7, 0.9)
        assert "detector" not in {c["name"] for c in inspect(empty_engine).get_columns("faces")}


def _candidate_indexes(engine: Engine) -> dict[str, list[str]]:
    return {index["name"]: list(index["column_names"])
            for index in inspect(engine).get_indexes("candidates")
            if not index["name"].startswith("uq_")}  # SQLite lists the unique constraint's


def test_0005_gives_the_review_queue_its_indexes_and_takes_them_back(
    empty_engine: Engine,
) -> None:
    migrate(empty_engine, "0004")
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0004
    migrate(empty_engine, "0005")
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0005
    command.downgrade(alembic_config(empty_engine), "0004")
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0004


def _model_id_widths(engine: Engine) -> list[int]:
    return [next(c["type"].length for c in inspect(engine).get_columns(table)
                 if c["name"] == "model_id") for table in ("face_vectors", "candidates")]


def test_0006_widens_model_ids_and_keeps_the_stored_vectors(empty_engine: Engine) -> None:
    migrate(empty_engine, "0005")
    descriptor = np.arange(4, dtype="<f4").tobytes()
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        connection.execute(text("INSERT INTO face_vectors (face_id, model_id, dim, descriptor) "
                                "VALUES (7, 'm1', 4, :descriptor)"), {"descriptor": descriptor})
    assert _model_id_widths(empty_engine) == [64, 64]
    migrate(empty_engine, "0006")
    assert _model_id_widths(empty_engine) == [128, 128]
    with empty_engine.connect() as connection:
        rows = connection.execute(text("SELECT face_id, model_id, descriptor FROM face_vectors"))
        assert [(r[0], r[1], bytes(r[2])) for r in rows] == [(7, "m1", descriptor)]
    command.downgrade(alembic_config(empty_engine), "0005")
    assert _model_id_widths(empty_engine) == [64, 64]


_SERIAL = itertools.count()
# One more row of each id table, its id left to the database; :n keeps unique columns unique.
_AT = "'2026-01-01 00:00:00+00:00'"
NEW_ROW = {
    "cases": "INSERT INTO cases (category, name, sex, age_when_missing, missing_since, "
             "description, status, public_fields, created_at, updated_at) VALUES ('child', "
             f"'A', 'unknown', 8, '2020-01-01', '', 'active', '[]', {_AT}, {_AT})",
    "case_photos": "INSERT INTO case_photos (case_id, sha256, path, width, height, created_at) "
                   f"VALUES ((SELECT min(id) FROM cases), :n, 'p', 10, 10, {_AT})",
    "sightings": "INSERT INTO sightings (uploaded_at, app, sha256, path, width, height) "
                 f"VALUES ({_AT}, 'tips', 'ab', 'p', 10, 10)",
    "faces": "INSERT INTO faces (sighting_id, box, landmarks, score, size_px, sharpness, "
             "unfit_reasons, fit) VALUES ((SELECT min(id) FROM sightings), '[0,0,1,1]', '[]', "
             "0.9, 50, 20, '[]', :fit)",
    "candidates": "INSERT INTO candidates (sighting_face_id, case_id, case_face_id, distance, "
                  "rank, model_id, threshold, status, created_at) VALUES ((SELECT min(id) FROM "
                  "faces), (SELECT min(id) FROM cases), (SELECT min(id) FROM faces), 0.4, 1, "
                  f":n, 0.6, 'pending', {_AT})",
    "decisions": "INSERT INTO decisions (sighting_face_id, case_id, verdict, note, reviewer, "
                 "created_at) VALUES ((SELECT min(id) FROM faces), (SELECT min(id) FROM cases), "
                 f"'not_match', '', 'inv', {_AT})",
    "audit_events": "INSERT INTO audit_events (at, actor, role, action, object_type, "
                    f"object_id, detail) VALUES ({_AT}, 'a', 'admin', 'read', 'case', '1', '{{}}')",
    "api_keys": "INSERT INTO api_keys (prefix, key_hash, role, name, created_at) VALUES "
                f"(:n, 'h', 'admin', 'k', {_AT})",
}


def _add_row(connection: Connection, table: str) -> int:
    """Adds a row to `table` and returns its id (the largest, as ids only grow)."""
    connection.execute(text(NEW_ROW[table]), {"n": f"n{next(_SERIAL)}", "fit": True})
    return int(connection.execute(text(f"SELECT max(id) FROM {table}")).scalar_one())


def _autoincrement_tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        return {name for name, sql in rows if "AUTOINCREMENT" in sql.upper()}


def test_0007_ids_are_never_reused_after_the_upgrade_and_back(empty_engine: Engine) -> None:
    sqlite = empty_engine.dialect.name == "sqlite"
    migrate(empty_engine, "0006")
    with empty_engine.begin() as connection:
        # Two rows in each table; the newest of each deleted, so the largest id left is 1.
        before = {table: [_add_row(connection, table) for _ in range(2)] for table in ID_TABLES}
        for table in reversed(ID_TABLES):  # children first
            connection.execute(text(f"DELETE FROM {table} WHERE id = :id"),
                               {"id": before[table][1]})
        if sqlite:  # what 0007 fixes: SQLite gives the deleted newest id out again
            assert _add_row(connection, "cases") == before["cases"][1]
            connection.execute(text("DELETE FROM cases WHERE id = :id"),
                               {"id": before["cases"][1]})
    migrate(empty_engine, "0007")
    if sqlite:
        assert _autoincrement_tables(empty_engine) >= set(ID_TABLES)
    with empty_engine.begin() as connection:
        kept = connection.execute(text(
            "SELECT c.id, f.id FROM candidates c JOIN faces f ON f.id = c.sighting_face_id "
            "JOIN cases k ON k.id = c.case_id")).one()
        assert tuple(kept) == (before["candidates"][0], before["faces"][0])
        for table in ID_TABLES:
            old_max = before[table][0]
            first = _add_row(connection, table)
            assert first > old_max, table  # continues above the rows copied over
            connection.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": first})
            assert _add_row(connection, table) > first, table  # the newest deleted: not reused
    command.downgrade(alembic_config(empty_engine), "0006")
    if sqlite:
        assert not _autoincrement_tables(empty_engine) & set(ID_TABLES)
    with empty_engine.connect() as connection:
        counts = {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                  for table in ID_TABLES}
    assert counts == dict.fromkeys(ID_TABLES, 2)
    migrate(empty_engine)
    assert current_revision(empty_engine) == HEAD


def test_the_models_ask_sqlite_for_the_ids_0007_gives() -> None:
    """Tables created from the models (not the migrations) would reuse ids otherwise."""
    declared = {table.name for table in Base.metadata.sorted_tables
                if table.dialect_options["sqlite"]["autoincrement"]}
    assert declared == set(ID_TABLES + LATER_ID_TABLES)


def _candidate_columns(engine: Engine) -> dict[str, bool]:
    """Column name: nullable."""
    return {c["name"]: c["nullable"] for c in inspect(engine).get_columns("candidates")}


def test_0008_rates_and_ratios_order_the_queue_and_go_back(empty_engine: Engine) -> None:
    sqlite = empty_engine.dialect.name == "sqlite"
    migrate(empty_engine, "0007")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        case = _add_row(connection, "cases")
        # Thresholds in force: 0.6, and 0 (a calibration that vouches for no distance).
        for id_, distance, threshold in ((5, 0.3, 0.6), (6, 0.9, 0.6), (8, 0.2, 0.0)):
            connection.execute(text(
                "INSERT INTO candidates (id, sighting_face_id, case_id, case_face_id, distance, "
                "rank, model_id, threshold, status, created_at) VALUES (:id, 7, :case, 7, "
                f":distance, 1, :model, :threshold, 'pending', {_AT})"),
                {"id": id_, "case": case, "distance": distance, "threshold": threshold,
                 "model": f"m{id_}"})
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0005
    migrate(empty_engine, "0008")
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0008
    columns = _candidate_columns(empty_engine)
    assert (columns["false_match_rate"], columns["distance_ratio"]) == (True, False)
    if sqlite:  # the table copy keeps what 0007 gave it
        assert "candidates" in _autoincrement_tables(empty_engine)
    with empty_engine.begin() as connection:
        rows = connection.execute(text(
            "SELECT id, false_match_rate, distance_ratio FROM candidates ORDER BY id")).all()
        assert [(r[0], r[1]) for r in rows] == [(5, None), (6, None), (8, None)]
        assert [r[2] for r in rows] == [pytest.approx(0.5), pytest.approx(1.5),
                                        pytest.approx(0.2 / 1e-9)]
        connection.execute(text("UPDATE candidates SET false_match_rate = 0.001 WHERE id = 5"))
        connection.execute(text(
            "INSERT INTO candidates (sighting_face_id, case_id, case_face_id, distance, rank, "
            "model_id, threshold, status, created_at, false_match_rate, distance_ratio) VALUES "
            f"(7, :case, 7, 0.4, 1, 'm9', 0.8, 'pending', {_AT}, 0.01, 0.5)"), {"case": case})
        new_id = int(connection.execute(text(
            "SELECT id FROM candidates WHERE model_id = 'm9'")).scalar_one())
    command.downgrade(alembic_config(empty_engine), "0007")
    assert _candidate_indexes(empty_engine) == CANDIDATE_INDEXES_0005
    assert not {"false_match_rate", "distance_ratio"} & set(_candidate_columns(empty_engine))
    if sqlite:
        assert "candidates" in _autoincrement_tables(empty_engine)
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT id, distance FROM candidates ORDER BY id")
                                  ).all() == sorted([(5, 0.3), (6, 0.9), (8, 0.2), (new_id, 0.4)])


def test_0010_merges_a_pair_proposed_by_two_models_into_one_row(empty_engine: Engine) -> None:
    """A pair held open by an older model's row was proposed again by a new model: the queue
    showed it twice. 0010 keeps the newest row, with the pair's latest review state and its
    decisions; other pairs are left alone."""
    migrate(empty_engine, "0009")
    insert = text(
        "INSERT INTO candidates (id, sighting_face_id, case_id, case_face_id, distance, rank, "
        "model_id, threshold, status, created_at, distance_ratio, reviewed_at, reviewed_by) "
        f"VALUES (:id, :face, :case, :face, 0.4, 1, :model, 0.6, :status, {_AT}, 0.7, :at, :by)")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        other_face, case = 8, _add_row(connection, "cases")
        connection.execute(text(
            "INSERT INTO faces (id, sighting_id, box, landmarks, score, size_px, sharpness, "
            "unfit_reasons, fit) VALUES (8, 1, '[0,0,1,1]', '[]', 0.9, 50, 20, '[]', :fit)"),
            {"fit": True})
        for id_, face, model, status, at, by in (
                (10, 7, "m1", "needs_info", "2026-02-01 00:00:00+00:00", "inv"),
                (11, 7, "m2", "pending", None, None),
                (12, other_face, "m1", "pending", None, None)):
            connection.execute(insert, {"id": id_, "face": face, "case": case, "model": model,
                                        "status": status, "at": at, "by": by})
        connection.execute(text(
            "INSERT INTO decisions (candidate_id, sighting_face_id, case_id, verdict, note, "
            f"reviewer, created_at) VALUES (10, 7, :case, 'needs_info', '', 'inv', {_AT})"),
            {"case": case})
    migrate(empty_engine, "0010")
    with empty_engine.connect() as connection:
        assert connection.execute(text(
            "SELECT id, model_id, status, reviewed_by FROM candidates ORDER BY id")).all() == [
            (11, "m2", "needs_info", "inv"), (12, "m1", "pending", None)]
        assert connection.execute(text("SELECT candidate_id FROM decisions")).all() == [(11,)]
    command.downgrade(alembic_config(empty_engine), "0009")
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM candidates")).scalar_one() == 2


def test_0011_gives_cases_a_last_seen_moment_and_takes_it_back(empty_engine: Engine) -> None:
    """Cases stored before it keep every field, with no moment; going down keeps the cases
    (and their ids) without it."""
    migrate(empty_engine, "0010")
    with empty_engine.begin() as connection:
        case = _add_row(connection, "cases")
    migrate(empty_engine, "0011")
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT name, last_seen_at FROM cases")).all() == [
            ("A", None)]
        connection.execute(text(f"UPDATE cases SET last_seen_at = {_AT} WHERE id = :id"),
                           {"id": case})
    command.downgrade(alembic_config(empty_engine), "0010")
    columns = {c["name"] for c in inspect(empty_engine).get_columns("cases")}
    assert "last_seen_at" not in columns and "missing_since" in columns
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT id FROM cases")).scalars().all() == [case]
        assert _add_row(connection, "cases") > case  # still never reused (0007)


ALERT = ("INSERT INTO alerts (case_id, open_case_id, category, lat, lon, schedule, status, "
         "outcome, issued_at, issued_by, resolved_at, issued_seq, resolved_seq, changed_seq) "
         f"VALUES (:case, :open, 'child', 51.5, -0.1, '[[0, 100]]', :status, :outcome, {_AT}, "
         "'desk', :at, 1, :resolved_seq, 1)")


def test_0012_keeps_one_active_alert_per_case_and_a_counter_from_zero(
        empty_engine: Engine) -> None:
    migrate(empty_engine, "0012")
    active = {"case": 3, "open": 3, "status": "active", "outcome": None, "at": None,
              "resolved_seq": None}
    resolved = {**active, "open": None, "status": "resolved", "outcome": "found", "at": _AT[1:-1],
                "resolved_seq": 2}
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT id, value FROM alert_sequence")).all() == [(1, 0)]
        connection.execute(text(ALERT), active)
        connection.execute(text(ALERT), resolved)
        connection.execute(text(ALERT), resolved)  # resolved ones: as many as it had
    refused = [
        active,  # a second active alert of case 3
        {**active, "case": 4, "open": 3},  # open for another case
        {**resolved, "outcome": None},  # resolved without an outcome
        {**resolved, "open": 3, "case": 5},  # resolved yet open
        {**active, "case": 6, "open": 6, "outcome": "found"},  # active with an outcome
        {**resolved, "outcome": "lost"},
    ]
    for values in refused:
        with pytest.raises(IntegrityError), empty_engine.begin() as connection:
            connection.execute(text(ALERT), values)
    command.downgrade(alembic_config(empty_engine), "0011")
    assert not {"alerts", "alert_sequence"} & set(inspect(empty_engine).get_table_names())


def test_0013_marks_reported_sightings_and_keeps_earlier_rows(empty_engine: Engine) -> None:
    """Earlier candidates were not reported; a sighting's reported case goes to NULL with an
    erased case; going down keeps every sighting and candidate."""
    insert = ("INSERT INTO candidates (sighting_face_id, case_id, case_face_id, distance, rank, "
              "model_id, threshold, status, created_at, distance_ratio{}) VALUES (7, :case, 7, "
              f"0.4, 1, :model, 0.6, 'pending', {_AT}, 0.7{{}})")
    migrate(empty_engine, "0012")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        case = _add_row(connection, "cases")
        connection.execute(text(insert.format("", "")), {"case": case, "model": "m1"})
    migrate(empty_engine, "0013")
    with empty_engine.begin() as connection:
        connection.execute(text(insert.format(", reported_for_alert", ", :reported")),
                           {"case": case, "model": "m2", "reported": True})
        assert connection.execute(text(
            "SELECT model_id, reported_for_alert FROM candidates ORDER BY id")).all() == [
            ("m1", False), ("m2", True)]
        connection.execute(text("UPDATE sightings SET alert_case_id = :case"), {"case": case})
        connection.execute(text("DELETE FROM cases WHERE id = :case"), {"case": case})
        assert connection.execute(text("SELECT id, alert_case_id FROM sightings")).all() == [
            (1, None)]
    command.downgrade(alembic_config(empty_engine), "0012")
    assert "alert_case_id" not in {c["name"] for c in inspect(empty_engine).get_columns(
        "sightings")}
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM faces")).scalar_one() == 1


def test_0014_takes_inconclusive_and_gives_it_back_as_needs_info(empty_engine: Engine) -> None:
    """The face examiners' third conclusion: both CHECKs take the word from 0014 on and still
    refuse any other; the copied tables keep their indexes, other CHECKs and AUTOINCREMENT;
    going down, it becomes needs_info (open, neither a match nor an exclusion)."""
    candidate = ("INSERT INTO candidates (sighting_face_id, case_id, case_face_id, distance, "
                 "rank, model_id, threshold, status, created_at, distance_ratio) VALUES (7, "
                 f":case, 7, 0.4, :rank, :model, 0.6, :word, {_AT}, 0.7)")
    decision = ("INSERT INTO decisions (sighting_face_id, case_id, verdict, note, reviewer, "
                f"created_at) VALUES (7, :case, :word, '', 'inv', {_AT})")

    def refused(case: int, *words: str, rank: int = 1) -> None:
        for word in words:
            for sql in (candidate, decision):
                with pytest.raises(IntegrityError), empty_engine.begin() as connection:
                    connection.execute(text(sql), {"case": case, "word": word, "rank": rank,
                                                   "model": f"m-{word}"})

    def indexes() -> dict[str, list[str]]:
        found = inspect(empty_engine)
        return {f"{table}.{ix['name']}": list(ix["column_names"])
                for table in ("candidates", "decisions") for ix in found.get_indexes(table)}

    migrate(empty_engine, "0013")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        case = _add_row(connection, "cases")
    refused(case, "inconclusive")
    before = indexes()
    migrate(empty_engine, "0014")
    with empty_engine.begin() as connection:
        connection.execute(text(candidate), {"case": case, "word": "inconclusive", "rank": 1,
                                             "model": "m1"})
        connection.execute(text(decision), {"case": case, "word": "inconclusive"})
    refused(case, "maybe")
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:  # rank >= 1 holds
        connection.execute(text(candidate), {"case": case, "word": "pending", "rank": 0,
                                             "model": "m2"})
    assert indexes() == before
    if empty_engine.dialect.name == "sqlite":
        assert {"candidates", "decisions"} <= _autoincrement_tables(empty_engine)

    command.downgrade(alembic_config(empty_engine), "0013")
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM candidates")).all() == [
            ("needs_info",)]
        assert connection.execute(text("SELECT verdict FROM decisions")).all() == [
            ("needs_info",)]
    refused(case, "inconclusive")
    assert indexes() == before


def test_0015_tells_partners_of_the_steps_of_alerts_issued_before_it(
        empty_engine: Engine) -> None:
    """An active alert gets the first step after its issue (the partners' scan then tells of
    its area as it is); a resolved one none; going down drops the partners and their outbox."""
    migrate(empty_engine, "0014")
    with empty_engine.begin() as connection:
        for case, status, outcome, seq in ((3, "active", None, None), (4, "resolved", "found", 2)):
            connection.execute(text(ALERT.replace("'[[0, 100]]'", "'[[0, 100], [1, 500]]'")), {
                "case": case, "open": case if status == "active" else None, "status": status,
                "outcome": outcome, "at": None if seq is None else _AT[1:-1],
                "resolved_seq": seq})
    migrate(empty_engine, "0015")
    with empty_engine.connect() as connection:
        steps = dict(connection.execute(text("SELECT case_id, next_step_at FROM alerts")).all())
    assert steps[4] is None and str(steps[3]).startswith("2026-01-01 01:00:00")
    command.downgrade(alembic_config(empty_engine), "0014")
    assert not {"partners", "partner_deliveries"} & set(inspect(empty_engine).get_table_names())
    assert "next_step_at" not in {c["name"] for c in inspect(empty_engine).get_columns("alerts")}


def test_0017_gives_each_stored_sighting_the_report_of_its_upload(empty_engine: Engine) -> None:
    """Tips that repeat: every sighting stored before has one report, of its own upload (the
    contact kept with it); going down drops the reports and the burst links, keeping the
    sightings."""
    migrate(empty_engine, "0016")
    with empty_engine.begin() as connection:
        _sighting_with_face_7(connection)
        connection.execute(text("UPDATE sightings SET lat = 51.5, lon = -0.1, note = 'red coat', "
                                "reporter_contact = '+44 1'"))
    migrate(empty_engine, "0017")
    with empty_engine.begin() as connection:
        assert connection.execute(text(
            "SELECT sighting_id, app, lat, note, reporter_contact FROM sighting_reports")
        ).all() == [(1, "tips", 51.5, "red coat", "+44 1")]
        assert connection.execute(text("SELECT phash, burst_of FROM sightings")).all() == [
            (None, None)]
        connection.execute(text("UPDATE sightings SET burst_of = 1, phash = -5"))
    command.downgrade(alembic_config(empty_engine), "0016")
    assert "sighting_reports" not in set(inspect(empty_engine).get_table_names())
    columns = {c["name"] for c in inspect(empty_engine).get_columns("sightings")}
    assert not {"phash", "burst_of"} & columns
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM faces")).scalar_one() == 1


DELIVERY = ("INSERT INTO partner_deliveries (partner_id, event_id, event_key, alert_id, kind, "
            "body, status, attempts, created_at, next_attempt_at) VALUES (1, :event, :event, 1, "
            f":kind, '{{}}', 'pending', 0, {_AT}, {_AT})")


def test_0018_lets_alerts_be_updated_and_drops_those_events_going_down(
        empty_engine: Engine) -> None:
    migrate(empty_engine, "0017")
    with empty_engine.begin() as connection:
        connection.execute(text(ALERT), {"case": 3, "open": 3, "status": "active",
                                         "outcome": None, "at": None, "resolved_seq": None})
        connection.execute(text(
            "INSERT INTO partners (name, url, secret, categories, created_at) VALUES "
            f"('news', 'https://news.example/hook', 's', '[\"child\"]', {_AT})"))
        connection.execute(text(DELIVERY), {"event": "e1", "kind": "issued"})
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(text(DELIVERY), {"event": "e2", "kind": "updated"})
    migrate(empty_engine, "0018")
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT updated_seq FROM alerts")).all() == [(None,)]
        connection.execute(text("UPDATE alerts SET updated_seq = 2, changed_seq = 2"))
        connection.execute(text(DELIVERY), {"event": "e2", "kind": "updated"})
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(text(DELIVERY), {"event": "e3", "kind": "edited"})
    command.downgrade(alembic_config(empty_engine), "0017")
    assert "updated_seq" not in {c["name"] for c in inspect(empty_engine).get_columns("alerts")}
    with empty_engine.connect() as connection:
        assert connection.execute(text(
            "SELECT event_id, kind FROM partner_deliveries")).all() == [("e1", "issued")]


CHANGE = "INSERT INTO index_changes (kind, face_ids, created_at) VALUES (:kind, '[]', {at})"


def test_0020_keeps_the_serving_model_and_logs_its_changes(empty_engine: Engine) -> None:
    migrate(empty_engine, "0019")
    change = text(CHANGE.format(at=_AT))
    with empty_engine.begin() as connection:
        connection.execute(change, {"kind": "case_in"})
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(change, {"kind": "model"})
    migrate(empty_engine, "0020")
    row = ("INSERT INTO serving_model (id, settings, model_id, changed_at) VALUES "
           f"(:id, '{{\"embedder\": \"dlib\"}}', 'dlib-resnet-v1', {_AT})")
    with empty_engine.begin() as connection:
        connection.execute(change, {"kind": "model"})
        connection.execute(text(row), {"id": 1})
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(text(row), {"id": 2})  # one row: one model serves the store
    command.downgrade(alembic_config(empty_engine), "0019")
    assert "serving_model" not in inspect(empty_engine).get_table_names()
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT kind FROM index_changes")).all() == [("case_in",)]
