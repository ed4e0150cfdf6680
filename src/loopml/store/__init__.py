"""Storage: the content-addressed object store, the metadata store, hashing and workspaces.

Submodules are imported directly (``loopml.store.workspace``); this package imports nothing so
that a light command never pays for a heavy backend.
"""

__all__: list[str] = []
