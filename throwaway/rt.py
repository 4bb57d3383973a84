"""A throwaway Request Tracker 5 for the connector tests and the RT benchmark: Debian's RT with an
SQLite database in a temporary folder, its standalone server (``rt-server``) on a free loopback port, a queue for
problem orders, five ticket custom fields (four mapped to record fields, Customer to an attribute; and
a sixth, Line, applied to no queue), a root password for the web page and an auth token,
and REST2 helpers to create and change tickets.

Needs the Debian packages request-tracker5, rt5-db-sqlite and rt5-standalone (``make rt``).
``tests/test_rt.py`` wraps it in a module fixture; ``bench/rt_sync.py`` syncs a big one.
No fixtures here; import what you need (``from throwaway.rt import ...``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from throwaway import wait_ready

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
SETUP_DATABASE = shutil.which("rt-setup-database") or "/usr/sbin/rt-setup-database"
ROOT_PASSWORD = "caselink-test-pw"
CUSTOM_FIELDS = {"product": "Product", "model": "Model", "module": "Module", "error_codes": "Error codes"}
ATTRIBUTE_FIELDS = {"customer": "Customer"}  # record attribute key -> RT custom field
READY_TIMEOUT_S = 120.0


def rt_installed() -> bool:
    return RT_SERVER.exists() and Path(SETUP_DATABASE).exists()


_SITE_CONFIG = """
Set($rtname, 'caselink-test');
Set($Organization, 'caselink.test');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{db}');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($LogDir, '{dir}');
Set($Timezone, 'UTC');
Set($MailCommand, 'mbox');
# RT checks the token with bcrypt on every REST2 request; cost 4 keeps a throwaway RT fast.
Set($BcryptCost, 4);
1;
"""

_SETUP = r"""
use strict; use warnings;
use lib '%(lib)s';
use RT; RT::LoadConfig(); RT::Init();
my $q = RT::Queue->new(RT->SystemUser);
my ($qid, $m) = $q->Create(Name => 'Problems', Description => 'problem orders'); die "queue: $m" unless $qid;
for my $spec (['Product', 1], ['Model', 1], ['Module', 1], ['Error codes', 0], ['Customer', 1]) {
    my $cf = RT::CustomField->new(RT->SystemUser);
    my ($id, $msg) = $cf->Create(Name => $spec->[0], Type => 'Freeform', MaxValues => $spec->[1],
                                 LookupType => 'RT::Queue-RT::Ticket');
    die "custom field $spec->[0]: $msg" unless $id;
    my ($ok, $m2) = $cf->AddToObject(RT::Queue->new(RT->SystemUser));  # every queue
    die "apply $spec->[0]: $m2" unless $ok;
}
my $line = RT::CustomField->new(RT->SystemUser);  # a ticket custom field applied to no queue
my ($lid, $lmsg) = $line->Create(Name => 'Line', Type => 'Freeform', MaxValues => 1, LookupType => 'RT::Queue-RT::Ticket');
die "custom field Line: $lmsg" unless $lid;
my $u = RT::User->new(RT->SystemUser); $u->Load('root');
my ($pok, $pmsg) = $u->SetPassword('%(password)s'); die "password: $pmsg" unless $pok;
my $t = RT::AuthToken->new(RT->SystemUser);
my ($id, $msg, $auth) = $t->Create(Owner => $u->Id, Description => 'caselink tests');
die "token: $msg\n" unless $id;
print "TOKEN $auth\n";
if (!%(scrips)d) {  # notifications off: a bench's RT creates tickets twice as fast without them
    my $scrips = RT::Scrips->new(RT->SystemUser); $scrips->UnLimit;
    while (my $s = $scrips->Next) { my ($ok, $m) = $s->SetDisabled(1); die "scrip: $m" unless $ok; }
}
"""


@dataclass
class RT:
    url: str
    token: str
    folder: Path
    proc: subprocess.Popen

    @property
    def api(self) -> str:
        return self.url + "/REST/2.0"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=60, headers={"Authorization": f"token {self.token}"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # rt-server and its prefork workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def start_rt(folder: Path, port: int, *, scrips: bool = True) -> RT:
    """Create an RT in ``folder`` and serve it on 127.0.0.1:``port``; stop it with :meth:`RT.stop`.
    An RT already created in ``folder`` (by an earlier call) is served again with its tickets.
    ``scrips=False`` disables RT's scrips (notifications, auto-replies) in a new RT: a bench's
    setup, the tickets and their messages are the same."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "etc.d").mkdir(exist_ok=True)  # no Debian site config: only ours
    config = folder / "RT_SiteConfig.pm"
    config.write_text(_SITE_CONFIG.format(port=port, db=folder / "rt.db", dir=folder), encoding="utf-8")
    env = {**os.environ, "RT_SITE_CONFIG": str(config), "RT_SITE_CONFIG_DIR": str(folder / "etc.d")}
    saved = folder / "token"
    if saved.is_file() and (folder / "rt.db").is_file():
        token = saved.read_text(encoding="utf-8").strip()
    else:
        token = _create(folder, env, scrips)
        saved.write_text(token, encoding="utf-8")
    with (folder / "server.log").open("ab") as out:
        proc = subprocess.Popen([str(RT_SERVER), "--host", "127.0.0.1", "--port", str(port), "--max-workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    rt = RT(f"http://127.0.0.1:{port}", token, folder, proc)

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"rt-server exited with {proc.returncode}, see {folder / 'server.log'}")

    try:
        wait_ready(rt.url + "/NoAuth/Login.html", alive, READY_TIMEOUT_S)
    except BaseException:
        rt.stop()
        raise
    return rt


def _create(folder: Path, env: dict[str, str], scrips: bool) -> str:
    """A new RT database in ``folder``: the setup of the module docstring; returns the token."""
    (folder / "rt.db").unlink(missing_ok=True)
    log = folder / "setup.log"
    with log.open("ab") as out:
        done = subprocess.run([SETUP_DATABASE, "--action", "init", "--skip-create"], env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"rt-setup-database failed, see {log}")
    script = folder / "setup.pl"
    script.write_text(_SETUP % {"lib": RT_LIB, "password": ROOT_PASSWORD, "scrips": int(scrips)}, encoding="utf-8")
    done = subprocess.run(["perl", str(script)], env=env, capture_output=True, text=True, timeout=300)
    token = next((line[6:] for line in done.stdout.splitlines() if line.startswith("TOKEN ")), "")
    if done.returncode != 0 or not token:
        raise RuntimeError(f"RT setup failed: {done.stderr[-2000:]}")
    return token


def create_ticket(client: httpx.Client, **fields) -> str:
    """Create a ticket through REST2; returns its number."""
    body = {"Queue": "General", "ContentType": "text/plain", **fields}
    resp = client.post("/ticket", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def update_ticket(client: httpx.Client, number: str, **fields) -> None:
    resp = client.put(f"/ticket/{number}", json=fields)
    assert resp.status_code == 200, resp.text


def correspond(client: httpx.Client, number: str, text: str, **extra) -> None:
    resp = client.post(f"/ticket/{number}/correspond", json={"Content": text, "ContentType": "text/plain", **extra})
    assert resp.status_code == 201, resp.text


def comment(client: httpx.Client, number: str, text: str) -> None:
    resp = client.post(f"/ticket/{number}/comment", json={"Content": text, "ContentType": "text/plain"})
    assert resp.status_code == 201, resp.text


def delete_ticket(client: httpx.Client, number: str) -> None:
    resp = client.delete(f"/ticket/{number}")
    assert resp.status_code == 204, resp.text


def transactions(client: httpx.Client, number: str) -> list[dict]:
    """The ticket's history: type and, for messages, their contents."""
    kinds = {}
    page = 1
    while True:
        data = client.get(f"/ticket/{number}/history", params={"fields": "Type", "per_page": 100, "page": page}).json()
        kinds.update({t["id"]: t["Type"] for t in data["items"]})
        if page >= int(data.get("pages") or 0):
            break
        page += 1
    atts = client.get(f"/ticket/{number}/attachments",
                      params={"fields": "Content,ContentType,TransactionId", "per_page": 100}).json()["items"]
    return [{"type": kinds.get(str(a["TransactionId"])), "content": a.get("Content", ""),
             "content_type": a.get("ContentType")} for a in atts]


class FlakyProxy:
    """A loopback HTTP proxy in front of RT that can go down: after ``fail_after`` more requests
    it drops every connection unanswered (as an RT that died would), until ``fail_after`` is None;
    and be busy: the next ``busy`` requests are answered HTTP 503 (as a web server in front of an
    RT that is restarting answers)."""

    def __init__(self, target: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self
        self.fail_after: int | None = None
        self.busy = 0
        self.served = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=target, timeout=120)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                with proxy._lock:
                    down = proxy.fail_after is not None and proxy.served >= proxy.fail_after
                    busy = not down and proxy.busy > 0
                    proxy.busy -= busy
                    proxy.served += 1
                if down:
                    self.close_connection = True  # no answer at all
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if busy:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                resp = proxy._http.request(self.command, self.path, content=body or None, headers=headers)
                self.send_response(resp.status_code)
                for key in ("content-type", "date"):
                    if key in resp.headers:
                        self.send_header(key, resp.headers[key])
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="rt-proxy", daemon=True)

    def __enter__(self) -> "FlakyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()
