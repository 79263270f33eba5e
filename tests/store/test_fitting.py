"""What the store names for a fit on its own decisions, on SQLite and PostgreSQL: faces of case
photos with one face, and sighting faces whose latest decision for a case is `match`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from matcher.store import (
    NewCandidate,
    NewSighting,
    add_candidates,
    add_case_photo,
    create_case,
    create_sighting,
    store_photo,
)
from matcher.store.decisions import decide
from matcher.store.fitting import (
    LabelledFace,
    case_ids,
    faces_to_embed,
    labelled_faces,
    stored_vectors,
)
from tests.store.builders import MODEL, new_case, new_face, pixels, vector


def test_the_store_names_case_photo_faces_and_confirmed_sighting_faces(
    session: Session, data_dir: Path
) -> None:
    ana = create_case(session, new_case("Ana"))
    ben = create_case(session, new_case("Ben"))
    alone = add_case_photo(session, ana.id, store_photo(data_dir, pixels(1)), [new_face(1)])
    # Two faces in one case photo: which one is Ana is not recorded.
    add_case_photo(session, ana.id, store_photo(data_dir, pixels(2)),
                   [new_face(2), new_face(3)])
    ben_face = add_case_photo(session, ben.id, store_photo(data_dir, pixels(4)),
                              [new_face(4)]).faces[0].id
    sighting = create_sighting(session, NewSighting(app="tips"),
                               store_photo(data_dir, pixels(5)),
                               [new_face(10 + i) for i in range(5)])
    seen = [face.id for face in sighting.faces]
    ana_face = alone.faces[0].id

    def candidate(face: int, case: int, case_face: int) -> int:
        row, = add_candidates(session, [NewCandidate(face, case, case_face, 0.4, 1, MODEL, 0.6)])
        return row.id

    verdicts = {  # (sighting face, case): decisions, oldest first
        (seen[0], ana.id): ["match"],
        (seen[1], ana.id): ["match", "not_match"],  # taken back
        (seen[2], ana.id): ["not_match", "needs_info", "match"],
        (seen[3], ana.id): ["match"],  # and Ben's too: it contradicts itself
        (seen[3], ben.id): ["match"],
        (seen[4], ben.id): ["needs_info"],
    }
    for (face, case), said in verdicts.items():
        row = candidate(face, case, ana_face if case == ana.id else ben_face)
        for verdict in said:
            decide(session, row, verdict)
    session.commit()

    assert labelled_faces(session) == [
        LabelledFace(ana_face, ana.id, False), LabelledFace(ben_face, ben.id, False),
        LabelledFace(seen[0], ana.id, True), LabelledFace(seen[2], ana.id, True)]
    assert case_ids(session) == [ana.id, ben.id]

    # Vectors of one model, and where each face's photo and detection are.
    found = stored_vectors(session, MODEL, [ana_face, seen[0], 999_999])
    assert set(found) == {ana_face, seen[0]}
    assert np.allclose(found[ana_face], vector(1))
    assert stored_vectors(session, "another-model", [ana_face]) == {}
    ana_photo, sighted = faces_to_embed(session, [seen[0], ana_face])
    assert (ana_photo.face_id, ana_photo.sighting_id, ana_photo.path) == (ana_face, None,
                                                                          alone.path)
    assert (sighted.face_id, sighted.sighting_id, sighted.path) == (seen[0], sighting.id,
                                                                    sighting.path)
