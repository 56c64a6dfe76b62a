"""`atelier status`: the launcher's status rows as a table, then the log tail of each failed component."""

from __future__ import annotations

COLUMNS = ("component", "state", "pid", "ports", "restarts", "last exit", "ready", "lag")


def format_status(rows: list[dict[str, str]]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in COLUMNS).rstrip() for row in rows]
    for row in rows:
        if row.get("tail") is not None:
            lines.append(
                f"{row['component']} failed: supervisord gave up restarting it ({row['last exit']}); "
                f"end of {row['log']}:"
            )
            lines += [f"    | {line}" for line in row["tail"].splitlines()]
    return "\n".join(lines)
