"""Importers of runs recorded by other tracking tools (``loopml import …``)."""

__all__: list[str] = []
