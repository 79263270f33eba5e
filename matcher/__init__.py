"""matcher: finds missing people's faces in sighting photos, offline."""

__version__ = "0.1.0"
