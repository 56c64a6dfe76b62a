"""Finds the field of a protobuf message that makes it unparseable because of invalid UTF-8.

Python protobuf refuses a whole message when a `string` field holds bytes that are
not UTF-8 (proto3 requires UTF-8), and Envoy's JSON transcoder forwards such bytes
as they came (`GET /v1/search?query=%FF%FE`). To answer which field is wrong, this
walks the wire format against the message's descriptor: length-delimited fields of
type string are decoded, sub-messages are walked in turn.
"""

from __future__ import annotations

from collections import Counter

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# Deeper nesting than this is not walked (protobuf's own parser stops at 100).
MAX_DEPTH = 32

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class _Malformed(ValueError):
    """The bytes are not a protobuf message at all."""


def invalid_utf8_field(data: bytes, descriptor: Descriptor) -> str | None:
    """The path of the first string field whose bytes are not UTF-8 (`click.user_id`,
    `article_ids[2]`; proto field names, as atelier.serving.rpc.FieldViolation), or None:
    none found, or the bytes are not a well-formed message."""
    try:
        return _walk(data, descriptor, "", 0)
    except _Malformed:
        return None


def _walk(data: bytes, descriptor: Descriptor, prefix: str, depth: int) -> str | None:
    occurrences: Counter[int] = Counter()
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            _, position = _varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            end = position + length
            if end > len(data):
                raise _Malformed("truncated field")
            field = descriptor.fields_by_number.get(number)
            if field is not None:
                found = _check(data[position:end], field, _path(prefix, field, occurrences), depth)
                if found:
                    return found
            position = end
        else:  # groups (deprecated, never used here) and invalid wire types
            raise _Malformed(f"wire type {wire_type}")
        if position > len(data):
            raise _Malformed("truncated field")
    return None


def _check(value: bytes, field: FieldDescriptor, path: str, depth: int) -> str | None:
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return path
    elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < MAX_DEPTH:
        return _walk(value, field.message_type, f"{path}.", depth + 1)
    return None


def _path(prefix: str, field: FieldDescriptor, occurrences: Counter[int]) -> str:
    if not field.is_repeated:
        return prefix + field.name
    index = occurrences[field.number]
    occurrences[field.number] += 1
    return f"{prefix}{field.name}[{index}]"


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
