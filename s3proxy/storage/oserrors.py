"""What a client is told when the data root's file system refuses an operation.

A full disk, a read-only mount or a file the daemon may not open is not a bug of the
daemon: the client gets a clear S3 error (see errors.StorageFull and StorageReadOnly)
and the operator one log line, not an InternalError with a traceback.
"""

from __future__ import annotations

import errno

from s3proxy.errors import AccessDenied, S3Error, ServiceUnavailable, StorageFull, StorageReadOnly

_ERRORS: dict[int, type[S3Error]] = {
    errno.ENOSPC: StorageFull,
    errno.EDQUOT: StorageFull,
    errno.EROFS: StorageReadOnly,
    errno.EACCES: AccessDenied,
    errno.EPERM: AccessDenied,
    # Out of descriptors or memory: a load peak, worth a retry.
    errno.EMFILE: ServiceUnavailable,
    errno.ENFILE: ServiceUnavailable,
    errno.ENOMEM: ServiceUnavailable,
}


def s3_error_for(error: OSError) -> S3Error | None:
    """The S3 error to answer for ``error``, or None if it is an internal error."""
    kind = _ERRORS.get(error.errno or 0)
    return kind() if kind is not None else None
