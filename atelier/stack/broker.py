"""The local broker: Tansu in the foreground, and the click loop's topics created each time it starts.

The bundled Tansu keeps everything in memory (its sqlite and postgres storage are not
compiled in; s3 needs an S3 server), so a broker that restarts has no topics and no
committed offsets. supervisord restarts this program after a crash; it forks a short-lived
helper that creates the topics (atelier.serving.topics) as soon as the broker answers,
then becomes Tansu itself (exec), so that supervisord watches and signals Tansu directly.
Tansu auto-creates a topic that a client asks about, with 4 partitions, and has no setting
against it: the clients never ask it to (the features service's producer sets
allow.auto.create.topics=false; the stream workers' aiokafka clients are patched in
services.stream.internals), so the topics always come back with the launcher's counts.

`python -m atelier.stack.broker TANSU_ARGV...`
"""

from __future__ import annotations

import os
import sys
import time

from atelier.serving.settings import Endpoints
from atelier.serving.topics import Topics, create_topics
from atelier.stack import readiness

CREATE_WITHIN_S = 60.0


def _say(line: str) -> None:
    print(f"atelier.stack.broker: {line}", flush=True)


def create_topics_when_up(bootstrap: str, topics: Topics, within_s: float = CREATE_WITHIN_S) -> bool:
    """Waits for the broker to answer, then creates the missing topics; False when it never could."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            readiness.broker_metadata(bootstrap)
            created = create_topics(bootstrap, topics)
            _say(f"created topics: {', '.join(created)}" if created else "every topic exists")
            return True
        except Exception as error:  # noqa: BLE001 (not up yet, or a create that raced a restart)
            if time.monotonic() > deadline:
                _say(f"could not create the topics within {within_s:.0f}s: {error}")
                return False
            time.sleep(0.2)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m atelier.stack.broker TANSU_ARGV...")
    bootstrap = Endpoints.from_env().broker_bootstrap
    topics = Topics.from_env()
    if os.fork() == 0:
        # The helper is forked twice so that init, not Tansu (which reaps no children), adopts it.
        if os.fork() == 0:
            os._exit(0 if create_topics_when_up(bootstrap, topics) else 1)
        os._exit(0)
    os.wait()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
