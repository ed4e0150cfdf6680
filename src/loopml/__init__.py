"""loopml: a local-first, closed-loop MLOps system."""

from loopml._version import __version__

__all__ = ["__version__"]
