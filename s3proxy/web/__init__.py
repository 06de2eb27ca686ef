"""The HTTP side: the streaming request, the Klein application and the S3 operations."""
