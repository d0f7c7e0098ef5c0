"""The emulator's ASGI application: routers, error handlers and Polar's middleware."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from polar_emulator import control
from polar_emulator.config import EmulatorConfig
from polar_emulator.domain.store import Store
from polar_emulator.errors import ApiError
from polar_emulator.hosted import routes as hosted_routes
from polar_emulator.middleware import PolarMiddleware
from polar_emulator.oauth import routes as oauth_routes
from polar_emulator.resources import ROUTERS
from polar_emulator.webhooks import routes as webhook_routes


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.body is None:
        return Response(status_code=exc.status, headers=exc.headers)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = []
    for err in exc.errors():
        item = {k: err[k] for k in ("type", "loc", "msg", "input") if k in err}
        if "ctx" in err:
            item["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        detail.append(item)
    return JSONResponse(
        jsonable_encoder({"error": "RequestValidationError", "detail": detail}), status_code=422
    )


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    config = config or EmulatorConfig()
    store = Store(config=config)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Polar (local)")
    app.state.store = store
    app.state.config = config
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    app.include_router(control.router)
    app.include_router(oauth_routes.router)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(webhook_routes.router)
    app.include_router(hosted_routes.router)
    app.add_middleware(PolarMiddleware, store=store)
    return app
