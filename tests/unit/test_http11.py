"""The event-loop worker's HTTP/1.1 parser: strict framing, bounded sizes, incremental bodies."""

from __future__ import annotations

import pytest

from kes_flask.server.http11 import (
    MAX_HEAD,
    BodyReader,
    ProtocolError,
    Request,
    head_end,
    parse_head,
)

GO_HEAD = (
    b"POST /v1/key/generate/my-key?enclave=x HTTP/1.1\r\nHost: 127.0.0.1:7373\r\n"
    b"User-Agent: Go-http-client/1.1\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
)


def parse(data: bytes) -> Request:
    end = head_end(data)
    assert end > 0
    return parse_head(data[: end - 4])


def status_of(data: bytes) -> int:
    with pytest.raises(ProtocolError) as info:
        end = head_end(data)
        if end > 0:
            parse_head(data[: end - 4])
    return info.value.status


def test_a_go_client_head():
    request = parse(GO_HEAD)
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v1/key/generate/my-key",
        "enclave=x",
    )
    assert request.chunked and request.content_length is None and request.keep_alive
    assert request.header("content-type") == "application/json"


def test_keep_alive_rules():
    assert not parse(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive
    assert not parse(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").keep_alive
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive


def test_absolute_form_is_routed_by_its_path():
    assert parse(b"GET https://kes:7373/v1/status HTTP/1.1\r\n\r\n").path == "/v1/status"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /v1/status HTTP/1.1\nHost: x\n\n", 400),  # LF only: refused before the end
        (b"GET /v1/status HTTP/1.1\rHost: x\r\r", 400),  # CR only
        (b"GET /v1/status HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET /v1/status HTTP/1.1\r\nBad Header: y\r\n\r\n", 400),
        (b"GET /v1/status HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"b" * MAX_HEAD, 431),  # never terminated, too big
    ],
)
def test_malformed_heads(data: bytes, status: int):
    assert status_of(data) == status


def test_an_incomplete_head_waits_for_more():
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r") == -1
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") > 0


def chunked_request() -> Request:
    return parse(GO_HEAD)


def test_chunked_body_in_one_piece_and_byte_by_byte():
    data = b'12\r\n{"context":"e30="}\r\n0\r\n\r\nNEXT'
    reader, buffer = BodyReader(chunked_request(), 100, 100), bytearray(data)
    assert reader.feed(buffer)
    assert reader.body() == b'{"context":"e30="}' and buffer == b"NEXT"
    reader, buffer = BodyReader(chunked_request(), 100, 100), bytearray()
    done = False
    for byte in data[:-4]:
        buffer.append(byte)
        done = reader.feed(buffer)
    assert done and reader.body() == b'{"context":"e30="}'


def test_chunked_body_with_extensions_and_trailers():
    data = b"2;ext=1\r\n{}\r\n3\r\n   \r\n0\r\nX-Trailer: y\r\n\r\n"
    reader = BodyReader(chunked_request(), 100, 100)
    assert reader.feed(bytearray(data)) and reader.body() == b"{}   "


@pytest.mark.parametrize(
    "data",
    [
        b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        b"1" * 100 + b"\r\n",
        b'12\n{"context":"e30="}\n0\n\n',
        b"2\r\n{}XX0\r\n\r\n",
        b"zz\r\n",
        b"1" * 2000,  # a size line that never ends
    ],
)
def test_broken_chunked_framing_is_refused_at_once(data: bytes):
    with pytest.raises(ProtocolError) as info:
        BodyReader(chunked_request(), 100, 100).feed(bytearray(data))
    assert info.value.status == 400


def test_oversized_bodies_are_kept_up_to_the_limit_then_overflow():
    request = parse(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n")
    reader = BodyReader(request, 10, 100)
    assert reader.feed(bytearray(b"x" * 50)) and reader.body() == b"x" * 10
    assert not reader.overflow
    reader = BodyReader(chunked_request(), 10, 20)
    assert reader.feed(bytearray(b"40\r\n" + b"x" * 64)) and reader.overflow
