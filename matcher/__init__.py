"""matcher: finds missing people's faces in sighting photos, offline."""

import os

# OpenMP (libgomp, shared by torch and FAISS: torch loads it first and FAISS binds to it) makes
# idle worker threads spin. On a shared 2-core machine the spinning starves the threads doing the
# work: measured here with another process busy, a 2-thread torch conv stack ran 12-20x slower
# at batch 1 and 3x at batch 8, FAISS IVF-PQ training 10x slower; with passive waiting they ran
# at full speed. It must be set before torch or faiss is imported; an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
