"""The FastAPI application: schema upgrade at start, optional in-process dispatcher."""
from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext

from fastapi import Depends, FastAPI

from service import db, settings
from service.api import analyses, catalog, contract, errors, jobs, plots, studies
from service.api.deps import require_reader
from srm_models import __version__
from workers.plugins import load_plugins

log = logging.getLogger("srm_bench.api")


def _disconnect_ray() -> None:
    """Leave Ray while it is still up: at interpreter exit its threads and Tune's hooks race the shutdown."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@contextmanager
def dispatcher_thread(sessions) -> Iterator[None]:
    """Run queued jobs in a background thread while the block lasts (`serve` runs exactly one)."""
    from service.dispatcher import Dispatcher

    dispatcher = Dispatcher(sessions)
    thread = threading.Thread(target=dispatcher.run_forever, name="dispatcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        dispatcher.stop()
        thread.join(timeout=60)
        _disconnect_ray()


def _freeze_startup_objects() -> None:
    """Move everything imported so far (torch, scipy, SQLAlchemy: ~300k objects) out of the garbage
    collector's sight. A full collection walks every tracked object and took 80-160 ms here, a pause
    that lands on whichever request triggers it; frozen objects are never freed, and never walked."""
    gc.collect()
    gc.freeze()


def create_app(database_url: str | None = None, with_dispatcher: bool = False) -> FastAPI:
    """An app bound to one database; `with_dispatcher` also runs queued jobs in a background thread."""
    url = database_url or settings.database_url()
    load_plugins()  # a broken plugin stops the start here, naming itself, not a client's request later

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        db.upgrade(url)
        _freeze_startup_objects()
        with dispatcher_thread(app.state.sessions) if with_dispatcher else nullcontext():
            yield

    app = FastAPI(title="SRM Bench", version=__version__, lifespan=lifespan,
                  description="Benchmark channel-recalibration modules (SRM, SE, GE and more, or your own) with "
                              "cross-validated jobs run on Ray.")
    app.state.sessions = db.session_factory(url)
    errors.install(app)
    contract.install(app)
    for router in (jobs.router, analyses.router, studies.router, plots.router, catalog.router):
        app.include_router(router, prefix="/v1", dependencies=[Depends(require_reader)],
                           responses=contract.errors(401, 422, 503))
    app.include_router(catalog.health_router)
    return app
