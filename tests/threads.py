"""Running work in threads at once, each on its own PostgreSQL connection (concurrency tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def run_threads(count: int, work: Callable[[int], object]) -> list[BaseException]:
    """Run ``work(i)`` for ``i`` in ``range(count)``, each in its own thread, all released at
    once by a barrier; the exceptions they raised, for the test to report (``[]`` if none)."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures
