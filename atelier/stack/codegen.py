"""Generates the Python stubs and Envoy's descriptor set from proto/.

One reproducible step (`python -m atelier.stack.codegen`): the stubs land in the
top-level `fashion` package at the repository root, the descriptor set in
build/, both git-ignored.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
BUILD_DIR = ROOT / "build"
PROTO_DEPS_DIR = BUILD_DIR / "proto-deps"
DESCRIPTOR_SET = BUILD_DIR / "fashion.binpb"
GOOGLE_API_PROTOS = ("google/api/annotations.proto", "google/api/http.proto", "google/api/httpbody.proto")
# Compiled into the descriptor set so that Envoy transcodes rich error details.
EXTRA_DESCRIPTOR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def _site_packages_root() -> Path:
    """The directory holding googleapis-common-protos' `google/` tree."""
    import google.api.annotations_pb2 as annotations

    return Path(annotations.__file__).resolve().parents[2]


def _well_known_types_root() -> Path:
    return Path(str(resources.files("grpc_tools") / "_proto"))


def project_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))


def _run_protoc(args: list[str]) -> None:
    includes = [f"-I{PROTO_DIR}", f"-I{_site_packages_root()}", f"-I{_well_known_types_root()}"]
    code = protoc.main(["grpc_tools.protoc", *includes, *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}) on: {' '.join(args)}")


def _copy_google_api_protos() -> None:
    for rel in GOOGLE_API_PROTOS:
        target = PROTO_DEPS_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_site_packages_root() / rel, target)


def generate() -> None:
    protos = project_protos()
    out = ROOT / "fashion"
    shutil.rmtree(out, ignore_errors=True)
    BUILD_DIR.mkdir(exist_ok=True)
    _run_protoc([f"--python_out={ROOT}", f"--pyi_out={ROOT}", f"--grpc_python_out={ROOT}", *protos])
    for package in (out, out / "v1"):
        (package / "__init__.py").touch()
    _run_protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR_SET}",
            *protos,
            *EXTRA_DESCRIPTOR_PROTOS,
        ]
    )
    _copy_google_api_protos()


def main() -> None:
    generate()
    print(f"generated fashion/ stubs and {DESCRIPTOR_SET.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
