"""twistd plugin: ``twistd -n s3proxy``. Names the tap module by string so that
plugin discovery never imports the application."""

from twisted.application.service import ServiceMaker

s3proxy = ServiceMaker(
    "s3proxy",
    "s3proxy.tap",
    "An S3-compatible REST gateway with filesystem, memory and upstream backends.",
    "s3proxy",
)
