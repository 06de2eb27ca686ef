"""The command-line options of the access log and the admin endpoints, and the
services they add to a serving process."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.python import usage
from twisted.web import server

from s3proxy.observe.jsonlog import use_log_format_for_twistd
from s3proxy.services import ListeningService

LOG_FORMATS = ("text", "json")

OBSERVABILITY_PARAMETERS: list[list[Any]] = [
    [
        "log-format",
        None,
        "text",
        "Log format: text (one readable line per event) or json (one JSON object "
        "per line, in the log file or on stdout).",
    ],
    [
        "admin-listen",
        None,
        None,
        "Serve /-/health, /-/ready and /-/metrics only on this Twisted endpoint "
        "(e.g. tcp:9100:interface=127.0.0.1) instead of beside the S3 API.",
    ],
]


def check_observability_options(options: usage.Options) -> None:
    """Validate the options; with --log-format json, have twistd log JSON lines."""
    if options["log-format"] not in LOG_FORMATS:
        raise usage.UsageError("--log-format must be text or json")
    if options["admin-listen"] and options["workers"] > 1:
        raise usage.UsageError(
            "--admin-listen cannot be combined with --workers: use /-/ on the API port"
        )
    twistd = options.parent
    if twistd is not None and not twistd.get("logger") and not twistd.get("syslog"):
        # twistd builds its log observer after parsing options and before making the
        # service: its ``logger`` setting is the one hook that replaces its observer
        # rather than adding a second one. Ours writes in batches (logtarget).
        use_log_format_for_twistd(twistd, options["log-format"])


def add_admin_listener(
    options: usage.Options, parent: MultiService, admin: Any, reactor: Any
) -> None:
    """With --admin-listen, a plain Site that serves only the admin resource."""
    if not options["admin-listen"]:
        return
    site = server.Site(admin, reactor=reactor)
    site.displayTracebacks = False
    # One health probe every few seconds is no access-log material.
    site.log = lambda request: None  # type: ignore[method-assign]
    endpoint = serverFromString(reactor, options["admin-listen"])
    ListeningService(endpoint, site, options["admin-listen"]).setServiceParent(parent)
