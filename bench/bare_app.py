"""The baseline for bench/receiver.py: a bare Starlette endpoint that reads the body.

It does what any receiver must do at least (route, read the body, answer 200) and
nothing more, so hookbird's throughput can be stated as a ratio of it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return Response(b'{"status":"accepted"}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/moneybird", receive, methods=["POST"])])
