"""The release this code is: bump RELEASE_VERSION with every change you ship.

It is what the `version` field of every response reports, next to the Lambda version number
that served the request.
"""

RELEASE_VERSION = "1.0.0"
RELEASE_MESSAGE = "Hello from Lambda - safe deployments with canary and blue-green releases"
