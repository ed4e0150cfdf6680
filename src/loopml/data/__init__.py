"""Data versioning: datasets as content-addressed trees with numbered versions."""

from loopml.data.api import DataRef, add, get, log, read_frame, ref, status

__all__ = ["DataRef", "add", "get", "log", "read_frame", "ref", "status"]
