"""No cache may keep what the API answers unless a route says otherwise: case details,
candidates, sightings and audit records are for investigators, and a proxy or browser copy
would outlive the key that read them (and a case closed since)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = (b"cache-control", b"no-store")


class NoStoreByDefault:
    """Adds `Cache-Control: no-store` to every HTTP answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == NO_STORE[0] for name, _ in headers):
                    message = {**message, "headers": [*headers, NO_STORE]}
            await send(message)

        await self.app(scope, receive, send_with_policy)


def install(app: FastAPI) -> None:
    app.add_middleware(NoStoreByDefault)
