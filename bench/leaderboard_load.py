"""Load test of the leaderboard API: reads, and concurrent idempotent writes on two write paths.

1. Seeds N accepted submissions (default 10,000) straight into a fresh database (through the
   ORM, in one transaction): a SQLite file in a temporary PODIUM_HOME, or the PostgreSQL
   database of ``--database-url`` (its public schema is dropped first: a throw-away one).
2. Starts uvicorn (one worker, the way ``podium leaderboard serve`` runs) on loopback.
3. Reads (group-commit server only): C keep-alive clients GET leaderboards (a few
   sort/filter/page variants) for D seconds; requests/s, p50/p90/p99 latency, statuses.
4. Writes: W writers x S submissions each, every submission with its own Idempotency-Key;
   a random share is retried (sequentially and concurrently); then the database is counted:
   exactly W*S stored, no duplicate, none lost, no 5xx. Writes/s counts every request
   (retries included), p99 is per request, and the server's CPU time per write is printed.
   Run twice, each on a fresh seeded database: the old path (a transaction per submission
   under a lock, ``PODIUM_GROUP_COMMIT=false``) and group commit, printed side by side with
   the host's CPU model and cores.

Targets (issue 27), on 2 cores: reads >= 1,000 req/s, p99 < 50 ms; group-commit writes
>= 500/s, p99 < 200 ms, 0 lost, 0 duplicated, 0 5xx. ``--smoke`` (CI) checks exactness only.
Usage: python bench/leaderboard_load.py [--smoke] [--new-only] [--database-url URL]
       [--submissions N] [--clients C] [--duration D] [--writers W] [--per-writer S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from sqlmodel import Session, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leaderboard.core.config import Settings  # noqa: E402
from leaderboard.core.db import create_db_engine  # noqa: E402
from leaderboard.core.security import new_api_key  # noqa: E402
from leaderboard.migrate import upgrade  # noqa: E402
from leaderboard.models import Participant, Submission, Tournament  # noqa: E402
from tests.leaderboard.conftest import (  # noqa: E402
    ADMIN_TOKEN,
    make_record,
    reset_database,
    tournament_body,
)

SLUG = "digits-latency"
READ_PATHS = [f"/api/v1/tournaments/{SLUG}/leaderboard",
              f"/api/v1/tournaments/{SLUG}/leaderboard?sort=quality_ratio",
              f"/api/v1/tournaments/{SLUG}/leaderboard?hardware=local&limit=20",
              f"/api/v1/tournaments/{SLUG}/leaderboard?offset=50"]


def seed(url: str, n: int) -> None:
    engine = create_db_engine(url)
    upgrade(engine)
    rng = random.Random(0)
    body = tournament_body(quota_per_day=1_000_000, quota_total=1_000_000)
    with Session(engine) as session:
        tournament = Tournament(**{k: v for k, v in body.items()
                                   if k not in ("objectives",)},
                                objectives=[{"metric": "latency_p90_ms",
                                             "direction": "minimize"},
                                            {"metric": "quality_ratio",
                                             "direction": "maximize"}])
        session.add(tournament)
        _, prefix, digest = new_api_key()
        seeder = Participant(name="seeder", name_skeleton="seeder", key_prefix=prefix,
                             key_hash=digest)
        session.add(seeder)
        session.flush()
        start = datetime.now(UTC) - timedelta(days=30)
        for i in range(n):
            p50 = rng.uniform(0.2, 3.0)
            record = make_record(p50=p50, p90=p50 * rng.uniform(1.05, 1.5),
                                 p99=p50 * rng.uniform(1.6, 3.0),
                                 quality=rng.uniform(0.93, 0.975),
                                 profile=rng.choice(["local", "c7i-large"]),
                                 config={"backend": "ort", "intra_op_threads": 1 + i % 2,
                                         "precision": rng.choice(["fp32", "int8-dynamic"])})
            session.add(Submission(
                tournament_id=tournament.id, participant_id=seeder.id, status="accepted",
                reasons=[], feasible=True, unmet=[], record=record.model_dump(mode="json"),
                hardware_profile=record.hardware.profile, variant=record.workload.variant,
                config_digest=record.config_digest,
                metrics=record.metrics.model_dump(mode="json"),
                created_at=start + timedelta(seconds=i)))
        session.commit()
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path, url: str, port: int, *, group_commit: bool) -> subprocess.Popen:
    # Limits high enough for the bench's one address: it measures the write path.
    env = os.environ | {"PODIUM_HOME": str(home), "DATABASE_URL": url,
                        "PODIUM_ADMIN_TOKEN": ADMIN_TOKEN,
                        "PODIUM_RATE_LIMIT_PER_MINUTE": "6000", "PODIUM_RATE_LIMIT_BURST": "200",
                        "PODIUM_WRITE_LIMIT_PER_ADDRESS": "1000000/minute",
                        "PODIUM_REGISTRATION_LIMIT": "1000000/minute",
                        "PODIUM_GROUP_COMMIT": str(group_commit).lower()}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "leaderboard.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("uvicorn did not start")


async def reader_loop(port: int, deadline: float, offset: int, latencies: list[float],
                      statuses: dict[int, int]) -> None:
    """A minimal keep-alive HTTP/1.1 client: cheap enough not to steal the server's CPU."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    while time.perf_counter() < deadline:
        path = READ_PATHS[i % len(READ_PATHS)]
        i += 1
        started = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def read_phase(port: int, clients: int, duration: float) -> dict:
    for path in READ_PATHS:  # warm the cache, as a running server would be
        httpx.get(f"http://127.0.0.1:{port}{path}", timeout=60).raise_for_status()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    await asyncio.gather(*(reader_loop(port, started + duration, i, latencies, statuses)
                           for i in range(clients)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
            "req_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(pct(0.50), 2),
            "p90_ms": round(pct(0.90), 2), "p99_ms": round(pct(0.99), 2),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2), "statuses": statuses}


class Connection:
    """A minimal keep-alive HTTP/1.1 client for POSTs (httpx would cost the server CPU)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        """POST, reconnecting on a reset keep-alive connection (as a client would retry)."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json"
                   f"\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode() + body
        for attempt in range(5):
            try:
                if self.streams is None:
                    self.streams = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = self.streams
                writer.write(request)
                status = int((await reader.readline()).split()[1])
                length, answer = 0, {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    answer[name.strip().lower().decode()] = value.strip().decode()
                length = int(answer.get("content-length", 0))
                payload = await reader.readexactly(length)
                return status, {"headers": answer, "body": payload}
            except (OSError, IndexError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def writer(port: int, key: str, index: int, count: int, rng: random.Random,
                 tally: dict[str, int], keys: list[str], latencies: list[float]) -> None:
    connections = [Connection(port), Connection(port)]  # the second for a racing retry
    path = f"/api/v1/tournaments/{SLUG}/submissions"

    async def timed(connection: Connection, body: bytes, headers: dict[str, str]):
        started = time.perf_counter()
        answer = await connection.post(path, body, headers)
        latencies.append(time.perf_counter() - started)
        return answer

    for n in range(count):
        idem = f"w{index}-s{n}-{uuid.uuid4().hex[:8]}"
        keys.append(idem)
        p50 = rng.uniform(0.2, 3.0)
        body = json.dumps({"record": make_record(p50=p50, p90=p50 * 1.2, p99=p50 * 2,
                                                 config={"writer": index, "n": n})
                           .model_dump(mode="json")}).encode()
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
        sends = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
        concurrent = rng.random() < 0.15  # a retry racing the original request
        total = sends + concurrent
        if concurrent:
            answers = list(await asyncio.gather(*(timed(c, body, headers)
                                                  for c in connections)))
            total -= 2
        else:
            answers = []
        answers += [await timed(connections[0], body, headers) for _ in range(total)]
        for status, answer in answers:
            if status >= 500:
                tally["5xx"] += 1
            elif status == 201:
                tally["replayed" if answer["headers"].get("idempotent-replayed")
                      else "created"] += 1
            else:
                tally[f"status_{status}"] = tally.get(f"status_{status}", 0) + 1
        tally["requests"] += len(answers)
    for connection in connections:
        connection.close()


async def write_phase(port: int, url: str, writers: int, per_writer: int) -> dict:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        keys = []
        for i in range(writers):
            response = await client.post("/api/v1/participants", json={"name": f"writer-{i}"})
            keys.append(response.json()["api_key"])
    tally = {"requests": 0, "created": 0, "replayed": 0, "5xx": 0}
    idempotency_keys: list[str] = []
    latencies: list[float] = []
    rng = random.Random(1)
    started = time.perf_counter()
    await asyncio.gather(*(writer(port, keys[i], i, per_writer, random.Random(rng.random()),
                                  tally, idempotency_keys, latencies) for i in range(writers)))
    elapsed = time.perf_counter() - started
    engine = create_db_engine(url)
    with Session(engine) as session:
        stored = session.exec(select(Submission.idempotency_key)
                              .where(Submission.idempotency_key.is_not(None))).all()
        accepted = session.exec(select(func.count()).select_from(Submission).where(
            Submission.idempotency_key.is_not(None),
            Submission.status == "accepted")).one()
    engine.dispose()
    ordered = sorted(latencies)
    expected = writers * per_writer
    return tally | {"seconds": round(elapsed, 2),
                    "writes_per_s": round(tally["requests"] / elapsed, 1),
                    "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
                    "p99_ms": round(ordered[min(len(ordered) - 1,
                                                int(0.99 * len(ordered)))] * 1000, 1),
                    "expected": expected, "stored": len(stored), "accepted": accepted,
                    "duplicates": len(stored) - len(set(stored)),
                    "lost": len(set(idempotency_keys) - set(stored))}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_path(name: str, group_commit: bool, args: argparse.Namespace, tmp: Path,
             read: bool) -> tuple[dict | None, dict]:
    """Seed a fresh database, serve it with one write path, measure; (reads, writes)."""
    home = tmp / name
    url = args.database_url or Settings(home=home).resolved_database_url()
    if args.database_url:
        reset_database(url)
    t0 = time.perf_counter()
    seed(url, args.submissions)
    print(f"[{name}] seeded {args.submissions} submissions in {time.perf_counter() - t0:.1f} s",
          flush=True)
    port = free_port()
    server = start_server(home, url, port, group_commit=group_commit)
    try:
        reads = asyncio.run(read_phase(port, args.clients, args.duration)) if read else None
        if reads is not None:
            print(f"[{name}] reads ", json.dumps(reads), flush=True)
        before = psutil.Process(server.pid).cpu_times()
        writes = asyncio.run(write_phase(port, url, args.writers, args.per_writer))
        after = psutil.Process(server.pid).cpu_times()
        cpu_s = after.user + after.system - before.user - before.system
        writes["server_cpu_ms_per_write"] = round(cpu_s * 1000 / writes["requests"], 2)
        print(f"[{name}] writes", json.dumps(writes), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return reads, writes


def exact(writes: dict) -> bool:
    return (writes["stored"] == writes["accepted"] == writes["expected"]
            and writes["duplicates"] == writes["lost"] == writes["5xx"] == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--per-writer", type=int, default=20)
    parser.add_argument("--database-url", help="a throw-away PostgreSQL database (its public "
                                               "schema is dropped); default: SQLite files")
    parser.add_argument("--new-only", action="store_true",
                        help="skip the old write path (one transaction per submission)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args()
    if args.smoke:
        args.submissions, args.duration, args.writers, args.per_writer = 200, 1.0, 5, 4
    try:
        import uvloop  # noqa: F401
        uvloop_used = True
    except ImportError:
        uvloop_used = False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    database = "PostgreSQL" if args.database_url else "SQLite (WAL)"
    print(f"host: {cpu_model()}, {cores} cores usable; database: {database}", flush=True)

    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        old = None if args.new_only else run_path("old", False, args, Path(tmp), read=False)[1]
        reads, new = run_path("new", True, args, Path(tmp), read=True)
    assert reads is not None
    print(f"{'write path':<34} {'writes/s':>9} {'p99 ms':>8} {'lost':>5} {'dup':>5} {'5xx':>5}")
    for label, writes in (("old: a transaction per submission", old),
                          ("new: group commit", new)):
        if writes is not None:
            print(f"{label:<34} {writes['writes_per_s']:>9} {writes['p99_ms']:>8} "
                  f"{writes['lost']:>5} {writes['duplicates']:>5} {writes['5xx']:>5}")
    reads_ok = (reads["req_per_s"] >= 1000 and reads["p99_ms"] < 50
                and set(reads["statuses"]) == {200})
    writes_ok = exact(new) and new["writes_per_s"] >= 500 and new["p99_ms"] < 200
    ok = reads_ok and writes_ok and (old is None or exact(old))
    print(f"uvloop available: {uvloop_used}; targets {'MET' if ok else 'NOT MET'} "
          "(reads >= 1,000/s, p99 < 50 ms; writes >= 500/s, p99 < 200 ms, exact)")
    # Smoke: tiny sizes cannot reach the rates, but every write must still be exact.
    if args.smoke:
        return 0 if exact(new) and (old is None or exact(old)) else 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
