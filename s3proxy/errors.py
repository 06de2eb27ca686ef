"""The S3 error hierarchy. Raised from anywhere (storage, parsing, handlers); the web
layer renders each as the ``<Error>`` document AWS sends, with the same code and status."""

from __future__ import annotations


class S3Error(Exception):
    """An error with an S3 error code, an HTTP status and extra ``<Error>`` fields."""

    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **fields: str) -> None:
        self.message = message or type(self).message
        self.fields = fields
        # Extra response headers, e.g. Content-Range on InvalidRange.
        self.headers: list[tuple[str, str]] = []
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.fields!r})"


def _error(code: str, status: int, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": status, "message": message})


AccessDenied = _error("AccessDenied", 403, "Access Denied")
BadDigest = _error(
    "BadDigest", 400, "The Content-MD5 you specified did not match what we received."
)
BucketAlreadyExists = _error(
    "BucketAlreadyExists",
    409,
    "The requested bucket name is not available. Please select a different name and try again.",
)
BucketAlreadyOwnedByYou = _error(
    "BucketAlreadyOwnedByYou",
    409,
    "Your previous request to create the named bucket succeeded and you already own it.",
)
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
EntityTooLarge = _error(
    "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size"
)
IncompleteBody = _error(
    "IncompleteBody",
    400,
    "You did not provide the number of bytes specified by the Content-Length HTTP header.",
)
InternalError = _error("InternalError", 500, "We encountered an internal error. Please try again.")
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
InvalidURI = _error("InvalidURI", 400, "Couldn't parse the specified URI.")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long")
MalformedXML = _error(
    "MalformedXML",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema",
)
MetadataTooLarge = _error(
    "MetadataTooLarge",
    400,
    "Your metadata headers exceed the maximum allowed metadata size",
)
MethodNotAllowed = _error(
    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
)
MissingContentLength = _error(
    "MissingContentLength", 411, "You must provide the Content-Length HTTP header."
)
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error(
    "NoSuchUpload",
    404,
    "The specified upload does not exist. The upload ID may be invalid, or the upload "
    "may have been aborted or completed.",
)
InvalidPart = _error(
    "InvalidPart",
    400,
    "One or more of the specified parts could not be found. The part may not have been "
    "uploaded, or the specified entity tag may not match the part's entity tag.",
)
InvalidPartOrder = _error(
    "InvalidPartOrder",
    400,
    "The list of parts was not in ascending order. Parts must be ordered by part number.",
)
InvalidPartNumber = _error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
EntityTooSmall = _error(
    "EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."
)
# CORS (GetBucketCors, preflight requests) and browser POST uploads.
NoSuchCORSConfiguration = _error(
    "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist"
)
CorsForbidden = _error(
    "AccessForbidden",
    403,
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution "
    "of Origin, request method / Access-Control-Request-Method or "
    "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
)
BadRequest = _error("BadRequest", 400, "Bad Request")
MalformedPOSTRequest = _error(
    "MalformedPOSTRequest",
    400,
    "The body of your POST request is not well-formed multipart/form-data.",
)
MaxPostPreDataLengthExceeded = _error(
    "MaxPostPreDataLengthExceeded",
    400,
    "Your POST request fields preceeding the upload file was too large.",
)
InvalidPolicyDocument = _error(
    "InvalidPolicyDocument",
    400,
    "The content of the form does not meet the conditions specified in the policy document.",
)
IncorrectNumberOfFilesInPostRequest = _error(
    "IncorrectNumberOfFilesInPostRequest",
    400,
    "POST requires exactly one file upload per request.",
)
NotImplementedError_ = _error(
    "NotImplemented",
    501,
    "A header or query you provided implies functionality that is not implemented.",
)
PreconditionFailed = _error(
    "PreconditionFailed",
    412,
    "At least one of the pre-conditions you specified did not hold",
)
InvalidTag = _error("InvalidTag", 400, "The tag provided was not a valid tag.")
BadRequest = _error("BadRequest", 400, "Bad Request")
NoSuchTagSet = _error("NoSuchTagSet", 404, "The TagSet does not exist")
# What AWS answers for a bucket configuration that was never set.
NoSuchBucketPolicy = _error("NoSuchBucketPolicy", 404, "The bucket policy does not exist")
NoSuchLifecycleConfiguration = _error(
    "NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist"
)
ServerSideEncryptionConfigurationNotFoundError = _error(
    "ServerSideEncryptionConfigurationNotFoundError",
    404,
    "The server side encryption configuration was not found",
)
NoSuchWebsiteConfiguration = _error(
    "NoSuchWebsiteConfiguration", 404, "The specified bucket does not have a website configuration"
)
ReplicationConfigurationNotFoundError = _error(
    "ReplicationConfigurationNotFoundError", 404, "The replication configuration was not found"
)
NoSuchPublicAccessBlockConfiguration = _error(
    "NoSuchPublicAccessBlockConfiguration",
    404,
    "The public access block configuration was not found",
)
OwnershipControlsNotFoundError = _error(
    "OwnershipControlsNotFoundError", 404, "The bucket ownership controls were not found"
)
ObjectLockConfigurationNotFoundError = _error(
    "ObjectLockConfigurationNotFoundError",
    404,
    "Object Lock configuration does not exist for this bucket",
)
ServiceUnavailable = _error("ServiceUnavailable", 503, "Please reduce your request rate.")
# The filesystem backend cannot hold a file and a directory under one name; these two
# follow versitygw's names for the same conflicts (documented in docs/backends.md).
ObjectParentIsFile = _error(
    "ObjectParentIsFile",
    409,
    "Object parent already exists as a file; the key cannot be stored on this backend.",
)
ExistingObjectIsDirectory = _error(
    "ExistingObjectIsDirectory",
    409,
    "The key names a directory holding other objects; it cannot be stored on this backend.",
)


class NotModified(S3Error):
    """Not an error document: the web layer answers 304 with no body."""

    code = "NotModified"
    status = 304
    message = "Not Modified"


MalformedACLError = _error(
    "MalformedACLError",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema.",
)
UnresolvableGrantByEmailAddress = _error(
    "UnresolvableGrantByEmailAddress",
    400,
    "The e-mail address you provided does not match any account on record.",
)
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch",
    400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)
# Authentication (s3proxy.auth): AWS's codes, statuses and default messages.
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch",
    403,
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)
InvalidAccessKeyId = _error(
    "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
)
AuthorizationHeaderMalformed = _error(
    "AuthorizationHeaderMalformed", 400, "The authorization header you provided is invalid."
)
AuthorizationQueryParametersError = _error(
    "AuthorizationQueryParametersError",
    400,
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
)
RequestTimeTooSkewed = _error(
    "RequestTimeTooSkewed",
    403,
    "The difference between the request time and the current time is too large.",
)
MissingSecurityHeader = _error(
    "MissingSecurityHeader", 400, "Your request was missing a required header."
)
# The data root's file system refused an operation (see storage/oserrors.py). AWS has
# no such errors. A full disk gets MinIO's code and status (507, which SDKs do not
# retry: more space has to be made first); a read-only root is unavailable for writes
# (503, which SDKs retry: a remount may fix it).
StorageFull = _error(
    "XMinioStorageFull",
    507,
    "The storage has no space left for this request. Delete some objects to proceed.",
)
StorageReadOnly = _error(
    "ServiceUnavailable",
    503,
    "The storage is read-only: it serves reads but accepts no writes now.",
)
