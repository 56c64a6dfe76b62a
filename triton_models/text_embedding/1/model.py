"""Triton Python-backend model text_embedding: texts in, L2-normalised sentence embeddings out.

The code is atelier/inference/text_embedding.py (its settings: atelier/inference/settings.py), imported from the
installed atelier package: the local stack's Triton runs the backend stub with the project's
environment, the Triton image has atelier/ on PYTHONPATH (deploy/triton.Dockerfile).
"""

from atelier.inference.text_embedding import TritonPythonModel  # noqa: F401
