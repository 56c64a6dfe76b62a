"""Triton Python-backend model clip_image: encoded images in, L2-normalised CLIP image embeddings out.

The code is atelier/inference/clip_image.py (its settings: atelier/inference/settings.py), imported from the
installed atelier package: the local stack's Triton runs the backend stub with the project's
environment, the Triton image has atelier/ on PYTHONPATH (deploy/triton.Dockerfile).
"""

from atelier.inference.clip_image import TritonPythonModel  # noqa: F401
