"""Object storage: the backend Protocol, the local and fsspec backends, and ``ObjectStore``."""

__all__: list[str] = []
