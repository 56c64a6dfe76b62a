"""What reflection at the edge describes: only what Envoy routes.

Envoy sends reflection to the search service, which serves it from a descriptor pool of its own:
the public services' files with each service cut down to its routed methods, those with a REST
binding (`google.api.http`; exactly the methods envoy.yaml.tmpl routes). A service left with no
method (RankerService) and a method without a binding (FeaturesService.BatchGetItemSignals) are
not described; the internal services describe themselves in full on their own ports.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor


def routed(method: MethodDescriptor) -> bool:
    return method.GetOptions().HasExtension(annotations_pb2.http)


def public_methods(service: ServiceDescriptor) -> list[str]:
    return [method.name for method in service.methods if routed(method)]


def public_pool(
    files: Iterable[FileDescriptor], whole: Iterable[FileDescriptor] = ()
) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A pool holding `files` (and what they import) with only their routed methods, and `whole`
    (health, reflection: routed whole) as they are; and the names of the public services in `files`."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    services: list[str] = []

    def add(file: FileDescriptor, cut: bool = True) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        kept = []
        for service in proto.service:
            described = file.services_by_name[service.name]
            names = set(public_methods(described) if cut else (method.name for method in described.methods))
            methods = [method for method in service.method if method.name in names]
            if methods:
                del service.method[:]
                service.method.extend(methods)
                kept.append(service)
                if cut:
                    services.append(f"{file.package}.{service.name}")
        del proto.service[:]
        proto.service.extend(kept)
        pool.Add(proto)
        added.add(file.name)

    for file in whole:
        add(file, cut=False)
    for file in files:
        add(file)
    return pool, services
