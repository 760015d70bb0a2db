"""Reading a request body within its limits (shared by the API, the pages and the links)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from escalade.runtime.web.answers import HttpError

DRAIN_FACTOR = 16  # an oversize body up to 16x the limit is read and dropped before the 413


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, at most ``limit`` bytes: 413 beyond, 408 when it does not arrive
    within ``timeout``. A client that asked ``Expect: 100-continue`` is refused before it
    sends the body; any other client that is already sending a body up to 16 times the
    limit has it read and dropped first, so it reads the 413 instead of a broken pipe."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        size = int(declared)
        expects = request.headers.get("expect", "").lower() == "100-continue"
        if not expects and size <= DRAIN_FACTOR * limit:
            await _drain(request, timeout)
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


async def _drain(request: Request, timeout: float) -> None:
    async def consume() -> None:
        async for _ in request.stream():
            pass

    try:
        await asyncio.wait_for(consume(), timeout)
    except TimeoutError:
        return  # the 413 goes out anyway; the connection closes
