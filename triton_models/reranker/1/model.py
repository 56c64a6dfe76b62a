"""Triton Python-backend model reranker: (query, passage) pairs in, cross-encoder relevance out.

The code is atelier/inference/reranker.py (its settings: atelier/inference/settings.py), imported from the
installed atelier package: the local stack's Triton runs the backend stub with the project's
environment, the Triton image has atelier/ on PYTHONPATH (deploy/triton.Dockerfile).
"""

from atelier.inference.reranker import TritonPythonModel  # noqa: F401
