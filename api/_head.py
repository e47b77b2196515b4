"""``HEAD`` on every readable resource: the ``GET`` it stands for, without the body.

FastAPI's ``@router.get`` routes answer ``HEAD`` with 405. Rather than declare every route
twice, :class:`HeadAsGet` hands the application a ``GET`` and sends the client only the
status and headers of its answer (``Content-Length`` included, as HTTP asks), then an
empty body. Authentication, roles and errors are those of the ``GET``.

A stream that never ends (``/events``) ends for ``HEAD`` as soon as its headers are sent:
the response is complete, so the server tells the application the client has gone
(ASGI: ``receive`` returns ``http.disconnect`` once the response is sent).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: ``HEAD`` is served as ``GET`` with the body dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_head(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await send({key: value for key, value in message.items() if key != "trailers"})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            # Every body (and anything else) that follows is the GET's, not ours to send.

        # A copy: the server keeps its own scope, in which the request is still a HEAD.
        await self.app({**scope, "method": "GET"}, receive, send_head)
