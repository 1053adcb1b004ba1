"""The local backend's request log records every request once, however its response ended."""

from __future__ import annotations

import gc

from xr_openeo.testing.requestlog import _CountingIterable


class Body:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self):
        yield b"ab"
        yield b"cde"

    def close(self) -> None:
        self.closed = True


def counting(body, done):
    return _CountingIterable(body, keep=lambda: True, done=lambda sent, chunks: done.append((sent, list(chunks))))


def test_a_body_sent_whole_is_recorded_at_its_end_and_once():
    done: list = []
    body = Body()
    it = counting(body, done)
    assert list(it) == [b"ab", b"cde"]
    assert done == [(5, [b"ab", b"cde"])]  # before close(): a server may never get to call it
    it.close()
    assert done == [(5, [b"ab", b"cde"])] and body.closed


def test_a_body_abandoned_half_way_is_recorded_with_what_went_out():
    done: list = []
    it = counting(Body(), done)
    chunks = iter(it)
    assert next(chunks) == b"ab"
    del chunks  # the server's write failed: the client went away
    gc.collect()
    assert done == [(2, [b"ab"])]
    it.close()
    assert len(done) == 1


def test_a_body_closed_unread_is_recorded():
    done: list = []
    body = Body()
    counting(body, done).close()
    assert done == [(0, [])] and body.closed
