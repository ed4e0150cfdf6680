"""Serializers ("materializers") shared by pipeline step outputs and model flavours."""

from loopml.artifacts.errors import ArtifactError, UnsafeLoadError, UnsupportedTypeError
from loopml.artifacts.protocol import Materializer
from loopml.artifacts.registry import materializer, materializer_by_name, materializer_for

__all__ = [
    "ArtifactError",
    "Materializer",
    "UnsafeLoadError",
    "UnsupportedTypeError",
    "materializer",
    "materializer_by_name",
    "materializer_for",
]
