"""A web page for trying the service: one static page and a small gateway in front of Triton.

``python -m clients.web`` (``make web``) starts a local Triton server with ``face_reenactment``
and the gateway, and prints the page's URL; ``--triton-url`` uses a server already running.
The gateway (:mod:`clients.web.app`) serves the page, checks uploads against the server's own
limits, forwards them over gRPC with :class:`reenact.client.ReenactClient` and streams the
images back as they are made. It keeps nothing: no files, no state between requests. See
docs/web.md.
"""
