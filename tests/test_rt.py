"""The Request Tracker connector against a real RT 5 (Debian's, SQLite, standalone server on a
loopback port; see throwaway/rt.py): tickets created and changed through REST2 reach caselink with
their fields, attributes and links, edits, resolutions and deletions follow, a sync killed half-way (or RT
going down half-way) catches up exactly, a new ticket gets one private comment with its related records (checked through
REST2 and in RT's own page in Chromium), and misconfiguration fails with a message naming the
setting. One RT for the module.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from _proc import child_env, cli_command, sigkill, wait_until
from throwaway.rt import (ATTRIBUTE_FIELDS, CUSTOM_FIELDS, ROOT_PASSWORD, FlakyProxy, comment, correspond, create_ticket,
                          delete_ticket, rt_installed, start_rt, transactions, update_ticket)
from _server import build_index, demo_records, free_port, make_settings, serve

from caselink.config import load_settings
from caselink.errors import RecordNotFound
from indexing.sources import NOTE_MARK, SourceError, open_sources
from indexing.sources.state import SourceState
from recommender.results import SearchQuery
from recommender.service import CaselinkService
from recommender.sync import make_syncer

pytestmark = pytest.mark.skipif(not rt_installed(), reason="needs Debian request-tracker5, rt5-db-sqlite and "
                                "rt5-standalone (make rt)")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 120


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    server = start_rt(tmp_path_factory.mktemp("rt"), free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(rt):
    with rt.client() as client:
        yield client


def rt_settings(rt, data_dir: Path, **extra):
    token_file = data_dir.parent / f"{data_dir.name}-token"
    token_file.write_text(rt.token + "\n", encoding="utf-8")
    section = {"url": rt.url, "token_env": "CASELINK_TEST_NO_SUCH_VARIABLE", "token_file": str(token_file),
               "queues": ["General", "Problems"], "queue_kinds": {"Problems": "problem"}, "fields": CUSTOM_FIELDS,
               "attributes": ATTRIBUTE_FIELDS, "retries": 1, **extra}
    return make_settings(data_dir, sources__rt=section)


@pytest.fixture(scope="module")
def synced(rt, tmp_path_factory, use_encoder):
    """caselink with the demo history, synced to the module's RT: (service, syncer, state)."""
    settings = rt_settings(rt, tmp_path_factory.mktemp("caselink") / "data")
    build_index(settings)
    svc = CaselinkService.open(settings, encoder=use_encoder)
    state = SourceState(settings.sources_path).open()
    source = open_sources(settings)[0]
    syncer = make_syncer(svc, source, state)
    # The first sync, here rather than in whichever test runs first: tickets created from now on
    # are new and earn a note, so each test that counts notes also passes run on its own.
    syncer.run_once()
    try:
        yield svc, syncer, state
    finally:
        source.close()
        state.close()
        svc.close()


def test_tickets_reach_caselink_with_fields_links_and_messages(api, synced):
    svc, syncer, _ = synced
    syncer.run_once()  # the first sync: from here on a ticket is new and earns a note
    problem = create_ticket(api, Queue="Problems", Subject="干泵接触器批量失效",
                            Content="多台刻蚀机干泵接触器线圈烧毁，报警 E1023，"
                                    "疑似供应商批次问题。",
                            CustomFields={"Product": "HX-Etch 500", "Error codes": ["E1023"]})
    case = create_ticket(api, Subject="刻蚀机干泵电流上涨后跳停",
                         Content="抽真空时干泵电流一直往上涨然后跳停，报警 E1023。",
                         CustomFields={"Product": "HX-Etch 500", "Model": "E500-2", "Module": "真空系统",
                                       "Error codes": ["E1023", "PN-7731-02"]}, RefersTo=problem)
    correspond(api, case, "換了新的接觸器還是跳機")  # traditional script, later correspondence
    comment(api, case, "internal: check the supplier lot")  # a comment is not synced text
    english = create_ticket(api, Subject="Door interlock fault A-4410", Content="Machine stops with alarm A-4410 "
                            "when the operator closes the front door.", CustomFields={"Error codes": "A-4410"})
    update_ticket(api, english, DependsOn=case)

    report = syncer.run_once()
    assert report.skipped == [] and report.upserted >= 3

    rec = svc.get(f"RT-{case}")
    assert rec.kind == "case" and rec.title == "刻蚀机干泵电流上涨后跳停" and rec.status in ("new", "open")
    assert (rec.product, rec.model, rec.module) == ("HX-Etch 500", "E500-2", "真空系统")
    assert rec.error_codes == ["E1023", "PN-7731-02"] and rec.group == "General" and rec.created is not None
    assert "抽真空时干泵电流" in rec.text and "換了新的接觸器還是跳機" in rec.text
    assert "supplier lot" not in rec.text
    assert set(rec.links) == {f"RT-{problem}", f"RT-{english}"}
    prob = svc.get(f"RT-{problem}")
    assert prob.kind == "problem" and prob.links == [f"RT-{case}"] and prob.error_codes == ["E1023"]
    assert svc.get(f"RT-{english}").links == [f"RT-{case}"]
    # The synced tickets are searchable, across scripts, next to the demo history.
    hits = svc.related(f"RT-{case}", k=5, kinds=["problem"]).results
    assert hits[0].id in (f"RT-{problem}", "P-2001")

    before = {i: svc.get(f"RT-{i}").model_dump() for i in (problem, case, english)}
    again = syncer.run_once()  # nothing changed in RT but caselink's own notes: nothing is rewritten
    after = {i: svc.get(f"RT-{i}").model_dump() for i in before}
    diff = {i: {k: (v, after[i][k]) for k, v in rec.items() if after[i][k] != v} for i, rec in before.items()}
    assert again.upserted == 0 and again.deleted == 0 and again.notes == 0, diff


def test_custom_fields_become_attributes_that_filter_and_follow_edits(api, synced):
    svc, syncer, _ = synced
    syncer.run_once()
    acme = create_ticket(api, Subject="刻蚀机腔体压力波动 E3301", Content="腔体压力波动，报警 E3301 后停机。",
                         CustomFields={"Customer": "ACME Semi", "Product": "HX-Etch 500"})
    other = create_ticket(api, Subject="刻蚀机腔体压力波动 E3301 再次出现", Content="同样的腔体压力波动，报警 E3301。",
                          CustomFields={"Customer": "Globex"})
    bare = create_ticket(api, Subject="腔体压力波动 E3301 无客户", Content="没有填写客户的工单，报警 E3301。")
    long = create_ticket(api, Subject="腔体压力波动 E3301 长客户名", Content="客户字段过长的工单，报警 E3301。",
                         CustomFields={"Customer": "长" * 201})
    report = syncer.run_once()
    assert report.skipped == []
    assert svc.get(f"RT-{acme}").attributes == {"customer": "ACME Semi"}
    assert svc.get(f"RT-{other}").attributes == {"customer": "Globex"}
    assert svc.get(f"RT-{bare}").attributes == {}
    # A value over the record's bound leaves that attribute out, said in the report; the rest is kept.
    assert svc.get(f"RT-{long}").attributes == {} and "腔体压力波动" in svc.get(f"RT-{long}").title
    assert report.warnings == [f"RT-{long}: attribute 'customer' (RT custom field 'Customer') left out: 201 "
                               "characters, at most 200 are allowed"]

    def found(**filters) -> set[str]:
        hits = svc.search(SearchQuery(text="腔体压力波动 E3301", k=50, **filters)).results
        return {h.id for h in hits if h.id.startswith("RT-")}

    assert found(attributes={"customer": "acme semi"}) == {f"RT-{acme}"}
    assert found(attributes={"customer": ["ACME Semi", "Globex"]}) == {f"RT-{acme}", f"RT-{other}"}
    related = {r.id for r in svc.related(f"RT-{bare}", k=50, attributes={"customer": "Globex"}).results}
    assert related == {f"RT-{other}"}

    # An edit of the custom field follows: the new value filters, the old one no longer finds it.
    update_ticket(api, acme, CustomFields={"Customer": "Initech"})
    update_ticket(api, other, CustomFields={"Customer": ""})
    report = syncer.run_once()
    assert {w.split(":")[0] for w in report.warnings} <= {f"RT-{long}"}  # read again within RT's second: said again
    assert svc.get(f"RT-{acme}").attributes == {"customer": "Initech"}
    assert svc.get(f"RT-{other}").attributes == {}
    assert found(attributes={"customer": "ACME Semi"}) == set()
    assert found(attributes={"customer": "initech"}) == {f"RT-{acme}"}
    assert found(attributes={"customer": "Globex"}) == set()


def test_edits_resolutions_and_deletions_follow(api, synced):
    svc, syncer, _ = synced
    a = create_ticket(api, Subject="主轴过热报警 E2040", Content="加工时主轴温度升高，报警 E2040 后停机。")
    b = create_ticket(api, Subject="Spindle vibration at high speed", Content="Strong vibration above 8000 rpm.")
    c = create_ticket(api, Subject="液压系统压力不足", Content="液压站压力只有 3 MPa。")
    syncer.run_once()
    assert svc.get(f"RT-{a}").status in ("new", "open")

    update_ticket(api, a, Subject="主轴过热报警 E2040（冷却泵）")
    correspond(api, a, "清洗冷却泵滤网后恢复", Status="resolved")
    update_ticket(api, b, Status="rejected")
    delete_ticket(api, c)
    report = syncer.run_once()
    assert report.deleted == 1

    rec = svc.get(f"RT-{a}")
    assert rec.title == "主轴过热报警 E2040（冷却泵）" and "清洗冷却泵滤网后恢复" in rec.text
    assert rec.status == "resolved" and rec.closed is not None
    assert svc.get(f"RT-{b}").status == "rejected"
    with pytest.raises(RecordNotFound):
        svc.get(f"RT-{c}")
    # Resolved and rejected tickets leave open_only; the demo's open problem order stays.
    related = {r.id for r in svc.related("C-1002", k=20, open_only=True).results}
    assert f"RT-{a}" not in related and f"RT-{b}" not in related and "P-2003" in related
    assert f"RT-{a}" in {r.id for r in svc.related("C-1002", k=20).results}

    # A ticket moved to a queue caselink does not sync leaves caselink too.
    moved = create_ticket(api, Subject="Robot fails to pick wafer W3001", Content="vacuum grip alarm W3001")
    syncer.run_once()
    svc.get(f"RT-{moved}")
    resp = api.post("/queue", json={"Name": "Elsewhere"})
    assert resp.status_code == 201, resp.text
    update_ticket(api, moved, Queue="Elsewhere")
    syncer.run_once()
    with pytest.raises(RecordNotFound):
        svc.get(f"RT-{moved}")


def test_a_merged_ticket_leaves_and_its_messages_join_the_one_kept(api, synced):
    svc, syncer, _ = synced
    kept = create_ticket(api, Subject="冷却水流量低报警 F-311", Content="冷却水流量低，报警 F-311。")
    merged = create_ticket(api, Subject="Chiller flow low F-311 again", Content="Same alarm F-311 on the night shift.")
    syncer.run_once()
    assert svc.get(f"RT-{merged}").title == "Chiller flow low F-311 again"
    resp = api.put(f"/ticket/{merged}", json={"MergeInto": int(kept)})
    assert resp.status_code == 200, resp.text
    report = syncer.run_once()  # incremental: RT's searches no longer list the merged ticket at all
    assert report.deleted == 1
    with pytest.raises(RecordNotFound):
        svc.get(f"RT-{merged}")
    rec = svc.get(f"RT-{kept}")  # RT shows the merged ticket's messages on the one kept
    assert rec.title == "冷却水流量低报警 F-311" and "冷却水流量低" in rec.text and "night shift" in rec.text


def test_note_on_a_new_ticket_once_private_with_links(api, synced):
    svc, syncer, state = synced
    number = create_ticket(api, Subject="真空泵无法启动，报警 E1023", Content="开机后真空泵无法启动，面板显示报警 E1023。",
                           CustomFields={"Error codes": ["E1023"]})
    report = syncer.run_once()
    assert report.notes == 1
    history = transactions(api, number)
    notes = [t for t in history if NOTE_MARK in (t["content"] or "")]
    assert len(notes) == 1 and notes[0]["type"] == "Comment"  # private: never correspondence
    body = notes[0]["content"]
    assert f"{syncer.page_url}/?related=RT-{number}" in body  # the caselink page, where votes count
    assert "C-1001" in body and "P-2001" in body and "SOP-VAC-01#3" in body  # case, open problem, SOP
    assert "same code E1023" in body
    assert not any(t["type"] == "Correspond" for t in history)

    # Run again, and again after the local note record is lost: the note is found on the ticket.
    assert syncer.run_once().notes == 0
    state.noted("rt", number, "")
    update_ticket(api, number, Subject="真空泵无法启动，报警 E1023 ")  # same text once stripped: no new note
    assert syncer.run_once().notes == 0
    assert len([t for t in transactions(api, number) if NOTE_MARK in (t["content"] or "")]) == 1

    # New text with other related records: a new note.
    correspond(api, number, "After the pump restarted the front door interlock alarm A-4410 came up too.")
    assert syncer.run_once().notes == 1
    notes = [t["content"] for t in transactions(api, number) if NOTE_MARK in (t["content"] or "")]
    assert len(notes) == 2 and "C-1004" in notes[1]


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="needs Debian chromium")
def test_note_shows_on_rt_ticket_page_in_chromium(rt, api, synced, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, syncer, _ = synced
    number = create_ticket(api, Subject="Door interlock fault again A-4410", Content="Alarm A-4410 when the "
                           "front door closes; interlock switch reading intermittent.")
    assert syncer.run_once().notes == 1
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1280,1400"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        driver.get(f"{rt.url}/Ticket/Display.html?id={number}")
        driver.find_element(By.NAME, "user").send_keys("root")
        driver.find_element(By.NAME, "pass").send_keys(ROOT_PASSWORD)
        driver.find_element(By.NAME, "pass").submit()
        # RT loads a ticket's history after the page (Ticket/Elements/DelayShowHistory: jQuery
        # .load), then hides it and slides it open over 400 ms: the note is in the page source
        # before it is shown, and WebDriver finds links and reads text only where they are shown.
        # So wait for the note and for the slide to be over, read in one script.
        WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
            "return document.body.textContent.includes('caselink: related records')"
            " && !!window.jQuery && jQuery(':animated').length === 0"))
        link = driver.find_element(By.PARTIAL_LINK_TEXT, "open in caselink")
        assert link.get_attribute("href") == f"{syncer.page_url}/?related=RT-{number}"
        assert "C-1004" in driver.find_element(By.TAG_NAME, "body").text
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", link)  # the comment in view
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "rt-ticket-note.png"))
    finally:
        driver.quit()


def test_sync_killed_half_way_catches_up_exactly(rt, api, tmp_path):
    data = tmp_path / "data"
    build_index(make_settings(data), demo_records()[:3])
    tickets = [create_ticket(api, Subject=f"批量工单 {i} 干泵报警 E{1100 + i}", Content=f"ticket {i}: pump alarm "
                             f"E{1100 + i} during pump-down") for i in range(30)]
    config = tmp_path / "caselink.toml"
    token = tmp_path / "token"
    token.write_text(rt.token, encoding="utf-8")
    config.write_text(f'''[sources.rt]
url = "{rt.url}"
token_env = "CASELINK_TEST_NO_SUCH_VARIABLE"
token_file = "{token}"
queues = ["General"]
page_size = 3
workers = 1
comment = false
''', encoding="utf-8")
    proc = subprocess.Popen(cli_command("sync", "rt", "--config", str(config)), env=child_env(data),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    state = data / "sources.sqlite"

    def applied() -> int:
        try:
            with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as conn:
                return conn.execute("SELECT count(*) FROM items").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    try:
        wait_until(lambda: applied() >= 6, timeout=WAIT_S, what="a few pages applied", interval=0.01, alive=proc)
    finally:
        sigkill(proc)
    half = applied()
    with sqlite3.connect(state) as conn:
        mark = json.loads(conn.execute("SELECT value FROM watermarks").fetchone()[0])
    assert mark["next"] is not None and mark["after"] > 0  # killed in the middle of a walk

    settings = load_settings(config, env={}, data_dir=data)
    ids_before = {rid for rid in _ids(settings)}
    done = subprocess.run(cli_command("sync", "rt", "--config", str(config), "--json"), env=child_env(data),
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    ids = _ids(settings)
    synced_tickets = {i for i in ids if i.startswith("RT-")}
    # Every ticket of the queue is there, each once, and the restart wrote only what the kill left.
    assert {f"RT-{t}" for t in tickets} <= synced_tickets
    assert len(ids) == len(set(ids))
    assert summary["written"] == len(synced_tickets - ids_before) and summary["deleted"] == 0
    assert half < len(synced_tickets)


def _ids(settings) -> list[str]:
    from indexing.store import RecordStore

    with RecordStore.existing(settings.store_path) as store:
        out, after = [], ""
        while True:
            rows, after = store.list_ids(after=after, limit=1000)
            out += [r[0] if isinstance(r, tuple) else r.id for r in rows]
            if not after:
                return out


def test_rt_down_mid_sync_stops_cleanly_and_the_next_sync_catches_up(rt, api, tmp_path, use_encoder):
    for i in range(9):
        create_ticket(api, Subject=f"停机工单 {i}: chamber pressure alarm E{1200 + i}", Content=f"pump trip {i}")
    with FlakyProxy(rt.url) as proxy:
        settings = rt_settings(rt, tmp_path / "data", url=proxy.url, queues=["General"], queue_kinds={},
                               page_size=3, workers=1, retries=1, comment=False)
        build_index(settings, demo_records()[:3])
        svc = CaselinkService.open(settings, encoder=use_encoder)
        state = SourceState(settings.sources_path).open()
        source = open_sources(settings)[0]
        try:
            syncer = make_syncer(svc, source, state)
            # The check and the walk's start take 6 requests, then each page 4 (the walk's search, the
            # tickets, their transactions, their attachments): RT dies a few pages in, in the middle of one.
            proxy.fail_after = 6 + 4 * 5 + 2
            with pytest.raises(SourceError) as info:
                syncer.run_once()
            assert info.value.field == "sources.rt.url" and "unreachable" in info.value.message
            applied = {it.source_id for it in state.items("rt")}
            proxy.fail_after = None  # RT is back
            in_rt = source.present()
            assert 0 < len(applied) < len(in_rt)
            # No partial state: what the state says is applied is exactly what caselink has.
            assert {sid for sid in in_rt if _stored(svc, f"RT-{sid}")} == applied

            report = syncer.run_once()
            assert report.upserted == len(in_rt) - len(applied) and report.deleted == 0
            assert all(_stored(svc, f"RT-{sid}") for sid in in_rt)
            assert {it.source_id for it in state.items("rt")} == in_rt
        finally:
            source.close()
            state.close()
            svc.close()


def test_rt_busy_for_a_moment_is_retried_with_backoff(rt, api, tmp_path, use_encoder, caplog):
    number = create_ticket(api, Subject="Load port door alarm L-2201", Content="Alarm L-2201 at the load port.")
    with FlakyProxy(rt.url) as proxy:
        settings = rt_settings(rt, tmp_path / "data", url=proxy.url, queues=["General"], queue_kinds={},
                               retries=2, comment=False)
        build_index(settings, demo_records()[:3])
        svc = CaselinkService.open(settings, encoder=use_encoder)
        state = SourceState(settings.sources_path).open()
        source = open_sources(settings)[0]
        try:
            proxy.busy = 2  # the first request is answered 503 twice: tried again after 0.5 s, then after 1 s
            with caplog.at_level(logging.WARNING, logger="caselink.sources.rt"):
                report = make_syncer(svc, source, state).run_once()
            waits = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
            assert len(waits) == 2 and all("answered HTTP 503" in w for w in waits), waits
            assert waits[0].endswith("retrying in 0.5 s") and waits[1].endswith("retrying in 1.0 s")
            assert report.skipped == [] and svc.get(f"RT-{number}").title == "Load port door alarm L-2201"
            assert {it.source_id for it in state.items("rt")} == source.present()
        finally:
            source.close()
            state.close()
            svc.close()


def _stored(svc, record_id: str) -> bool:
    try:
        svc.get(record_id)
        return True
    except RecordNotFound:
        return False


def test_serve_runs_the_sync_loop(rt, api, tmp_path):
    settings = rt_settings(rt, tmp_path / "data", interval_seconds=1)
    build_index(settings, demo_records()[:3])
    number = create_ticket(api, Subject="Served sync: HMI firmware freezes", Content="touch screen freezes")
    with serve(settings) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        wait_until(lambda: client.get(f"/v1/records/RT-{number}").status_code == 200, timeout=WAIT_S,
                   what="the ticket synced by the server", interval=0.2)
        update_ticket(api, number, Status="resolved")
        wait_until(lambda: client.get(f"/v1/records/RT-{number}").json().get("status") == "resolved",
                   timeout=WAIT_S, what="the resolution synced by the server", interval=0.2)


def test_serve_keeps_serving_while_rt_is_down_and_catches_up(rt, api, tmp_path):
    number = create_ticket(api, Subject="Chiller flow alarm F-310 while RT was down", Content="chiller flow F-310")
    with FlakyProxy(rt.url) as proxy:
        proxy.fail_after = 0  # RT is down when caselink starts
        settings = rt_settings(rt, tmp_path / "data", url=proxy.url, interval_seconds=1, retries=0)
        history = demo_records()[:3]
        build_index(settings, history)
        with serve(settings) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            wait_until(lambda: proxy.served >= 2, timeout=WAIT_S, what="the sync tried again", interval=0.1)
            assert client.get(f"/v1/records/{history[0].id}").status_code == 200  # still serving
            assert client.get(f"/v1/records/RT-{number}").status_code == 404
            proxy.fail_after = None  # RT is back: the loop, backing off (2 s, 4 s, ...), catches up
            wait_until(lambda: client.get(f"/v1/records/RT-{number}").status_code == 200, timeout=WAIT_S,
                       what="the ticket synced once RT was back", interval=0.2)


@pytest.mark.parametrize("change, field, words", [
    ({"token_file": None}, "sources.rt.token_env", "no RT token"),
    ({"bad_token": True}, "sources.rt.token_env", "refused the token"),
    ({"url": "http://127.0.0.1:{closed}"}, "sources.rt.url", "unreachable"),
    ({"url": "{rt}/REST/2.0"}, "sources.rt.url", "is not RT's REST2 API (HTTP 404)"),  # the API's URL, not RT's
    ({"url": "{rt}/rt"}, "sources.rt.url", "is not RT's REST2 API (HTTP 404)"),  # a path RT does not have
    ({"queues": ["General", "Nope"]}, "sources.rt.queues", "no queue 'Nope'"),
    ({"fields": {"product": "Produkt"}}, "sources.rt.fields.product", "no ticket custom field 'Produkt'"),
    ({"fields": {"module": "Line"}}, "sources.rt.fields.module", "'Line' (sources.rt.fields.module) applies to none"),
    ({"attributes": {"site": "Sitte"}}, "sources.rt.attributes.site", "no ticket custom field 'Sitte'"),
    ({"attributes": {"site": "Line"}}, "sources.rt.attributes.site", "'Line' (sources.rt.attributes.site) applies to "
                                                                     "none"),
    ({"attributes": {"1site": "Customer"}}, "sources.rt.attributes.1site", "key '1site' must be 1-64 ASCII"),
    ({"timezone": "Asia/Shanghai"}, "sources.rt.timezone", "is not the RT user's time zone"),
    ({"timezone": "America/New_York"}, "sources.rt.timezone", "is not the RT user's time zone"),
])
def test_misconfiguration_names_the_setting_and_writes_nothing(rt, api, synced, tmp_path, change, field, words):
    svc = synced[0]
    change = dict(change)
    if "timezone" in change:  # the check compares the last updated ticket's time: there must be one
        create_ticket(api, Subject="Time zone probe", Content="a ticket for the time zone check")
    section = rt_settings(rt, tmp_path / "data", retries=0).sources.rt.model_dump()
    if change.pop("bad_token", False):
        Path(section["token_file"]).write_text("1-14-0123456789abcdef0123456789abcdef", encoding="utf-8")
    if "url" in change:
        change["url"] = change["url"].format(closed=free_port(), rt=rt.url)
    section.update(change)
    settings = make_settings(tmp_path / "data", sources__rt=section)
    state = SourceState(settings.sources_path).open()
    before = svc.stats().records
    try:
        with pytest.raises(SourceError) as info:
            source = open_sources(settings)[0]
            try:
                make_syncer(svc, source, state).run_once()
            finally:
                source.close()
        assert info.value.field == field and words in info.value.message
        assert rt.token not in str(info.value)
        assert state.watermark("rt") is None and state.items("rt") == [] and svc.stats().records == before
    finally:
        state.close()
