"""Deployment of the production image (docs/deployment.md).

- :mod:`reenact.deploy.tool` — ``python -m reenact.deploy build|run|wait|logs|stop``: build the
  image and run it with a GPU through the Docker SDK (the ``docker`` package, imported there
  only);
- :mod:`reenact.deploy.entrypoint` — the image's entrypoint: it closes the admin APIs of
  tritonserver to everyone but the supervisor and starts the supervisor (standard library only).
"""
