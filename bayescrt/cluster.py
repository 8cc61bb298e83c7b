"""A ``dask.distributed`` client for ``scheduler=`` (an address or a Client), closed after use if opened here."""

from __future__ import annotations

import contextlib

from .errors import SpecError


@contextlib.contextmanager
def connect(scheduler):
    """Yield a Client for ``scheduler``: the one given, or one opened to the address and closed on exit."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise SpecError("scheduler= needs dask.distributed: pip install 'bayescrt[dask]'") from exc
    if isinstance(scheduler, Client):
        yield scheduler
        return
    check(scheduler)
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SpecError(f"scheduler={scheduler!r}: no dask.distributed scheduler answered there ({exc}); "
                        "start one (dask scheduler) or give the address it prints") from exc
    try:
        yield client
    finally:
        client.close()


def check(scheduler) -> None:
    """Refuse what cannot be a scheduler (before any work): an address is non-empty text, else a Client."""
    if type(scheduler).__name__ == "Client" and type(scheduler).__module__.startswith("distributed"):
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise SpecError(f"scheduler={scheduler!r}: give the address of a dask.distributed scheduler "
                        "(e.g. 'tcp://host:8786') or a distributed.Client")
