"""Reading a request body within its limits (shared by the API, the pages and the links)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from escalade.runtime.web.answers import HttpError


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes: 413 beyond (refused before it is read
    when the Content-Length says so), 408 when it does not arrive within ``timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the body is {declared} bytes; the limit is {limit}")

    async def collect() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise HttpError(408, "the body did not arrive in time") from None
