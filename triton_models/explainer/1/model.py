"""Triton Python-backend model explainer: an article's facts in, one sentence on why it was shown out.

The code is atelier/inference/explainer.py (its settings: atelier/inference/settings.py), imported from the
installed atelier package: the local stack's Triton runs the backend stub with the project's
environment, the Triton image has atelier/ on PYTHONPATH (deploy/triton.Dockerfile).
"""

from atelier.inference.explainer import TritonPythonModel  # noqa: F401
