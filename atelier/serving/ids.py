"""The ids the public API takes (users, articles, sessions, click events): one alphabet, checked where they enter.

Redis keys are built from ids (`user:{user_id}:recent`, `item:{article_id}`, ...; see
atelier.serving.feature_store.keys), so an id holding the keys' separator `:` could
name another key: article `0117860004:clicks` would read `item:0117860004:clicks`.
An id is therefore 1 to MAX_ID_CHARS characters of ASCII letters, digits and `.`,
`_`, `@`, `-`: no `:`, `|` (the feature store's list separator), white space or
control characters. H&M and synthetic article ids (10 digits), H&M customer ids
(64 hex digits), UUIDs and e-mail-like user names all fit.

Every service checks the ids of its requests (INVALID_ARGUMENT naming the field),
and the stream workers check each click record again before it reaches Redis.
"""

from __future__ import annotations

import re

MAX_ID_CHARS = 128
ALLOWED = "letters, digits and . _ @ -"
_ID = re.compile(r"[A-Za-z0-9._@-]+")


def id_problem(value: str, required: bool = True) -> str | None:
    """Why `value` is not a valid id, or None; an empty value is valid when not `required`."""
    if not value:
        return "must not be empty" if required else None
    if len(value) > MAX_ID_CHARS:
        return f"must be at most {MAX_ID_CHARS} characters"
    if not _ID.fullmatch(value):
        return f"may contain only {ALLOWED}"
    return None


def is_valid_id(value: str) -> bool:
    return id_problem(value) is None
