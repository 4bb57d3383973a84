"""Request Tracker sync: a full sync of N tickets, an incremental sync, and how soon a new ticket
gets its related-records comment.

Against a real, throwaway RT 5 (throwaway/rt.py: Debian's RT, SQLite in a temporary folder, its
standalone server with 2 workers on a loopback port):

1. ``--tickets`` tickets (default 5,000) are created through REST2 (``POST /tickets/bulk``, 25
   per request, ``--clients`` at once; RT's notification scrips are off, the tickets are the
   same), in two queues (General: cases, Problems: problem orders), with subjects and
   texts in simplified and traditional Chinese and English, error codes and product custom
   fields, every 10th referring to an earlier one;
2. *full sync*: ``Syncer.run_once`` into an empty caselink data folder (the index is built
   empty first), i.e. REST2 reads of every ticket, embedding and indexing, comments off as for
   history;
3. *incremental*: 20 tickets edited through REST2, then one sync;
4. *new ticket to comment*: a :class:`SyncLoop` runs every ``--interval`` seconds as in
   ``caselink serve``; ``--new`` tickets are created one after another, each timed from its
   ``POST`` until the comment is on the ticket (polled through REST2).

Usage::

    python -m bench.rt_sync [--tickets 5000] [--interval 5] [--new 5]
    # or in two steps, the slow creation first, the RT kept in a folder between them:
    python -m bench.rt_sync --tickets 5000 --rt-dir /tmp/rt5000 --create-only
    python -m bench.rt_sync --tickets 5000 --rt-dir /tmp/rt5000
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import base_parser, fmt, free_port, log, md_table, write_report


def _ticket(i: int, rng: random.Random) -> dict:
    topics = [
        ("干泵电流持续上升后跳停", "抽真空时干泵电流一直往上涨然后跳停，报警 E{c}。", "HX-Etch 500"),
        ("乾泵跳機，腔體壓力異常", "夜班乾泵無預警停止，控制器顯示過溫保護 E{c}，更換冷卻水濾網後恢復。", "HX-Etch 500"),
        ("Robot fails to pick wafer", "EFEM robot vacuum grip alarm W{c} while picking wafer from FOUP slot {n}.",
         "HX-Litho 3000"),
        ("激光功率下降", "曝光时激光输出功率比设定值低{n}%，报警 A-{c}，更换 PN-7731-02 后恢复。", "HX-Litho 3000"),
        ("Door interlock fault", "Machine stops with alarm A-{c} when the operator closes the front door.",
         "HX-M100"),
        ("主轴过热报警", "加工时主轴温度升高到 {n} 度，报警 E{c} 后停机，冷却液流量偏低。", "HX-L3200"),
    ]
    title, text, product = topics[i % len(topics)]
    code = 1000 + rng.randrange(400)
    n = rng.randrange(5, 95)
    return {"Queue": "Problems" if i % 7 == 0 else "General", "Subject": f"{title} #{i}",
            "Content": text.format(c=code, n=n), "ContentType": "text/plain",
            "CustomFields": {"Product": product, "Error codes": [f"E{code}"]}}


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__.split("\n\n")[0], default_sizes="5000", out_name="rt_sync.md")
    p.add_argument("--tickets", type=int, default=5000)
    p.add_argument("--interval", type=float, default=5.0, help="sync loop interval, s (default 5)")
    p.add_argument("--new", type=int, default=5, help="new tickets timed to their comment (default 5)")
    p.add_argument("--clients", type=int, default=1, help="REST2 clients creating tickets at once (default 1)")
    p.add_argument("--rt-dir", type=Path, default=None,
                   help="keep the RT in this folder; its tickets from an earlier run with the same --tickets "
                        "are reused (the run changes some of them: a folder is good for one sync run)")
    p.add_argument("--create-only", action="store_true", help="with --rt-dir: stop once the tickets exist")
    a = p.parse_args(argv)
    if a.create_only and a.rt_dir is None:
        p.error("--create-only needs --rt-dir")

    from throwaway.rt import CUSTOM_FIELDS, create_ticket, start_rt, update_ticket

    from caselink.config import load_settings
    from indexing.sources import NOTE_MARK, open_sources
    from indexing.sources.state import SourceState
    from recommender.service import CaselinkService
    from recommender.sync import SyncLoop, make_syncer

    rng = random.Random(7)
    rows: list[list[object]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="caselink-rt-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        rt = start_rt(a.rt_dir or tmp / "rt", free_port(), scrips=False)
        log(f"RT up in {time.perf_counter() - t:.1f} s at {rt.url}")
        try:
            with rt.client() as api:
                made = (a.rt_dir / "tickets.json") if a.rt_dir else None
                earlier = json.loads(made.read_text(encoding="utf-8")) if made and made.is_file() else None
                if earlier and earlier["tickets"] == a.tickets:
                    numbers = earlier["numbers"]
                    created_s = earlier["seconds"]
                    log(f"reusing the {len(numbers)} tickets in {a.rt_dir}")
                    notes.append(f"tickets created by an earlier run (`{earlier['command']}`, started "
                                 f"{earlier['started']}, load average {earlier['load']} at its end)")
                else:
                    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
                    t = time.perf_counter()
                    numbers = _create_all(rt, a.tickets, a.clients, rng)
                    created_s = time.perf_counter() - t
                    log(f"created {len(numbers)} tickets in {created_s:.1f} s")
                    if made:
                        made.write_text(json.dumps({
                            "tickets": a.tickets, "numbers": numbers, "seconds": created_s, "started": started,
                            "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
                            "command": "python -m bench.rt_sync " + " ".join(sys.argv[1:] if argv is None else argv)}),
                            encoding="utf-8")
                rows.append([f"create tickets (REST2 bulk, 25 per request, {a.clients} client"
                             f"{'s' if a.clients > 1 else ''})", f"{len(numbers):,}", fmt(created_s),
                             fmt(len(numbers) / created_s)])
                if a.create_only:
                    return

                token = tmp / "token"
                token.write_text(rt.token, encoding="utf-8")
                settings = load_settings(env={}, data_dir=tmp / "data", sources__rt={
                    "url": rt.url, "token_env": "CASELINK_BENCH_NO_SUCH_VARIABLE", "token_file": str(token),
                    "queues": ["General", "Problems"], "queue_kinds": {"Problems": "problem"},
                    "fields": CUSTOM_FIELDS, "interval_seconds": a.interval})
                svc, _ = CaselinkService.build(settings, rebuild=False)
                state = SourceState(settings.sources_path).open()
                source = open_sources(settings)[0]
                try:
                    syncer = make_syncer(svc, source, state, notes=False)
                    t = time.perf_counter()
                    report = syncer.run_once()
                    full_s = time.perf_counter() - t
                    log(f"full sync: {report.upserted} written in {full_s:.1f} s")
                    rows.append(["full sync (first, empty caselink)", f"{report.upserted:,}", fmt(full_s),
                                 fmt(report.upserted / full_s)])

                    for n in rng.sample(numbers, 20):
                        update_ticket(api, n, Subject=f"edited {n}: 干泵报警 E1399 after PM")
                    t = time.perf_counter()
                    report = syncer.run_once()
                    inc_s = time.perf_counter() - t
                    rows.append(["incremental sync after 20 edits", f"{report.upserted:,}", fmt(inc_s),
                                 fmt(report.upserted / inc_s)])
                    t = time.perf_counter()
                    report = syncer.run_once()
                    rows.append(["sync with nothing changed", f"{report.upserted:,}", fmt(time.perf_counter() - t),
                                 "-"])

                    syncer.notes = True
                    loop = SyncLoop(syncer, every=a.interval).start()
                    waits = []
                    try:
                        for i in range(a.new):
                            t = time.perf_counter()
                            n = create_ticket(api, Subject=f"新工单 {i}: 干泵电流上涨跳停 E1023",
                                              Content="抽真空时干泵电流一直往上涨然后跳停，报警 E1023。")
                            while True:
                                atts = api.get(f"/ticket/{n}/attachments",
                                               params={"fields": "Content", "per_page": 100}).json()["items"]
                                if any(NOTE_MARK in (x.get("Content") or "") for x in atts):
                                    break
                                if time.perf_counter() - t > 600:
                                    raise TimeoutError(f"no comment on ticket {n} after 600 s")
                                time.sleep(0.2)  # poll interval of the bench's own client
                            waits.append(time.perf_counter() - t)
                            log(f"ticket {n}: comment after {waits[-1]:.1f} s")
                    finally:
                        loop.stop(timeout=120)
                    waits.sort()
                    rows.append([f"new ticket to its comment (loop every {a.interval:g} s), median / max",
                                 f"{len(waits)}", f"{fmt(waits[len(waits) // 2])} / {fmt(waits[-1])}", "-"])
                finally:
                    source.close()
                    state.close()
                    svc.close()
        finally:
            rt.stop()
    body = md_table(["step", "tickets", "seconds", "tickets/s"], rows)
    write_report(a.out, "Request Tracker sync", body, notes=notes + [
        "RT 5.0.3 (Debian), SQLite, rt-server (Starlet) with 2 workers, $BcryptCost 4 (RT checks the token with "
        "bcrypt on every request; one bcrypt at RT's default cost 12 took 1.0 s on this loaded machine)",
        "RT's notification scrips disabled in the bench's RT (they only slow ticket creation down)",
        "caselink: use-m3 encoder, hybrid ranking; the comment needs 3 related-record rankings"])


def _create_all(rt, n: int, clients: int, rng: random.Random) -> list[str]:
    """Create ``n`` tickets through REST2, 25 per bulk request, ``clients`` requests at once; the
    ticket numbers in order."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [_ticket(i, rng) for i in range(n)]
    for i, body in enumerate(bodies):
        if i % 10 == 9 and i >= 100:  # refers to a ticket created at least a whole request earlier
            body["RefersTo"] = int(rng.randrange(1, max(2, (i // 25) * 25 - 25 * clients)))
    chunks = [bodies[i:i + 25] for i in range(0, len(bodies), 25)]
    numbers: list[str] = []

    def create(chunk: list[dict]) -> list[str]:
        with rt.client() as api:
            resp = api.post("/tickets/bulk", json=chunk, timeout=600)
        assert resp.status_code == 201, resp.text[:300]
        return [str(r["id"]) for r in resp.json()]

    with ThreadPoolExecutor(clients) as pool:
        for done in pool.map(create, chunks):
            numbers += done
            if len(numbers) % 500 == 0:
                log(f"{len(numbers)} tickets created")
    return numbers


if __name__ == "__main__":
    main()
