"""Distributed mode on real processes: three `tenantrag serve` nodes with their own data
folders, one PostgreSQL database, one Redis and one secret; tenants, tokens and the schema made
with the real CLI, as an operator (and the outside checker) does. The Redis is the module's own
redis-server on a free port (the Redis outage test stops and restarts it; the shared one at
6379 is never touched).

The three nodes are shared by the module's tests (each test uses its own tenant); the test that
kills node 1 runs last but one, and a fourth node joins on an empty data folder at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.conftest import POSTGRES_ADMIN_URL
from tests.faults.support import RedisServer
from tests.integration.conftest import METRICS_TOKEN, Server

from tenantrag.backends.store import schema
from tenantrag.observability.anchor import AnchorVerifier, generate_key_pair, read_anchor_file

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]
SECRET = "distributed-secret-0123456789-abcdefghijklmnop"
EXPECTED_REPLICAS = 3  # each node enforces limit // 3 while Redis is away
ANCHOR_KEY, ANCHOR_PUBLIC_KEY = generate_key_pair()  # every node signs the one shared chain
ALL = "query,documents:read,documents:write,documents:delete,usage:read,audit:read"


class Cluster:
    """The database, the environment every node and CLI call shares, and the running nodes."""

    def __init__(self, root: Path, database_url: str, model_dir: Path, redis: RedisServer) -> None:
        self.root, self.database_url, self.redis = root, database_url, redis
        self.env = {
            **os.environ,
            "TENANTRAG_DATABASE_URL": database_url,
            "TENANTRAG_REDIS_URL": redis.url(),
            "TENANTRAG_EXPECTED_REPLICAS": str(EXPECTED_REPLICAS),
            "TENANTRAG_JWT_SECRET": SECRET,
            # Distributed mode: `serve` refuses to start without a metrics token.
            "TENANTRAG_METRICS_TOKEN": METRICS_TOKEN,
            "TENANTRAG_MODEL_DIR": str(model_dir.parent),
            "TENANTRAG_LOG_LEVEL": "WARNING",
            "TENANTRAG_REPLICATION_POLL_S": "0.5",
            "TENANTRAG_AUDIT__ANCHOR_KEY": ANCHOR_KEY,
            "TENANTRAG_AUDIT__ANCHOR_INTERVAL_S": "1",
        }
        self.nodes: list[Server] = []

    def cli(self, *args: str) -> str:
        """Run `tenantrag ARGS` as an operator would; its output, or the test fails."""
        env = {**self.env, "TENANTRAG_DATA_DIR": str(self.root / "cli")}
        done = subprocess.run(
            [sys.executable, "-m", "tenantrag.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self, name: str) -> Server:
        """A node on its own data folder (not yet waited for)."""
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        env = {**self.env, "TENANTRAG_DATA_DIR": str(folder / "data")}
        node = Server(env, 1, folder / "server.log")
        self.nodes.append(node)
        return node

    def tenant(self, rate_limit: int = 1000) -> tuple[str, dict[str, str]]:
        """A new tenant made with `tenantrag tenant create`, and headers from `tenantrag token`."""
        tid = f"d-{uuid.uuid4().hex[:10]}"
        self.cli("tenant", "create", tid, "--rate-limit", str(rate_limit))
        token = self.cli("token", "--tenant", tid, "--user", "ops", "--permissions", ALL)
        return tid, {"Authorization": f"Bearer {token}", "X-Tenant-ID": tid}


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own, dropped at the end."""
    name = f"tenantrag_nodes_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """The nodes' Redis: a redis-server of this module's own, on a free port, without saving."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    database: str,
    model_dir: Path,
    own_redis: RedisServer,
) -> Iterator[Cluster]:
    """Three ready nodes over a database migrated with `tenantrag db upgrade`."""
    made = Cluster(tmp_path_factory.mktemp("nodes"), database, model_dir, own_redis)
    assert f"to {schema.head()}" in made.cli("db", "upgrade")
    nodes = [made.start(f"node{i}") for i in (1, 2, 3)]
    for node in nodes:  # started together, so their model loads overlap
        node.wait_ready(timeout_s=120)
    yield made
    for node in made.nodes:
        if node.process.poll() is None:
            node.stop()


def search(node: Server, headers: dict[str, str], query: str, mode: str = "hybrid") -> list[str]:
    """Document ids the node finds for `query`."""
    body = {"query": query, "top_k": 20, "mode": mode}
    r = httpx.post(f"{node.base_url}/api/search", headers=headers, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return [hit["document_id"] for hit in r.json()["results"]]


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long `check` took to hold, polling; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not true within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def post(node: Server, headers: dict[str, str], *docs: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{node.base_url}/api/documents",
        headers=headers,
        json={"documents": list(docs)},
        timeout=60,
    )


def test_a_serve_against_an_old_schema_refuses_to_start(tmp_path: Path, model_dir: Path) -> None:
    """`serve` on a database without this release's schema exits and names `db upgrade`."""
    name = f"tenantrag_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            **os.environ,
            "TENANTRAG_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "TENANTRAG_JWT_SECRET": SECRET,
            "TENANTRAG_METRICS_TOKEN": METRICS_TOKEN,  # so the schema is what stops it
            "TENANTRAG_DATA_DIR": str(tmp_path / "data"),
            "TENANTRAG_MODEL_DIR": str(model_dir.parent),
        }
        done = subprocess.run(
            [sys.executable, "-m", "tenantrag.cli", "serve", "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode != 0
        assert "tenantrag db upgrade" in done.stderr
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_write_through_node_1_is_found_on_node_3_within_2_s(cluster: Cluster) -> None:
    """Acknowledged by node 1 means committed in PostgreSQL; node 3 finds it within 2 s."""
    one, _, three = cluster.nodes[:3]
    _, headers = cluster.tenant()
    r = post(one, headers, {"id": "garage", "text": "The parking garage opens at seven."})
    assert r.status_code == 201, r.text
    took = within(2.0, lambda: search(three, headers, "parking garage")[:1] == ["garage"])
    assert took < 2.0
    ready = httpx.get(f"{three.base_url}/ready", timeout=10).json()
    assert ready["checks"]["replica"] is True and ready["replication"]["lag_s"] < 5


def test_a_delete_through_node_2_is_gone_everywhere(cluster: Cluster) -> None:
    """After node 2 deletes a document, no node returns it (within 2 s)."""
    one, two, three = cluster.nodes[:3]
    _, headers = cluster.tenant()
    assert post(one, headers, {"id": "memo", "text": "Quarterly budget review memo."}).is_success
    within(2.0, lambda: all(search(n, headers, "budget memo") for n in (one, two, three)))
    r = httpx.delete(f"{two.base_url}/api/documents/memo", headers=headers, timeout=30)
    assert r.status_code == 204
    within(2.0, lambda: not any(search(n, headers, "budget memo") for n in (one, two, three)))


def test_another_tenant_sees_nothing_on_any_node(cluster: Cluster) -> None:
    """A document of one tenant is never found with another tenant's token, on any node."""
    one = cluster.nodes[0]
    _, mine = cluster.tenant()
    _, theirs = cluster.tenant()
    assert post(one, mine, {"id": "x", "text": "Confidential merger plans."}).is_success
    within(2.0, lambda: all(search(n, mine, "merger plans") for n in cluster.nodes[:3]))
    assert not any(search(n, theirs, "merger plans") for n in cluster.nodes[:3])


def test_document_authorization_holds_on_every_node(cluster: Cluster) -> None:
    """In PostgreSQL as in SQLite: a restricted document (its id holding `/`) is absent for an
    internal-cleared editor on every node (GET and DELETE 404, left out of the list), its id
    cannot be replaced (409, nothing changed), and another tenant gets the same 404s."""
    one, two, three = cluster.nodes[:3]
    tid, editor = cluster.tenant()
    token = cluster.cli(
        "token",
        "--tenant",
        tid,
        "--user",
        "boss",
        "--permissions",
        ALL,
        "--clearance",
        "restricted",
    )
    boss = {**editor, "Authorization": f"Bearer {token}"}
    _, stranger = cluster.tenant()
    plan = {
        "id": "hr/2026/plan.md",
        "text": "The reorganisation plan.",
        "classification": "restricted",
    }
    assert post(one, boss, plan).status_code == 201
    path = "/api/documents/hr/2026/plan.md"

    def get(node: Server, headers: dict[str, str], url: str = path) -> httpx.Response:
        return httpx.get(f"{node.base_url}{url}", headers=headers, timeout=30)

    for node in (one, two, three):
        assert get(node, boss).json()["classification"] == "restricted"
        assert get(node, editor).status_code == 404
        assert get(node, stranger).status_code == 404
        assert get(node, editor, "/api/documents").json()["documents"] == []
    assert httpx.delete(f"{two.base_url}{path}", headers=editor, timeout=30).status_code == 404
    cover = {**plan, "text": "Nothing to see here.", "classification": "public"}
    refused = post(three, editor, cover)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert get(one, boss).json()["classification"] == "restricted"
    assert httpx.delete(f"{two.base_url}{path}", headers=boss, timeout=30).status_code == 204
    assert all(get(node, boss).status_code == 404 for node in (one, two, three))


def test_a_policy_set_with_the_cli_reaches_every_node(cluster: Cluster) -> None:
    """`tenant update --auto-classify off` writes PostgreSQL (migration 0003's column); each node
    follows the tenant change and stores a document holding an email at the uploader's label."""
    tid, headers = cluster.tenant()
    posted = iter(range(1000))  # a new id each time: a raised document is above the editor

    def label(node: Server) -> str:
        doc = {"id": f"contacts-{next(posted)}", "text": "Mail jane.roe@example.com for travel."}
        r = post(node, headers, doc)
        assert r.status_code == 201, r.text
        return str(r.json()["documents"][0]["classification"])

    assert label(cluster.nodes[0]) == "confidential"  # `raise`, the default
    assert "auto_classify=off" in cluster.cli("tenant", "update", tid, "--auto-classify", "off")
    for node in cluster.nodes[:3]:
        within(5.0, lambda node=node: label(node) == "internal")


def test_every_node_anchors_the_shared_chain_and_verify_checks_them(cluster: Cluster) -> None:
    """Each node signs the database chain's head into its own anchor file and the database;
    `audit verify` against any node's file passes, and a cut export fails against it."""
    one = cluster.nodes[0]
    _, headers = cluster.tenant()
    assert post(one, headers, {"id": "anchored", "text": "Signed heads, node by node."}).is_success
    head = int(cluster.cli("audit", "export", str(cluster.root / "now.jsonl")).split()[1])
    verifier = AnchorVerifier(ANCHOR_PUBLIC_KEY)
    files = [cluster.root / f"node{i}" / "data" / "audit.anchor" for i in (1, 2, 3)]

    def anchored() -> bool:
        seqs = [verifier.check(read_anchor_file(f)).head.seq if f.exists() else 0 for f in files]
        return min(seqs) >= head

    within(15.0, anchored)
    nodes = {verifier.check(read_anchor_file(f)).node for f in files}
    assert len(nodes) == 3  # one anchor per node
    verified = cluster.cli("audit", "verify", "--anchor", str(files[1]))
    assert verified.startswith("audit log OK") and "[database]" in verified
    export = cluster.root / "chain.jsonl"
    cluster.cli("audit", "export", str(export))
    lines = export.read_text().splitlines(keepends=True)
    cut = cluster.root / "cut.jsonl"
    anchored_seq = verifier.check(read_anchor_file(files[2])).head.seq
    cut.write_text("".join(lines[: anchored_seq - 1]))
    env = {**cluster.env, "TENANTRAG_DATA_DIR": str(cluster.root / "cli")}
    done = subprocess.run(
        [sys.executable, "-m", "tenantrag.cli", "audit", "verify", "--path", str(cut)]
        + ["--anchor", str(files[2])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cluster.root,
    )
    assert done.returncode == 1 and "cut from the end" in done.stdout, done.stdout + done.stderr


def test_a_key_revoked_on_node_1_is_refused_by_the_other_nodes_within_1_s(
    cluster: Cluster,
) -> None:
    """POST /api/keys on node 1, the key works on nodes 2 and 3; after DELETE, 401 within 1 s."""
    one, two, three = cluster.nodes[:3]
    tid, _ = cluster.tenant()
    admin = cluster.cli(
        "token", "--tenant", tid, "--user", "ops", "--permissions", "keys:admin,query"
    )
    manager = {"Authorization": f"Bearer {admin}", "X-Tenant-ID": tid}
    body = {"name": "ci", "permissions": ["query"]}
    made = httpx.post(f"{one.base_url}/api/keys", headers=manager, json=body, timeout=30)
    assert made.status_code == 201, made.text
    keyed = {"Authorization": f"Bearer {made.json()['key']}", "X-Tenant-ID": tid}

    def status(node: Server) -> int:
        return httpx.get(f"{node.base_url}/api/me", headers=keyed, timeout=10).status_code

    assert [status(n) for n in (one, two, three)] == [200, 200, 200]
    r = httpx.delete(f"{one.base_url}/api/keys/{made.json()['id']}", headers=manager, timeout=30)
    assert r.status_code == 204
    within(1.0, lambda: status(two) == 401 and status(three) == 401)
    assert status(one) == 401


def test_a_jti_revoked_with_the_cli_is_refused_by_every_node_within_1_s(
    cluster: Cluster,
) -> None:
    """`tenantrag token revoke JTI` against the database reaches every node within a second."""
    import jwt

    tid, headers = cluster.tenant()
    jti = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})["jti"]

    def refused_everywhere() -> bool:
        return all(
            httpx.get(f"{n.base_url}/api/me", headers=headers, timeout=10).status_code == 401
            for n in cluster.nodes[:3]
        )

    assert not refused_everywhere()
    cluster.cli("token", "revoke", jti)
    within(1.0, refused_everywhere)


def test_a_tenant_erased_through_the_admin_api_leaves_no_canary_anywhere(
    cluster: Cluster,
) -> None:
    """Erased on node 3: the canary is in no table, no node's data folder, no Redis key."""
    import redis

    one, two, three = cluster.nodes[:3]
    tid, headers = cluster.tenant()
    canary = f"canary-{uuid.uuid4().hex[:12]}"
    doc = {"id": "c1", "title": f"T {canary}", "text": f"The quay password is {canary}."}
    r = httpx.post(
        f"{one.base_url}/api/documents",
        headers=headers,
        json={"documents": [{**doc, "metadata": {"tag": canary}}]},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    for node in (one, two, three):  # every node indexes it; node 2 caches an answer in Redis
        within(3.0, lambda node=node: "c1" in search(node, headers, "quay password"))
    answer = httpx.post(
        f"{two.base_url}/api/query", headers=headers, json={"query": "quay password?"}, timeout=60
    )
    assert canary in answer.text
    cache = redis.Redis.from_url(cluster.redis.url())
    assert list(cache.scan_iter(match=f"{tid}:*"))  # the check sees what it looks for
    platform = cluster.cli("token", "--platform-admin", "--user", "ops")
    r = httpx.delete(
        f"{three.base_url}/api/admin/tenants/{tid}",
        headers={"Authorization": f"Bearer {platform}"},
        timeout=60,
    )
    assert r.status_code == 202, r.text
    assert r.json()["removed"]["documents"] == 1

    def traces() -> list[str]:
        found = []
        with psycopg.connect(cluster.database_url) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
                if any(canary in repr(row) for row in rows):
                    found.append(f"table {table}")
        for node in (one, two, three):
            for path in (Path(node.log).parent / "data").rglob("*"):
                if path.is_file() and canary.encode() in path.read_bytes():
                    found.append(str(path))
        for key in cache.scan_iter(match=f"{tid}*"):
            found.append(f"redis {key!r}")
        for key in cache.scan_iter(match=f"RL:{tid}*"):
            found.append(f"redis {key!r}")
        return found

    within(5.0, lambda: traces() == [])
    assert (
        httpx.get(f"{one.base_url}/api/documents", headers=headers, timeout=10).status_code == 403
    )
    cache.close()


def test_exactly_100_of_101_concurrent_requests_pass_across_the_nodes(cluster: Cluster) -> None:
    """101 requests released together, spread over the three nodes: 100 pass, 1 gets 429."""
    nodes = cluster.nodes[:3]
    wait_for_redis(nodes)  # the outage test before may have left a node on its fallback
    _, headers = cluster.tenant(rate_limit=100)
    urls = [f"{nodes[i % 3].base_url}/api/me" for i in range(101)]
    # one connection per request, opened first; the barrier releases all 101 at once
    clients = [httpx.Client(timeout=30) for _ in urls]
    start = threading.Barrier(len(urls))

    def call(n: int) -> int:
        start.wait(timeout=60)
        return clients[n].get(urls[n], headers=headers).status_code

    try:
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            statuses = list(pool.map(call, range(len(urls))))
    finally:
        for client in clients:
            client.close()
    assert (statuses.count(200), statuses.count(429)) == (100, 1)
    per_node = [statuses[i::3] for i in range(3)]
    assert all(200 in answers for answers in per_node)  # every node served some


def ready_status(node: Server) -> dict[str, object]:
    """The node's /ready body with its status code."""
    r = httpx.get(f"{node.base_url}/ready", timeout=10)
    return {"status_code": r.status_code, **r.json()}


def wait_for_redis(nodes: list[Server], seconds: float = 20.0) -> None:
    """Until every node answers /ready `ready` (off its Redis fallback)."""
    within(seconds, lambda: all(ready_status(n)["status"] == "ready" for n in nodes))


def query(node: Server, headers: dict[str, str], text: str) -> dict[str, object]:
    r = httpx.post(f"{node.base_url}/api/query", headers=headers, json={"query": text}, timeout=60)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_redis_stopped_and_started_under_traffic_falls_back_and_recovers(
    cluster: Cluster,
) -> None:
    """Redis killed under traffic on three nodes: no 5xx; each node says degraded and limits a
    tenant to its share (limit // 3) with its own answer cache; Redis started again: every node
    returns to the one shared window and the shared cache."""
    nodes = cluster.nodes[:3]
    _, load = cluster.tenant(rate_limit=100_000)
    doc = {"id": "garage", "text": "The parking garage opens at seven in the morning."}
    assert post(nodes[0], load, doc).status_code == 201
    within(5.0, lambda: all(search(n, load, "parking garage") for n in nodes))

    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def traffic(offset: int) -> None:
        n = offset
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                node = nodes[n % 3]
                try:
                    if n % 4 == 0:
                        r = http.post(
                            f"{node.base_url}/api/query",
                            headers=load,
                            json={"query": f"When does the garage open? {n % 7}"},
                        )
                    else:
                        r = http.post(
                            f"{node.base_url}/api/search",
                            headers=load,
                            json={"query": "parking garage", "mode": "bm25"},
                        )
                    statuses.append(r.status_code)
                    if r.is_success and "ratelimit" not in r.headers:
                        failures.append(f"no RateLimit headers from {node.base_url}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                n += 1
                time.sleep(0.02)

    workers = [threading.Thread(target=traffic, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    try:
        within(30.0, lambda: len(statuses) >= 20)
        cluster.redis.kill()
        # every node notices (a request or its readiness ping) and says degraded, still 200
        within(10.0, lambda: all(ready_status(n)["status"] == "degraded" for n in nodes))
        down = ready_status(nodes[1])
        assert down["status_code"] == 200 and down["degraded"] == ["redis"], down

        # the limit: each node alone passes its share, 60 // 3 = 20, in its own window
        _, strict = cluster.tenant(rate_limit=60)
        one = [httpx.get(f"{nodes[0].base_url}/api/me", headers=strict) for _ in range(21)]
        assert [r.status_code for r in one] == [200] * 20 + [429]
        assert one[0].headers["ratelimit"].startswith("limit=20,")
        other = httpx.get(f"{nodes[2].base_url}/api/me", headers=strict)
        assert other.status_code == 200  # node 3's window is its own

        # the cache: a node answers a repeated question from its in-process cache
        question = "When does the parking garage open? (Redis away)"
        assert query(nodes[1], load, question)["cached"] is False
        assert query(nodes[1], load, question)["cached"] is True
        within(10.0, lambda: len(statuses) >= 60)  # traffic went on meanwhile

        cluster.redis.start()
        wait_for_redis(nodes)
        within(10.0, lambda: len(statuses) >= 80)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)

    assert not failures, failures[:5]
    assert statuses and not [s for s in statuses if s >= 500]
    assert set(statuses) == {200}

    # back on Redis: one shared window across the nodes again, and one shared cache
    _, shared = cluster.tenant(rate_limit=5)
    answers = [httpx.get(f"{nodes[i % 3].base_url}/api/me", headers=shared) for i in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert answers[0].headers["ratelimit"].startswith("limit=5,")
    question = "When does the parking garage open? (Redis back)"
    assert query(nodes[0], load, question)["cached"] is False
    assert query(nodes[2], load, question)["cached"] is True  # stored by node 1, in Redis
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    for node in nodes:
        text = httpx.get(f"{node.base_url}/metrics", headers=scrape, timeout=10).text
        spent = [
            ln
            for ln in text.splitlines()
            if ln.startswith("tenantrag_redis_fallback_seconds_total ")
        ]
        assert spent and float(spent[0].split()[1]) > 0, node.base_url


def test_kill_9_of_node_1_during_a_bulk_ingest_loses_no_acknowledged_document(
    cluster: Cluster,
) -> None:
    """Every batch node 1 answered 201 before SIGKILL is in the database and found on node 3."""
    one, two, three = cluster.nodes[:3]
    _, headers = cluster.tenant()
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest() -> None:
        n = 0
        while not stop.is_set():
            batch = [
                {"id": f"k{n}-{i}", "text": f"Ledger entry k{n}x{i} about invoices."}
                for i in range(4)
            ]
            n += 1
            try:
                r = post(one, headers, *batch)
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                acknowledged.extend(d["id"] for d in batch)

    writer = threading.Thread(target=ingest)
    writer.start()
    within(60.0, lambda: len(acknowledged) >= 8)
    os.kill(one.process.pid, signal.SIGKILL)
    one.process.wait(timeout=10)
    stop.set()
    writer.join(timeout=60)
    stored: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{two.base_url}/api/documents", headers=headers, params=params).json()
        stored |= {d["id"] for d in page["documents"]}
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(acknowledged) <= stored
    last = acknowledged[-1]
    term = last.replace("-", "x")
    within(2.0, lambda: last in search(three, headers, term))


def test_a_fourth_node_on_an_empty_data_folder_catches_up(cluster: Cluster) -> None:
    """A new node copies the database, becomes ready, and finds what was written before."""
    two = cluster.nodes[1]
    _, headers = cluster.tenant()
    docs = [{"id": f"old{i}", "text": f"Archived report number {i} on turbines."} for i in range(6)]
    assert post(two, headers, *docs).is_success
    four = cluster.start("node4")
    four.wait_ready(timeout_s=120)
    within(60.0, lambda: httpx.get(f"{four.base_url}/ready", timeout=10).status_code == 200)
    for mode in ("bm25", "vector"):  # each finds every document that holds the words
        assert set(search(four, headers, "archived turbines report", mode)) == {
            d["id"] for d in docs
        }
    assert search(four, headers, "turbines") == search(two, headers, "turbines")
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    metrics = httpx.get(f"{four.base_url}/metrics", headers=scrape, timeout=10).text
    assert "tenantrag_replication_lag_seconds" in metrics
