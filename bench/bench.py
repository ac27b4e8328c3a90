"""Requests per second of generate and decrypt over mTLS keep-alive, for 1 and 2 workers.

Starts real ``kes-flask server`` processes on a temporary FS keystore. Load comes from separate
client processes, each with one kept-alive TLS connection (API-key certificate, as MinIO uses)
sending pre-built chunked requests, so client-side Python costs as little as possible. Besides
req/s it prints the server's CPU time per request (from /proc), which depends far less on what
else the machine is doing. Prints figures; asserts nothing.

    python bench/bench.py [--seconds 5] [--clients 4] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.kes_server import PKI, KesServer, config_yaml

CONTEXT = b'{"my-bucket":"my-bucket/path/to/object"}'
TICKS = os.sysconf("SC_CLK_TCK")


def chunked_post(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n"
        "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n\r\n"
    )
    return head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def read_response(tls, buffer: bytearray) -> int:
    while b"\r\n\r\n" not in buffer:
        buffer += tls.recv(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += tls.recv(65536)
    buffer[:] = rest[length:]
    return int(head.split(b" ", 2)[1])


def client_process(server: KesServer, request: bytes, stop_at: float, results) -> None:
    context = server.tls_context("admin")
    latencies = []
    with socket.create_connection(("127.0.0.1", server.port)) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            buffer = bytearray()
            while (started := time.perf_counter()) < stop_at:
                tls.sendall(request)
                if read_response(tls, buffer) != 200:
                    raise RuntimeError("request failed")
                latencies.append(time.perf_counter() - started)
    results.put(latencies)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def run(
    server: KesServer, request: bytes, seconds: float, clients: int
) -> tuple[float, float, list[float]]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = server.worker_pids()
    cpu_before, began = cpu_seconds(workers), time.monotonic()
    stop_at = time.perf_counter() + seconds
    procs = [
        context.Process(target=client_process, args=(server, request, stop_at, results))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    latencies = sorted(x for _ in procs for x in results.get())
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - began
    cpu = cpu_seconds(workers) - cpu_before
    return len(latencies) / elapsed, cpu / max(1, len(latencies)), latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--clients", type=int, default=4, help="client processes (one connection each)"
    )
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kes-bench-") as tmp:
        pki = PKI.create(Path(tmp))
        print(
            f"kes-flask bench: {args.clients} client processes on keep-alive mTLS connections "
            f"(Ed25519 API-key cert), {args.seconds:.0f} s per run, {os.cpu_count()} CPUs"
        )
        columns = ("req/s", "p50 ms", "p99 ms")
        print(
            f"{'workers':>7}  {'operation':<9} "
            + " ".join(f"{c:>7}" for c in columns)
            + f" {'server CPU/req':>15}"
        )
        for workers in (1, 2):
            workdir = Path(tmp) / f"w{workers}"
            workdir.mkdir()
            server = KesServer(
                workdir,
                pki,
                config_yaml(pki, str(workdir / "keys")),
                workers=workers,
                env={"KES_FLASK_THREADS": str(args.threads)},
            )
            server.start()
            try:
                admin = server.client("admin")
                admin.create_key("bench-key")
                dek = admin.generate_key("bench-key", CONTEXT)
                admin.close()
                context = b64encode(CONTEXT).decode()
                requests = {
                    "generate": chunked_post(
                        "/v1/key/generate/bench-key", json.dumps({"context": context}).encode()
                    ),
                    "decrypt": chunked_post(
                        "/v1/key/decrypt/bench-key",
                        json.dumps(
                            {"ciphertext": b64encode(dek.ciphertext).decode(), "context": context}
                        ).encode(),
                    ),
                }
                for operation, request in requests.items():
                    run(server, request, 1.0, args.clients)  # warm-up: caches, TLS sessions
                    rate, cpu, latencies = run(server, request, args.seconds, args.clients)
                    p50 = statistics.median(latencies) * 1000
                    p99 = latencies[int(len(latencies) * 0.99)] * 1000
                    figures = f"{rate:>7.0f} {p50:>7.2f} {p99:>7.2f} {cpu * 1e6:>12.0f} µs"
                    print(f"{workers:>7}  {operation:<9} {figures}")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
