"""The HTTP contract of the real app, from its own OpenAPI schema: schemathesis with every check
and every phase against a real server, with API keys configured and without (the schema must say
exactly what the server enforces), the limits on hostile input, and access control (keys on every
route, never logged, no open bind beyond loopback).

Schemathesis runs as its CLI (``schemathesis run URL/openapi.json --checks all``), as a user would,
against tests/_server.serve (the real app under uvicorn on loopback); the access-control tests run
the real ``caselink serve`` as a child process so that its own logging is what is searched for keys.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from _proc import ServerProcess, child_env, cli_command, run
from _server import build_index, demo_records, make_settings, serve

from api.app import create_app

WRITE_KEY = f"rw-{uuid.uuid4().hex}"
READ_KEY = f"ro-{uuid.uuid4().hex}"
WRONG_KEY = f"xx-{uuid.uuid4().hex}"  # a mistyped key is a secret too
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
LIMITS = {"server__max_body_bytes": 64_000, "server__max_document_bytes": 200_000, "server__max_text_chars": 2_000,
          "server__max_batch": 20, "rank__max_k": 50}
# Schemathesis: examples per operation and phase, one fixed seed (a failure reproduces with the
# command the test prints), and a bound on the whole run.
EXAMPLES = 15
SEED = 20251202
SCHEMATHESIS_TIMEOUT_S = 1500
ST_CONFIG = Path(__file__).parent / "schemathesis.toml"  # 413 counts as a refusal (why: in the file)

# The schema as the app generates it (nothing is opened until a server starts).
SPEC = create_app(make_settings(Path(tempfile.gettempdir()) / "caselink-unused", server__api_keys=[WRITE_KEY],
                                **LIMITS)).openapi()
OPERATIONS = [(m.upper(), p, op) for p, item in SPEC["paths"].items() for m, op in item.items()]
OPEN = {("GET", "/healthz"), ("GET", "/readyz")}
# Every operation that is not a GET must be classified here: a write needs the read-write key.
WRITES = {("PUT", "/v1/records/{record_id}"), ("DELETE", "/v1/records/{record_id}"),
          ("POST", "/v1/records:batch"), ("POST", "/v1/feedback"),
          ("PUT", "/v1/documents/{doc_id}"), ("DELETE", "/v1/documents/{doc_id}"),
          ("POST", "/v1/records:batchDelete"), ("DELETE", "/v1/feedback/{feedback_id}")}
READ_POSTS = {("POST", "/v1/search"), ("POST", "/v1/suggest"), ("POST", "/v1/related")}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("schema"), server__api_keys=[WRITE_KEY],
                             server__read_keys=[READ_KEY], **LIMITS)
    build_index(settings)
    with serve(settings) as running:
        yield running


@pytest.fixture()
def client(keyed):
    with httpx.Client(base_url=keyed.url, timeout=60, headers=AUTH) as c:
        yield c


def problem(resp: httpx.Response, status: int | tuple[int, ...], field: str | None = None) -> dict:
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, resp.text[:500]
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == resp.status_code and body["detail"], body
    if field is not None:
        assert body["field"] == field, body
    return body


# -- schemathesis: every operation, every check, every phase, with keys and without ---------------------
@pytest.fixture(scope="module")
def contract_data(tmp_path_factory, use_encoder):
    """The demo corpus indexed once; each schemathesis pass serves (and changes) its own copy."""
    from recommender.service import CaselinkService

    data = tmp_path_factory.mktemp("contract") / "data"
    svc, _ = CaselinkService.build(make_settings(data), encoder=use_encoder, records=demo_records())
    svc.close()
    return data


@pytest.mark.timeout(SCHEMATHESIS_TIMEOUT_S + 120)
@pytest.mark.parametrize("keys", [True, False], ids=["with-keys", "without-keys"])
def test_schemathesis_finds_no_failure_with_every_check_and_phase(contract_data, tmp_path, keys):
    """What a new user runs: a schema-valid request is accepted, an invalid
    one refused, every answer is in the schema, 405s list the path's methods, and (with keys) no
    route answers without one. Any failure fails the test with schemathesis' own report."""
    data = tmp_path / "data"
    shutil.copytree(contract_data, data, symlinks=True)  # index/current is a symlink: keep it one
    # The test limits keep generated bodies small (a 200,000-character text to embed, a thousand
    # records, would make the run take many minutes) and prove the schema states configured values.
    settings = make_settings(data, server__api_keys=[WRITE_KEY] if keys else [], **LIMITS)
    report = tmp_path / "schemathesis.json"
    with serve(settings) as running:
        cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ST_CONFIG), "run",
               f"{running.url}/openapi.json",  # every check: schemathesis 4 enables all by default
               "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(EXAMPLES),
               "--seed", str(SEED), "--generation-deterministic",
               "--workers", "1", "--request-timeout", "60", "--no-color",
               "--report", "json", "--report-json-path", str(report)]
        if keys:
            cmd += ["-H", f"Authorization: Bearer {WRITE_KEY}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SCHEMATHESIS_TIMEOUT_S, cwd=tmp_path)
    out = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    cases = out.get("test_cases", {})
    print(f"\nschemathesis {'with' if keys else 'without'} keys: {out.get('operations', {}).get('tested')} operations, "
          f"{cases.get('generated')} cases, {cases.get('unique_failures')} failures, "
          f"{out.get('running_time', 0):.0f} s")
    assert proc.returncode == 0 and out.get("complete"), proc.stdout[-12_000:] + proc.stderr[-3_000:]
    assert out["operations"]["tested"] == len(OPERATIONS) and cases["unique_failures"] == 0
    assert all(p["status"] == "success" for p in out["phases"].values()), out["phases"]


def test_schema_states_the_configured_limits_and_security():
    """The limits the service enforces are the configured ones, and so are the schema's; the bearer
    scheme appears exactly when keys are configured."""
    schemas = SPEC["components"]["schemas"]
    assert schemas["SearchQuery"]["properties"]["k"]["maximum"] == 50
    assert schemas["SearchQuery"]["properties"]["text"]["maxLength"] == 2_000
    assert schemas["BatchUpsertIn"]["properties"]["records"]["maxItems"] == 20
    assert schemas["BatchDeleteIn"]["properties"]["ids"]["maxItems"] == 20
    related_k = next(p for p in SPEC["paths"]["/v1/records/{record_id}/related"]["get"]["parameters"]
                     if p["name"] == "k")
    assert related_k["schema"]["maximum"] == 50
    assert "x-caselink-limit" not in json.dumps(SPEC)
    assert all(op.get("security") for m, p, op in OPERATIONS if (m, p) not in OPEN)
    open_spec = create_app(make_settings(Path(tempfile.gettempdir()) / "caselink-unused")).openapi()
    assert "securitySchemes" not in open_spec.get("components", {})
    for item in open_spec["paths"].values():
        for op in item.values():
            assert "security" not in op and not {"401", "403"} & set(op["responses"]), op["summary"]
    default = open_spec["components"]["schemas"]["SearchQuery"]["properties"]["k"]["maximum"]
    assert default == make_settings(Path("unused")).rank.max_k


@pytest.mark.parametrize("url,body,field", [
    ("/v1/search", {"text": "干泵", "min_score": False}, "min_score"),
    ("/v1/search", {"text": "干泵", "k": "5"}, "k"),
    ("/v1/search", {"text": "干泵", "open_only": 1}, "open_only"),
    ("/v1/search", {"text": "干泵", "created_from": 0}, "created_from"),
    ("/v1/related", {"record": {"title": "干泵"}, "min_score": False}, "min_score"),
    ("/v1/suggest", {"text": "干泵", "k": True}, "k"),
])
def test_bodies_take_no_bool_for_a_number_and_no_number_for_a_date(client, url, body, field):
    problem(client.post(url, json=body), 422, field)


def test_group_sizes_are_bounded_whether_or_not_grouped(client):
    problem(client.post("/v1/search", json={"text": "干泵", "group_k": {"cases": 51}}), 422, "group_k.cases")


def test_delete_on_the_feedback_export_is_a_405(client):
    resp = client.delete("/v1/feedback/export")
    problem(resp, 405)
    assert resp.headers["allow"] == "GET"


def test_an_int_for_a_float_and_an_iso_date_string_are_accepted(client):
    ok = client.post("/v1/search", json={"text": "干泵", "min_score": 0, "created_from": "2024-01-01"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("as_of", ["0", "20240101", "2024-01-01T00:00:00"])
def test_as_of_is_a_calendar_date(client, as_of):
    problem(client.get("/v1/emerging", params={"as_of": as_of}), 422, "as_of")


@pytest.mark.parametrize("path,allowed", [("/v1/documents/SOP-X", "DELETE, GET, PUT"),
                                          ("/v1/records/C-1001", "DELETE, GET, PUT"),
                                          ("/v1/feedback/7", "DELETE"), ("/v1/feedback/export", "GET"),
                                          ("/v1/search", "POST"), ("/healthz", "GET")])
def test_405_allow_lists_exactly_the_methods_of_the_path(client, path, allowed):
    resp = client.request("PATCH", path)
    problem(resp, 405)
    assert resp.headers["allow"] == allowed


def test_emerging_rejects_a_window_beyond_its_bound(client):
    problem(client.get("/v1/emerging", params={"window_days": 3661}), 422, "window_days")


def test_emerging_windows_before_year_one_are_empty_not_an_error(client):
    resp = client.get("/v1/emerging", params={"as_of": "0001-01-02", "window_days": 30})
    assert resp.status_code == 200, resp.text
    assert resp.json()["window_start"] == "0001-01-01" and resp.json()["groups"] == []


def test_openapi_documents_problem_json_for_every_error():
    for method, path, op in OPERATIONS:
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert list(response.get("content", {})) == ["application/problem+json"], (method, path, status)


# -- limits: a clear 4xx at and beyond every limit ----------------------------------------------------
def test_limits_accept_exactly_the_limit(client):
    assert client.post("/v1/search", json={"text": "x" * 2_000, "k": 50}).status_code == 200
    assert client.get("/v1/records/C-1001/related", params={"k": 50}).status_code == 200
    batch = [{"id": f"LIM-{i}", "kind": "case", "title": f"批量上限 {i}"} for i in range(20)]
    assert client.post("/v1/records:batch", json={"records": batch}).status_code == 200
    body = json.dumps({"text": "y"}).encode()
    padded = body[:-1] + b" " * (64_000 - len(body)) + b"}"  # exactly max_body_bytes
    assert client.post("/v1/search", content=padded, headers={"Content-Type": "application/json"}).status_code == 200


@pytest.mark.parametrize("method,url,payload,status,field", [
    ("POST", "/v1/search", {"text": "x", "k": 51}, 422, "k"),
    ("GET", "/v1/records/C-1001/related?k=51", None, 422, "k"),
    ("POST", "/v1/search", {"text": "长" * 2_001}, 422, "text"),
    ("POST", "/v1/feedback", {"record_id": "C-1001", "helpful": True, "query": "q" * 20_001}, 422, "query"),
    ("PUT", "/v1/records/LIM-T", {"kind": "case", "title": "t" * 1_001}, 422, "title"),
    ("PUT", "/v1/records/LIM-C", {"kind": "case", "error_codes": [f"E{i}" for i in range(101)]}, 422, "error_codes"),
    ("PUT", "/v1/records/" + "i" * 201, {"kind": "case"}, 422, "record_id"),
    ("POST", "/v1/records:batch", {"records": [{"id": f"M-{i}", "kind": "case"} for i in range(21)]}, 422, "records"),
    ("POST", "/v1/records:batch", {"records": []}, 422, "records"),
    ("PUT", "/v1/records/LIM-B", {"kind": "case", "text": "b" * 70_000}, 413, "body"),
    ("POST", "/v1/records:batch", {"records": [{"id": "M-X", "kind": "case", "text": "b" * 70_000}]}, 413, "body"),
])
def test_limits_refuse_beyond_the_limit_naming_the_field(client, method, url, payload, status, field):
    problem(client.request(method, url, json=payload), status, field)


@pytest.mark.parametrize("body,detail", [
    (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
    (b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
    (b'{"text": "x", "k": ' + b"9" * 5_000 + b"}", "too many digits"),
    (b"\xff\xfe{", "UTF-8"),
])
def test_pathological_json_bodies_are_a_400_that_says_why(client, body, detail):
    resp = client.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    assert detail in problem(resp, 400, "body")["detail"]
    assert client.get("/healthz").status_code == 200


def test_non_numeric_content_length_is_a_400(keyed):
    host, port = keyed.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + WRITE_KEY.encode() + b"\r\nContent-Length: abc\r\n\r\n{}")
        head = sock.recv(200)
    assert head.startswith(b"HTTP/1.1 400"), head


def test_every_json_body_has_examples_and_the_server_accepts_them(client):
    """The examples /docs shows (and "Try it out" sends) are requests the server takes: none is refused
    as invalid (a 404 for a record the example names but this test corpus lacks is fine)."""
    tried = 0
    for method, path, op in OPERATIONS:
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        name = body["schema"]["$ref"].rsplit("/", 1)[-1]
        examples = SPEC["components"]["schemas"][name].get("examples", [])
        assert examples, f"{method} {path}: give {name} examples (model_config json_schema_extra)"
        for example in examples:
            resp = client.request(method, path.replace("{record_id}", "C-EXAMPLE-1"), json=example)
            assert resp.status_code in (200, 201, 404), (method, path, example, resp.text)
            tried += 1
    assert tried >= 10


# -- access control -----------------------------------------------------------------------------------
def _fill(path: str) -> str:
    return path.replace("{record_id}", "C-1001").replace("{feedback_id}", "1")


def test_every_non_get_operation_is_classified():
    unclassified = {(m, p) for m, p, _ in OPERATIONS if m != "GET"} - WRITES - READ_POSTS
    assert not unclassified, f"say whether these are writes (WRITES) or reads (READ_POSTS): {unclassified}"


def test_keys_guard_every_route_and_never_reach_the_logs(tmp_path, use_encoder):
    from recommender.service import CaselinkService

    data = tmp_path / "data"
    svc, _ = CaselinkService.build(make_settings(data), encoder=use_encoder, records=demo_records())
    svc.close()
    seen: list[str] = []  # every response body and header, searched for keys at the end
    with ServerProcess(data, tmp_path, keys=WRITE_KEY, read_keys=READ_KEY, name="keyed") as server, \
            httpx.Client(base_url=server.url, timeout=60) as c:
        live = {(m.upper(), p) for p, item in c.get("/openapi.json").json()["paths"].items() for m in item}
        assert live == {(m, p) for m, p, _ in OPERATIONS}

        def call(method: str, path: str, key: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            body = {} if method in ("POST", "PUT") else None
            resp = c.request(method, _fill(path), json=body, headers=headers)
            seen.append(resp.text + json.dumps(dict(resp.headers)))
            return resp

        for method, path, _ in OPERATIONS:
            if (method, path) in OPEN:
                assert call(method, path, None).status_code == 200
                continue
            for key in (None, WRONG_KEY):
                resp = call(method, path, key)
                problem(resp, 401)
                assert resp.headers["www-authenticate"].startswith("Bearer"), (method, path)
            is_write = (method, path) in WRITES
            got = call(method, path, READ_KEY).status_code
            assert (got == 403) == is_write, (method, path, got)
            assert call(method, path, WRITE_KEY).status_code not in (401, 403), (method, path)
        # The page, its assets, the schema and the docs are open by design (app.py).
        for path in ("/", "/openapi.json", "/docs"):
            assert c.get(path).status_code == 200
        assert c.get("/metrics", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
        seen.append(c.get("/metrics", headers={"Authorization": f"Bearer {READ_KEY}"}).text)
        server.stop()  # flush and close the log
        log = server.log_text()
    assert "Uvicorn running" in log or "Application startup complete" in log, log[-2000:]
    for key in (WRITE_KEY, READ_KEY, WRONG_KEY):
        assert key not in log, "an API key reached the server log"
        assert not any(key in text for text in seen), "an API key was echoed in a response"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_serve_refuses_to_bind_beyond_loopback_without_a_key(tmp_path, host):
    # Belt and braces, should the check ever fail: 192.0.2.10 (TEST-NET) cannot be bound, and the
    # 0.0.0.0 port is taken by a socket of ours that never listens, so nothing is ever reachable.
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        port = blocker.getsockname()[1]
        proc = run(cli_command("serve", "--host", host, "--port", str(port)), env=child_env(tmp_path / "data"),
                   cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"refusing to serve on {host} without an API key" in proc.stderr
    assert "CASELINK_API_KEYS" in proc.stderr and "127.0.0.1" in proc.stderr  # says what to do instead
