"""Model code that runs inside Triton's Python backend: each model of triton_models/ is a thin
``model.py`` that imports its ``TritonPythonModel`` from here.

- ``signatures``: each model's Triton name and tensor names, declared once (light: the services import it).
- ``settings``: each model's settings, as pydantic-settings models (light, pydantic only).
- ``text_embedding``, ``reranker``, ``clip_image``, ``clip_text``: the models (torch, transformers);
  their pure helpers and encoders run without Triton too (unit tests, training, benchmarks).
- ``triton_model``: the python_backend skeleton every model shares (initialize, execute).
- ``request_batch``, ``clip_config``: helpers the models share.

Triton's Python backend runs Python 3.10 in the container image (deploy/triton.Dockerfile): the code
here, and what it imports of atelier (atelier.serving.settings), stays importable there.
"""
