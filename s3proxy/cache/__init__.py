"""A local read cache in front of any IStorage backend (``--cache DIR``)."""

from s3proxy.cache.storage import CachingStorage

__all__ = ["CachingStorage"]
