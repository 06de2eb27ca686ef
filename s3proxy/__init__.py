"""s3proxy: an S3-compatible REST gateway on Twisted."""

__version__ = "0.1.0"
