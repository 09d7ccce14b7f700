"""The FastAPI application: ``create_app()`` wires settings, engine, cache, limits, routers.

Run with ``podium leaderboard serve`` or ``uvicorn leaderboard.main:create_app --factory``.
Start-up fails, naming ``podium leaderboard migrate``, on a database not at the head revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from leaderboard.api.main import api_router
from leaderboard.cache import LeaderboardCache
from leaderboard.core.config import Settings
from leaderboard.core.db import create_db_engine, is_sqlite
from leaderboard.core.errors import install_error_handlers
from leaderboard.core.headers import SecurityHeadersMiddleware
from leaderboard.core.limits import BodyLimitMiddleware
from leaderboard.core.ratelimit import RateLimits
from leaderboard.migrate import check_current
from leaderboard.web.routes import router as web_router
from leaderboard.writer import SerialWriter, SubmissionWriter

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = create_db_engine(settings.resolved_database_url(),
                              busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        check_current(engine)
        yield
        await app.state.writer.stop()
        engine.dispose()

    app = FastAPI(title="Podium leaderboard", version="0.1.0", lifespan=lifespan,
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None,  # web.routes
                  redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.write_lock = (asyncio.Lock() if is_sqlite(settings.resolved_database_url())
                            else None)
    app.state.writer = (SubmissionWriter(engine=engine, lock=app.state.write_lock,
                                         max_batch=settings.write_batch_max)
                        if settings.group_commit
                        else SerialWriter(engine=engine, lock=app.state.write_lock))
    app.state.cache = LeaderboardCache(settings.leaderboard_cache_entries)
    app.state.rate_limits = RateLimits(
        storage_uri=settings.rate_limit_storage, per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst, write_per_address=settings.write_limit_per_address,
        registration=settings.registration_limit)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(web_router)
    return app
