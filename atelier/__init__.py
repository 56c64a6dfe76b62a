"""Atelier's shared Python code, split by role:

- ``atelier.serving``: the libraries the services import (settings, gRPC bootstrap, clients of
  Triton/Milvus/Redis/Kafka, the feature store, resilience, telemetry).
- ``atelier.offline``: tools run outside the request path (catalogue load, model training, evaluation).
- ``atelier.stack``: the local stack (launcher, supervisor, the real servers' runners, code generation).

``atelier.cli`` is the ``atelier`` command over all three.
"""
