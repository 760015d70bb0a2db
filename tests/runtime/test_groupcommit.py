"""Group commit: the events of concurrent requests share one transaction of the engine.

Orderings, not timings: while the test holds the engine, requests queue and none is
answered; once it lets go, they are applied in as few batches as the queue allows,
each request answered with its own events' outcomes after the commit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine, Outcome, intake
from escalade.runtime.groupcommit import GroupCommit
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical
from tests.runtime.test_server import Running, http, serve, wait_for  # noqa: F401  (fixture)

Submit = Callable[[list[Any]], list[Outcome]]


@pytest.fixture
def held(tmp_path: Path, pack: dict[str, Any]) -> Iterator[tuple[Engine, threading.Lock]]:
    """An engine on a file store, and the lock that holds it."""
    store = SQLiteStore(str(tmp_path / "g.sqlite"))
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    yield engine, threading.Lock()
    store.close()


def group_of(engine: Engine, lock: threading.Lock, max_batch: int = 256) -> GroupCommit:
    @contextmanager
    def hold() -> Iterator[Engine]:
        with lock:
            yield engine

    return GroupCommit(hold, max_batch)


def submitted(
    group: GroupCommit, requests: list[list[Any]]
) -> tuple[list[threading.Thread], dict[int, Any]]:
    """A thread per request, started one after another (each waits for the one before
    to queue); the answers (outcomes or the exception) by request."""
    answers: dict[int, Any] = {}

    def post(n: int) -> None:
        try:
            answers[n] = group.submit(requests[n])
        except Exception as exc:
            answers[n] = exc

    threads = []
    for n in range(len(requests)):
        thread = threading.Thread(target=post, args=(n,))
        thread.start()
        threads.append(thread)
        if n == 0:
            wait_for(lambda: group._leading, "the first request to lead")
        else:
            wait_for(lambda n=n: len(group._queue) == n, f"request {n} to queue")
    return threads, answers


def test_queued_requests_share_one_commit_and_each_gets_its_own_outcomes(
    held: tuple[Engine, threading.Lock],
) -> None:
    engine, lock = held
    group = group_of(engine, lock)
    requests = [[critical(f"T{n}", f"e{n}")] for n in range(6)]
    requests[3] = [critical("T3", "e3"), b"{not json", critical("T1", "e1")]
    store = engine.store
    assert isinstance(store, SQLiteStore)
    commits = store.commits
    with lock:  # the engine is busy: the first request leads and waits, the others queue
        threads, answers = submitted(group, requests)
        assert answers == {}  # nobody is answered before the commit
    for thread in threads:
        thread.join()
    assert group.batches == 2 and store.commits - commits == 2
    assert [o.status for o in answers[0]] == ["applied"]
    assert [o.status for o in answers[3]] == ["applied", "dead_letter", "duplicate"]
    assert all(answers[n][0].ticket == f"T{n}" for n in range(6))
    assert audit.verify(store).ok


def test_a_batch_is_bounded_and_whole_requests_go_together(
    held: tuple[Engine, threading.Lock],
) -> None:
    engine, lock = held
    group = group_of(engine, lock, max_batch=3)
    requests = [[critical(f"T{n}-{k}", f"e{n}-{k}") for k in range(2)] for n in range(5)]
    with lock:
        threads, answers = submitted(group, requests)
    for thread in threads:
        thread.join()
    assert group.batches == 5  # two events each: one request per batch of at most three
    assert all([o.status for o in answers[n]] == ["applied"] * 2 for n in range(5))


def test_an_event_that_raises_fails_alone(
    held: tuple[Engine, threading.Lock], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, lock = held
    real = intake.chain.route

    def route(rt: Any, ticket: str, *args: Any) -> Any:
        if ticket == "T2":
            raise RuntimeError("a bug")
        return real(rt, ticket, *args)

    monkeypatch.setattr(intake.chain, "route", route)
    group = group_of(engine, lock)
    with lock:
        threads, answers = submitted(group, [[critical(f"T{n}", f"e{n}")] for n in range(4)])
    for thread in threads:
        thread.join()
    assert [answers[n][0].status for n in range(4)] == ["applied", "applied", "error", "applied"]


def test_a_batch_that_cannot_take_the_engine_raises_in_each_request(
    held: tuple[Engine, threading.Lock],
) -> None:
    engine, _ = held

    @contextmanager
    def busy() -> Iterator[Engine]:
        raise TimeoutError("the engine stayed busy")
        yield engine  # pragma: no cover

    group = GroupCommit(busy)
    with pytest.raises(TimeoutError):
        group.submit([critical("T1", "e1")])
    assert not engine.store.has_event("e1")
    assert not group._leading


def test_a_request_alone_is_applied_in_its_own_thread_at_once(
    held: tuple[Engine, threading.Lock],
) -> None:
    engine, lock = held
    threads: list[threading.Thread] = []

    @contextmanager
    def hold() -> Iterator[Engine]:
        threads.append(threading.current_thread())
        with lock:
            yield engine

    group = GroupCommit(hold)
    assert [o.status for o in group.submit([critical("T1", "e1")])] == ["applied"]
    assert threads == [threading.current_thread()] and group.batches == 1


def test_concurrent_posts_to_serve_are_committed_together(
    serve: Callable[..., Running],  # noqa: F811
) -> None:
    running = serve()
    server = running.server
    store = running.engine.store
    answers: dict[int, tuple[int, Any]] = {}

    def post(n: int) -> None:
        body = json.dumps(critical(f"T{n}", f"e{n}")).encode()
        status, _, raw = http(
            server.url + "/events",
            method="POST",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        answers[n] = (status, json.loads(raw))

    post(0)  # the first request checks that a pack is active (with the engine's lock)
    batches = server.group.batches
    with server.lock:  # the engine is busy: the requests queue behind the one leading
        threads = [threading.Thread(target=post, args=(n,)) for n in range(1, 6)]
        for thread in threads:
            thread.start()
        wait_for(lambda: server.group._leading and len(server.group._queue) == 4, "the queue")
        assert list(answers) == [0]
    for thread in threads:
        thread.join()
    assert {n: (s, body["outcome"], body["ticket"]) for n, (s, body) in answers.items()} == {
        n: (200, "applied", f"T{n}") for n in range(6)
    }
    assert server.group.batches - batches == 2  # the leader's own, then the four queued
    assert audit.verify(store).ok
