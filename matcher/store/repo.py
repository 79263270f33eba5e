"""What repo.py held is in the store's modules by subject: cases.py, sightings.py, faces.py,
candidates.py, face_rows.py (the source of the indexes) and digest.py.

This file stays only for tests/adversarial, written beside this change, which imports
`active_case_face_pairs` from here; delete it once that suite imports matcher.store.face_rows.
"""

from matcher.store.face_rows import active_case_face_pairs

__all__ = ["active_case_face_pairs"]
