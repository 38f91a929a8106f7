"""How the functions are served: settings functions-framework's gunicorn takes from us."""

from __future__ import annotations

import gc
import logging
import os
import socket

log = logging.getLogger("flowlens.serving")


def spread_connections(workers: int | None = None) -> bool:
    """Give each gunicorn worker its own listening socket when WORKERS > 1; True if done.

    functions-framework serves through gunicorn, whose workers share one listening socket. A
    uvicorn worker woken by new connections accepts all that are waiting, so keep-alive senders
    that connect at about the same time land on one process while the others idle (31 of 32 in
    bench/ingest.py), and one core does all the work. With gunicorn's `reuse_port` (23.0 and
    later) every worker listens on its own SO_REUSEPORT socket and the kernel spreads new
    connections across them evenly. functions-framework passes gunicorn no options of ours, so
    this sets that setting's default; call it before the server starts (when the function's
    module is imported). With one worker it changes nothing: a lone worker's own socket would
    only add a moment without a listener whenever gunicorn restarts it.
    """
    count = workers if workers is not None else int(os.environ.get("WORKERS", "1") or 1)
    if count < 2 or not hasattr(socket, "SO_REUSEPORT"):
        return False
    try:
        import gunicorn
        import gunicorn.config
    except ImportError:  # no gunicorn (functions-framework serves without it on Windows)
        return False
    gunicorn.config.ReusePort.default = True
    log.info("a listening socket per worker: gunicorn %s reuse_port, %d workers",
             gunicorn.__version__, count)  # fmt: skip
    return True


# The collector's generation thresholds for a function process (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)


def settle_gc() -> None:
    """Collect the young generation every 10,000 container allocations instead of 700.

    Parsing one webhook payload allocates hundreds of containers, so with the default a
    collection ran every delivery or two, found the objects of the deliveries still in flight,
    moved them up and scanned them again with the older generations. py-spy found ~7% of a
    loaded ingest worker in the collector; BENCHMARKS.md has the side-by-side runs. Reference
    counting still frees all garbage without cycles at once, so only cyclic garbage waits
    longer. Call once the function's module is set up.
    """
    gc.set_threshold(*GC_THRESHOLDS)
