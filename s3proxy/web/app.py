"""The Klein application: S3 requests in, S3 responses out.

Every S3 operation this server knows is listed in OPERATIONS. S3 routes by method,
path level (service, bucket, object) and sub-resource query parameter, which werkzeug
cannot express, and bucket and key must come from the raw request path (werkzeug would
unquote ``%2F`` and merge ``//``). So Klein routes every S3 request to one endpoint
and ``_dispatch`` picks the operation from the table.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from s3proxy.acl import Principal
from s3proxy.auth.credentials import User
from s3proxy.auth.request import SignedRequest
from s3proxy.auth.sigv4 import authenticate
from s3proxy.auth.streaming import ChunkVerifier
from s3proxy.config import Settings
from s3proxy.errors import (
    InternalError,
    InvalidURI,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NotImplementedError_,
    NotModified,
    S3Error,
)
from s3proxy.interfaces import IStorage
from s3proxy.names import is_valid_bucket_name
from s3proxy.observe.admin import AdminResource, admin_name
from s3proxy.observe.monitor import RequestMonitor
from s3proxy.observe.record import AccessRecord
from s3proxy.web import (
    acl_ops,
    attributes_ops,
    bucket_ops,
    cors_ops,
    multipart_ops,
    object_ops,
    post_ops,
    tagging_ops,
    unconfigured_ops,
)
from s3proxy.web.access import (
    authorize_bucket,
    conceal_missing_key,
    principal_for_open_mode,
)
from s3proxy.web.awschunked import ChunkSignatures
from s3proxy.web.checksums import safe_checks
from s3proxy.web.context import S3Context, S3Response
from s3proxy.web.error_doc import error_document, new_request_id
from s3proxy.web.headers import Headers
from s3proxy.web.request import S3Request
from s3proxy.web.vhost import decode_path, host_bucket, path_under, split_virtual_target

Handler = Callable[[S3Context], Awaitable[S3Response]]

# (level, method, sub-resource) -> (operation name, handler)
OPERATIONS: dict[tuple[str, str, str], tuple[str, Handler]] = {
    ("service", "GET", ""): ("ListBuckets", bucket_ops.list_buckets),
    ("bucket", "PUT", ""): ("CreateBucket", bucket_ops.create_bucket),
    ("bucket", "HEAD", ""): ("HeadBucket", bucket_ops.head_bucket),
    ("bucket", "DELETE", ""): ("DeleteBucket", bucket_ops.delete_bucket),
    ("bucket", "GET", ""): ("ListObjects", bucket_ops.list_objects),  # V2 by list-type=2
    ("bucket", "GET", "location"): ("GetBucketLocation", bucket_ops.get_bucket_location),
    ("bucket", "GET", "versioning"): ("GetBucketVersioning", bucket_ops.get_bucket_versioning),
    ("bucket", "POST", "delete"): ("DeleteObjects", bucket_ops.delete_objects),
    ("bucket", "POST", ""): ("PostObject", post_ops.post_object),  # browser form upload
    ("bucket", "GET", "uploads"): ("ListMultipartUploads", multipart_ops.list_multipart_uploads),
    ("bucket", "GET", "acl"): ("GetBucketAcl", acl_ops.get_bucket_acl),
    ("bucket", "PUT", "cors"): ("PutBucketCors", cors_ops.put_bucket_cors),
    ("bucket", "GET", "cors"): ("GetBucketCors", cors_ops.get_bucket_cors),
    ("bucket", "DELETE", "cors"): ("DeleteBucketCors", cors_ops.delete_bucket_cors),
    ("bucket", "OPTIONS", ""): ("PreflightRequest", cors_ops.preflight),
    ("object", "OPTIONS", ""): ("PreflightRequest", cors_ops.preflight),
    ("bucket", "PUT", "acl"): ("PutBucketAcl", acl_ops.put_bucket_acl),
    ("object", "GET", "acl"): ("GetObjectAcl", acl_ops.get_object_acl),
    ("object", "PUT", "acl"): ("PutObjectAcl", acl_ops.put_object_acl),
    ("object", "PUT", ""): ("PutObject", object_ops.put_object),  # CopyObject by header
    ("object", "GET", ""): ("GetObject", object_ops.get_object),
    ("object", "GET", "partNumber"): ("GetObject", object_ops.get_object),
    ("object", "HEAD", ""): ("HeadObject", object_ops.get_object),
    ("object", "HEAD", "partNumber"): ("HeadObject", object_ops.get_object),
    ("object", "DELETE", ""): ("DeleteObject", object_ops.delete_object),
    ("object", "POST", "uploads"): (
        "CreateMultipartUpload",
        multipart_ops.create_multipart_upload,
    ),
    # UploadPartCopy by header
    ("object", "PUT", "uploadId"): ("UploadPart", multipart_ops.upload_part),
    ("object", "GET", "uploadId"): ("ListParts", multipart_ops.list_parts),
    ("object", "POST", "uploadId"): (
        "CompleteMultipartUpload",
        multipart_ops.complete_multipart_upload,
    ),
    ("object", "DELETE", "uploadId"): (
        "AbortMultipartUpload",
        multipart_ops.abort_multipart_upload,
    ),
    ("object", "GET", "tagging"): ("GetObjectTagging", tagging_ops.get_object_tagging),
    ("object", "PUT", "tagging"): ("PutObjectTagging", tagging_ops.put_object_tagging),
    ("object", "DELETE", "tagging"): ("DeleteObjectTagging", tagging_ops.delete_object_tagging),
    ("bucket", "GET", "tagging"): ("GetBucketTagging", tagging_ops.get_bucket_tagging),
    ("bucket", "PUT", "tagging"): ("PutBucketTagging", tagging_ops.put_bucket_tagging),
    ("bucket", "DELETE", "tagging"): ("DeleteBucketTagging", tagging_ops.delete_bucket_tagging),
    ("object", "GET", "attributes"): (
        "GetObjectAttributes",
        attributes_ops.get_object_attributes,
    ),
    # Bucket sub-resources this server never configures (policy, lifecycle, ...).
    **unconfigured_ops.operations(),
}

# Query parameters that select a different operation on the same path, strongest
# first (``?partNumber=1&uploadId=x`` is UploadPart). Any other parameter (boto3's
# x-id, say) does not change the operation.
SUB_RESOURCES = """uploadId uploads delete accelerate acl analytics attributes cors encryption
    intelligent-tiering inventory legal-hold lifecycle location logging metrics
    notification object-lock ownershipControls policy policyStatus publicAccessBlock
    replication requestPayment restore retention select tagging torrent versioning
    versionId versions website partNumber""".split()
KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})
SIGNED_STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"  # also the -TRAILER variant


def split_target(raw_path: bytes, prefix: str) -> tuple[str | None, str | None]:
    """(bucket, key) from the raw request path, under ``prefix`` or at the root."""
    bucket_part, _, key_part = path_under(raw_path, prefix).partition(b"/")
    bucket, key = decode_path(bucket_part), decode_path(key_part)
    return (bucket or None), (key or None) if bucket else None


def parse_query(uri: bytes) -> dict[str, str]:
    _, _, raw = uri.partition(b"?")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidURI() from None
    return dict(pairs)


def error_response(error: S3Error, resource: str, request_id: str) -> S3Response:
    if isinstance(error, NotModified):
        return S3Response(status=304, headers=list(error.headers))
    return S3Response(
        status=error.status,
        headers=list(error.headers),
        body=error_document(error, resource, request_id),
        content_type="application/xml",
        error_code=error.code,
    )


class S3Application:
    app = Klein()
    log = Logger()

    def __init__(
        self,
        storage: IStorage,
        settings: Settings,
        reactor: Any = None,
        users: Mapping[str, User] | None = None,
        monitor: RequestMonitor | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        # None: open mode (any or no signature accepted, nothing enforced).
        self.set_users(users)
        # x-amz-id-2 names the serving host (process), as S3's does.
        self._host_id = base64.b64encode(os.urandom(24)).decode()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        # The access log and the metrics.
        self.monitor = monitor or RequestMonitor()
        # Set once SIGTERM's draining starts: readiness then says 503.
        self.stopping = False
        stats = getattr(storage, "stats", None)
        if callable(stats):  # a read cache in front of the backend
            self.monitor.metrics.watch_cache(stats)

    def set_users(self, users: Mapping[str, User] | None) -> None:
        """Who may sign requests (None: open mode); replaced on SIGHUP."""
        self.users = users
        self.known_emails = {u.email for u in (users or {}).values() if u.email}

    def mark_stopping(self) -> None:
        self.stopping = True

    def admin_resource(self) -> AdminResource:
        """The /-/health, /-/ready and /-/metrics endpoints of this application."""
        return AdminResource(
            self.storage,
            self.monitor.metrics,
            self.settings.prefix,
            self.reactor,
            stopping=lambda: self.stopping,
        )

    def resource(self, admin: bool = True) -> Resource:
        """The S3 API; with ``admin``, also the admin endpoints under ``/-/``."""
        return S3Root(
            self.app.resource(),
            self.admin_resource() if admin else None,
            self.settings.prefix,
        )

    @app.route("/s3", methods=None, branch=False)
    def s3(self, request: S3Request) -> Deferred[None]:
        return Deferred.fromCoroutine(self._serve(request))

    @app.handle_errors(Exception)
    def _last_resort(self, request: IRequest, failure: Failure) -> bytes:
        # Only reached if _serve itself failed; never show Twisted's HTML page.
        self.log.failure("unhandled error", failure)
        request.setResponseCode(500)
        request.setHeader("Content-Type", "application/xml")
        body = error_response(InternalError(), "/", new_request_id()).body
        request.setHeader("Content-Length", str(len(body)))
        return body

    def _context(self, request: S3Request, request_id: str) -> S3Context:
        method = request.method.decode("ascii", "replace").upper()
        raw_headers = {
            k.decode("latin-1"): [v.decode("latin-1") for v in vs]
            for k, vs in request.requestHeaders.getAllRawHeaders()
        }
        ctx = S3Context(
            request=request,
            storage=self.storage,
            settings=self.settings,
            request_id=request_id,
            method=method,
            bucket=None,
            key=None,
            query={},
            headers=Headers(raw_headers),
        )
        virtual = host_bucket(ctx.headers.get("host"), self.settings.virtual_host)
        if virtual is not None:
            ctx.virtual_bucket = virtual
            ctx.bucket, ctx.key = split_virtual_target(request.path, self.settings.prefix, virtual)
        else:
            ctx.bucket, ctx.key = split_target(request.path, self.settings.prefix)
        ctx.query = parse_query(request.uri)
        return ctx

    def _identify(self, ctx: S3Context) -> None:
        """Set who is asking: verify the signature (when users are configured)."""
        ctx.signers, ctx.now = self.users, self.reactor.seconds()
        if self.users is None:
            ctx.principal = principal_for_open_mode(ctx)
            return
        ctx.enforce = True
        ctx.known_emails = self.known_emails
        if ctx.operation == "PreflightRequest":  # browsers never sign a preflight
            return
        signed = SignedRequest(
            method=ctx.method,
            raw_path=ctx.request.path,
            raw_query=ctx.request.uri.partition(b"?")[2],
            headers=ctx.headers,
            now=ctx.now,
            virtual_bucket=ctx.virtual_bucket,
        )
        result = authenticate(
            signed, self.users, prefix=self.settings.prefix, region=self.settings.region
        )
        if result is None:
            ctx.principal = Principal(None)
            return
        ctx.auth = result
        user = result.user
        ctx.principal = Principal(user.user_id, user.display_name, user.email)

    def _chunk_signatures(self, ctx: S3Context) -> ChunkSignatures | None:
        """How to check the chunks of a signed streaming (aws-chunked) upload."""
        if ctx.auth is not None and ctx.auth.payload.startswith(SIGNED_STREAMING):
            return ChunkVerifier(ctx.auth)
        return None

    def _route(self, ctx: S3Context) -> tuple[str, str, Handler | None]:
        """(level, sub-resource, handler); names the operation before the signature
        is checked, so that the access log says what a refused request asked for."""
        level = "service" if ctx.bucket is None else "bucket" if ctx.key is None else "object"
        subresource = next((q for q in SUB_RESOURCES if q in ctx.query), "")
        if ctx.method == "OPTIONS":  # a preflight, whatever operation it is for
            subresource = ""
        found = OPERATIONS.get((level, ctx.method, subresource))
        if found is None:
            return level, subresource, None
        ctx.operation, handler = found
        return level, subresource, handler

    def _dispatch(self, ctx: S3Context, route: tuple[str, str, Handler | None]) -> Handler:
        level, subresource, handler = route
        if handler is None:
            if subresource or ctx.method not in KNOWN_METHODS:
                raise NotImplementedError_()
            raise MethodNotAllowed(Method=ctx.method, ResourceType=level.upper())
        if ctx.bucket is not None and ctx.operation != "CreateBucket":
            # Never hand a name no bucket can have to a backend.
            if not is_valid_bucket_name(ctx.bucket):
                raise NoSuchBucket(BucketName=ctx.bucket)
        return handler

    async def _serve(self, request: S3Request) -> None:
        request_id = new_request_id()
        record = self.monitor.begin(request, request_id)
        request.setHeader("x-amz-request-id", request_id)
        request.setHeader("x-amz-id-2", self._host_id)
        request.setHeader("Server", "s3proxy")
        request.defaultContentType = None
        resource = "/"
        ctx: S3Context | None = None
        try:
            ctx = self._context(request, request_id)
            record.context = ctx
            resource = ctx.resource
            route = self._route(ctx)
            self._identify(ctx)
            handler = self._dispatch(ctx, route)
            checks, error = safe_checks(ctx.headers)
            if error is not None:
                raise error
            if checks is not None:
                request.body.check_with(checks)
            request.body.arm(self._chunk_signatures(ctx))
            await authorize_bucket(ctx)
            try:
                response = await handler(ctx)
            except NoSuchKey:
                await conceal_missing_key(ctx)
                raise
        except CancelledError:
            return  # the client went away; the handler cleaned up
        except S3Error as e:
            response = error_response(e, resource, request_id)
        except Exception:
            self.log.failure("internal error serving {uri}", uri=request.uri[:200])
            response = error_response(InternalError(), resource, request_id)
        cors = await cors_ops.actual_request_headers(ctx) if ctx is not None else []
        response.headers += cors
        if response.pending is not None:
            response = await self._await_pending(request, response, resource, request_id, cors)
        record.error_code = response.error_code
        await self._send(request, response, record)

    async def _await_pending(
        self,
        request: S3Request,
        response: S3Response,
        resource: str,
        request_id: str,
        cors: list[tuple[str, str]],
    ) -> S3Response:
        """Wait for a long operation. If it ends soon, answer as usual (errors with
        their own status). Otherwise answer 200 now, send a space every few seconds
        so the client does not time out, and then the XML result, which may be an
        <Error> document (as S3 does for CompleteMultipartUpload)."""
        assert response.pending is not None
        # We wait on ``ended`` (which never fails), not on the operation itself, so a
        # client going away cancels the wait but never interrupts the operation.
        outcome: list[object] = []
        ended: Deferred[None] = Deferred()

        def record(result: object) -> None:
            if isinstance(result, Failure) and not isinstance(result.value, S3Error):
                # Logged here: the client may be gone by the time anyone reads it.
                self.log.failure("internal error in a long operation", result)
            outcome.append(result)
            ended.callback(None)

        Deferred.fromCoroutine(response.pending).addBoth(record)
        if await fired_within(ended, self.settings.keepalive_delay, self.reactor):
            result = self._pending_result(outcome[0], resource, request_id)
            result.headers += cors
            return result
        await request.body.drain()
        request.setResponseCode(200)
        for name, value in cors:
            request.responseHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        request.setHeader("Content-Type", "application/xml")
        request.write(b" ")
        keepalive = LoopingCall(request.write, b" ")
        keepalive.clock = self.reactor
        keepalive.start(self.settings.keepalive_interval, now=False)
        try:
            await ended
        finally:
            keepalive.stop()
        result = self._pending_result(outcome[0], resource, request_id)
        body = result.body
        if not request._disconnected:
            # After the spaces, an XML declaration would no longer be at the start.
            if body.startswith(b"<?xml"):
                body = body.split(b"?>", 1)[1].lstrip()
            request.write(body)
            request.finish()
        return S3Response(status=0, error_code=result.error_code)

    def _pending_result(self, result: object, resource: str, request_id: str) -> S3Response:
        if isinstance(result, bytes):
            return S3Response(body=result, content_type="application/xml")
        assert isinstance(result, Failure)
        if isinstance(result.value, S3Error):
            return error_response(result.value, resource, request_id)
        return error_response(InternalError(), resource, request_id)

    async def _send(self, request: S3Request, response: S3Response, record: AccessRecord) -> None:
        if response.status == 0 or request.finished:
            return  # already answered
        if not request.body.complete and request.body.failure is None:
            # A handler that did not read the body: drop it, so the connection stays
            # in step; a client disconnect during that is a CancelledError.
            try:
                await request.body.drain()
            except CancelledError:
                pass
        if request._disconnected:
            if response.reader is not None:
                response.reader.close()
            return
        request.setResponseCode(response.status)
        for name, value in response.headers:
            request.responseHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        if response.content_type is not None:
            request.setHeader("Content-Type", response.content_type)
        reader = response.reader
        if reader is None:
            if response.status not in (204, 304):
                request.setHeader("Content-Length", str(len(response.body)))
            request.write(response.body)
            request.finish()
            return
        request.setHeader("Content-Length", str(response.length))
        if request.method == b"HEAD" or response.length == 0:
            reader.close()
            request.write(b"")
            request.finish()
            return
        try:
            await reader.start(request)
        except CancelledError:
            return
        except Exception:
            # The headers are out: a short body must not look complete.
            self.log.failure("reading {uri} failed mid-response", uri=request.uri[:200])
            record.failed_midway = True
            transport: Any = request.channel and request.channel.transport
            if transport is not None:
                transport.abortConnection()
            return
        if not request._disconnected:
            request.finish()


def fired_within(d: Deferred[Any], seconds: float, clock: Any) -> Deferred[bool]:
    """Fires with True once ``d`` has a result, or with False after ``seconds``."""
    out: Deferred[bool] = Deferred()

    def timeout() -> None:
        if not out.called:
            out.callback(False)

    call = clock.callLater(seconds, timeout)

    def fired(result: Any) -> Any:
        if call.active():
            call.cancel()
        if not out.called:
            out.callback(True)
        return result

    d.addBoth(fired)
    return out


class S3Root(Resource):
    """Sends every request to the Klein endpoint ``/s3`` without letting twisted.web or
    werkzeug interpret the path (the S3 handlers read the raw path themselves)."""

    isLeaf = True

    def __init__(
        self, klein_resource: Resource, admin: Resource | None = None, prefix: str = ""
    ) -> None:
        super().__init__()
        self._klein = klein_resource
        self._admin = admin
        self._prefix = prefix

    def render(self, request: server.Request) -> Any:
        if self._admin is not None and admin_name(request.path, self._prefix) is not None:
            return self._admin.render(request)
        request.prepath = []
        request.postpath = [b"s3"]
        return self._klein.render(request)
