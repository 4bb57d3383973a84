"""The search page in a real headless Chromium against the real server."""

from __future__ import annotations

import re

from pathlib import Path

import httpx
import pytest
from _server import build_index, make_settings, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_S = 30

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason="needs Debian chromium + chromium-driver at /usr/bin/chromium, /usr/bin/chromedriver")

XSS_TITLE = '<img src=x onerror="document.title=\'pwned\'"> 换刀臂卡住'


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("page"))
    build_index(settings)
    with serve(settings) as running:
        yield running


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,1100", "--lang=zh-CN"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S)


def _search(driver, url: str, text: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url + "/")
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .result")
                        or d.find_element(By.ID, "error").is_displayed())
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
    return driver.find_elements(By.CSS_SELECTOR, "#results .result")


def test_search_highlight_feedback_and_screenshot(srv, browser):
    from selenium.webdriver.common.by import By

    query = "真空泵无法启动"
    results = _search(browser, srv.url, query)
    # Grouped as the related view is: procedures, then known problems, then past cases.
    groups = browser.execute_script("return [...document.querySelectorAll('#results .group')].map(g => g.className)")
    assert groups == ["group group-sops", "group group-problems", "group group-cases"], groups
    first = browser.find_element(By.CSS_SELECTOR, "#results .group-cases .result")
    assert first.get_attribute("data-id") == "C-1001"
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .code-card")  # no code in the query
    assert "真空泵无法启动" in first.find_element(By.CSS_SELECTOR, ".title").text
    marks = [m.text for m in first.find_elements(By.CSS_SELECTOR, "mark.hl")]
    assert "真空泵" in marks
    assert "E1023" in [c.text for c in first.find_elements(By.CSS_SELECTOR, ".chip")]
    assert first.find_element(By.CSS_SELECTOR, ".reason").text
    assert "path hybrid" in browser.find_element(By.ID, "status").text
    sop = next(r for r in results if r.get_attribute("data-id") == "SOP-VAC-01#3")
    assert sop == browser.find_element(By.CSS_SELECTOR, "#results .group-sops .result")
    assert "真空泵接触器更换" in sop.find_element(By.CSS_SELECTOR, ".title").text  # the section, in place
    assert "真空系统维护规程 (SOP-VAC-01)" in sop.find_element(By.CSS_SELECTOR, ".where").text
    assert not first.find_elements(By.CSS_SELECTOR, ".read-sop")  # a case has no document to read
    sop.find_element(By.CSS_SELECTOR, ".read-sop").click()
    _wait(browser).until(lambda d: sop.find_elements(By.CSS_SELECTOR, ".sop-doc li"))
    sections = sop.find_elements(By.CSS_SELECTOR, ".sop-doc li")
    stored = srv.service.store.sections_of("SOP-VAC-01")
    assert [li.get_attribute("data-id") for li in sections] == sorted(stored, key=lambda i: int(i.rpartition("#")[2]))
    current = sop.find_element(By.CSS_SELECTOR, ".sop-doc li.current")
    assert current.get_attribute("data-id") == "SOP-VAC-01#3" and "真空泵接触器更换" in current.text

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "search-page.png"))

    first.find_element(By.CSS_SELECTOR, ".helpful").click()
    _wait(browser).until(lambda d: first.find_elements(By.CSS_SELECTOR, ".thanks"))
    votes = [(f.query, f.record_id, f.helpful, f.source) for f in srv.service.store.feedback()]
    mine = [v for v in votes if v[:3] == (query, "C-1001", True)]
    assert len(mine) == 1 and re.fullmatch(r"page:[0-9a-f]{16}", mine[0][3]), votes  # one voter id per browser
    assert mine[0][3] == browser.execute_script("return localStorage.getItem('caselink.voter')")
    export = httpx.get(f"{srv.url}/v1/feedback/export", timeout=30).text
    assert f"{query}\tC-1001\t1\ttext\t{mine[0][3]}" in export
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe  # no CSP violations, failed fetches or script errors


def test_related_view_excludes_the_record_and_votes_with_its_id(srv, browser):
    from selenium.webdriver.common.by import By

    _search(browser, srv.url, "真空泵无法启动")
    first = browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="C-1001"]')
    first.find_element(By.CSS_SELECTOR, ".related").click()
    _wait(browser).until(lambda d: d.find_element(By.ID, "context").is_displayed()
                         and d.find_elements(By.CSS_SELECTOR, "#results .group .result"))
    assert "C-1001" in browser.find_element(By.ID, "context").text
    shown = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#results .result")]
    assert "C-1001" not in shown and "P-2001" in shown
    before = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#results .group-problems .result")]
    assert len(before) > 1 and before[-1] != "P-2001", before
    target = browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="P-2001"]')
    target.find_element(By.CSS_SELECTOR, ".not-helpful").click()
    _wait(browser).until(lambda d: target.find_elements(By.CSS_SELECTOR, ".thanks"))
    votes = [(f.query_id, f.record_id, f.helpful) for f in srv.service.store.feedback()]
    assert ("C-1001", "P-2001", False) in votes
    # Opened again, the related view ranks the record marked not helpful below every record nobody
    # judged (this small corpus fits in the list, so it ends its group), and says why.
    browser.refresh()
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .group-problems .result"))
    problems = browser.find_elements(By.CSS_SELECTOR, "#results .group-problems .result")
    assert len(problems) > 1 and problems[-1].get_attribute("data-id") == "P-2001", \
        [r.get_attribute("data-id") for r in problems]
    assert problems[-1].find_element(By.CSS_SELECTOR, ".reason").text.startswith("marked not helpful")
    # A second vote can be taken back at once: Undo deletes it and the buttons return.
    last = problems[-1]
    assert not last.find_elements(By.CSS_SELECTOR, ".undo")  # a fresh page offers the buttons, not an undo
    last.find_element(By.CSS_SELECTOR, ".not-helpful").click()
    _wait(browser).until(lambda d: last.find_elements(By.CSS_SELECTOR, ".undo"))
    last.find_element(By.CSS_SELECTOR, ".undo").click()
    _wait(browser).until(lambda d: last.find_elements(By.CSS_SELECTOR, ".not-helpful"))
    assert not last.find_elements(By.CSS_SELECTOR, ".thanks")
    mine = [f for f in srv.service.store.feedback() if (f.query_id, f.record_id) == ("C-1001", "P-2001")]
    assert len(mine) == 1 and not mine[0].helpful  # the first vote stays; the one taken back is gone
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_open_only_leaves_finished_records_out_of_search_and_related(srv, browser):
    from selenium.webdriver.common.by import By

    def shown(within="#results"):  # read in one script: the list may be replaced between two WebDriver calls
        return browser.execute_script(f"return [...document.querySelectorAll('{within} .result')].map(e => e.dataset.id)")

    assert "C-1001" in [r.get_attribute("data-id") for r in _search(browser, srv.url, "真空泵接触器 报警 E1023")]
    browser.find_element(By.ID, "open-only").click()
    browser.find_element(By.ID, "search-btn").click()
    _wait(browser).until(lambda d: shown() and "C-1001" not in shown())  # closed
    statuses = {i: srv.service.store.get(i).record.status for i in shown()}
    assert "P-2001" in statuses and not {"closed", "fixed"} & set(statuses.values()), statuses
    browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="P-2001"] .related').click()
    # The search is grouped too: wait for the related view's context line, then its groups.
    _wait(browser).until(lambda d: d.find_element(By.ID, "context").is_displayed() and shown("#results .group"))
    assert "P-2001" in browser.find_element(By.ID, "context").text
    related = shown("#results .group")
    assert "C-1001" not in related and "P-2002" not in related  # both closed; SOP sections stay
    assert any(i.startswith("SOP-") for i in related)


def test_an_error_code_shows_its_card_procedure_and_known_problem_first(srv, browser):
    from selenium.webdriver.common.by import By

    _search(browser, srv.url, "E1023")
    card = browser.find_element(By.CSS_SELECTOR, "#results .code-card")
    assert card.get_attribute("data-code") == "E1023"
    assert browser.execute_script(  # the card comes before every group
        "const r = document.querySelector('#results'); return r.firstElementChild.classList.contains('code-cards')")
    assert "1 case" in card.find_element(By.CSS_SELECTOR, ".seen").text  # C-1001
    assert "last seen 2024-03-05" in card.text
    procedure = card.find_element(By.CSS_SELECTOR, ".procedure")
    assert procedure.get_attribute("data-id") == "SOP-VAC-01#3" and "真空泵接触器更换" in procedure.text
    problem = card.find_element(By.CSS_SELECTOR, ".known-problem")
    assert problem.get_attribute("data-id") == "P-2001" and "open" in problem.get_attribute("class")
    assert "open · investigating" in problem.text and "临时更换为 PN-7731-02 新批次" in problem.text
    top = browser.execute_script("return [...document.querySelectorAll('#results .group')]"
                                 ".map(g => [g.className, g.querySelector('.result').dataset.id])")
    assert top[:2] == [["group group-sops", "SOP-VAC-01#3"], ["group group-problems", "P-2001"]], top
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "search-code-card.png"))
    procedure.find_element(By.CSS_SELECTOR, "a.open-sop").click()  # the section below, its whole SOP open
    sop = browser.find_element(By.CSS_SELECTOR, '#results .group-sops .result[data-id="SOP-VAC-01#3"]')
    _wait(browser).until(lambda d: sop.find_elements(By.CSS_SELECTOR, ".sop-doc li.current"))
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_the_code_card_keeps_to_the_kind_and_open_only_filters(srv, browser):
    from selenium.webdriver.common.by import By

    def card():  # read in one script: the list may be replaced between two WebDriver calls
        return browser.execute_script(
            "const c = document.querySelector('#results .code-card'); return c && {seen: c.querySelector('.seen')"
            ".textContent, ids: [...c.querySelectorAll('.procedure, .known-problem')].map(e => e.dataset.id)}")

    _search(browser, srv.url, "E1023")
    assert card() == {"seen": "1 case · last seen 2024-03-05", "ids": ["SOP-VAC-01#3", "P-2001"]}
    browser.find_element(By.CSS_SELECTOR, 'input[name="kind"][value="case"]').click()
    browser.find_element(By.ID, "search-btn").click()
    _wait(browser).until(lambda d: (card() or {}).get("ids") == [])  # cases only: no procedure, no problem order
    assert card()["seen"] == "1 case · last seen 2024-03-05"
    browser.find_element(By.ID, "open-only").click()
    browser.find_element(By.ID, "search-btn").click()
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .empty") and card() is None)


def test_record_text_is_escaped(srv, browser):
    from selenium.webdriver.common.by import By

    resp = httpx.put(f"{srv.url}/v1/records/C-XSS", timeout=30,
                     json={"kind": "case", "title": XSS_TITLE, "text": "换刀臂卡住 <b>bold</b> & <script>x()</script>"})
    assert resp.status_code in (200, 201)
    _search(browser, srv.url, "换刀臂卡住")
    result = browser.find_element(By.CSS_SELECTOR, "#results .group-cases .result")
    assert result.get_attribute("data-id") == "C-XSS"
    assert result.find_element(By.CSS_SELECTOR, ".title").text.startswith("<img src=x")
    assert "<b>bold</b>" in result.find_element(By.CSS_SELECTOR, ".snippet").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#results img, #results b, #results script")
    assert browser.title != "pwned"


# A burst of one new fault, well after the demo history: the emerging view must flag it.
BURST = [
    ("B-1", "2025-06-03", "腔盖互锁误报 E9401", "PM1 运行中突然报 E9401 lid open interlock，腔盖实际已关好，复位后又出现。"
     "腔盖微动开关接触不良。"),
    ("B-2", "2025-06-09", "腔蓋互鎖誤報 E9401", "PM2 製程中報 E9401 腔蓋開啟互鎖，腔蓋實際關閉。檢查腔蓋微動開關接觸不良，"
     "清潔後暫時恢復。"),
    ("B-3", "2025-06-15", "False lid-open interlock E9401", "E9401 lid open interlock during process although the "
     "chamber lid is closed. The lid micro switch contact is intermittent."),
    ("B-4", "2025-06-24", "腔盖开关误触发 E9401 导致 abort", "E9401 腔盖互锁误报，wafer abort，腔盖微动开关接触不良，"
     "更换开关后恢复。"),
]
# An open problem order with one linked case last window and three this window: rising.
RISING_PO = {"kind": "problem", "status": "investigating", "created": "2025-05-01", "module": "真空",
             "title": "TMP-2300 分子泵轴承早期失效，振动报警 E1110", "error_codes": ["E1110"],
             "text": "特定批号分子泵运行数月后振动报警 E1110，轴承磨损。"}
LINKED = [("K-0", "2025-05-20", "分子泵振动报警 E1110"), ("K-1", "2025-06-05", "分子泵运行中振动报警 E1110"),
          ("K-2", "2025-06-11", "分子幫浦振動報警 E1110"), ("K-3", "2025-06-18", "TMP vibration alarm E1110")]


def test_emerging_view_lists_the_burst_and_members_open_related(srv, browser):
    from selenium.webdriver.common.by import By

    for rid, created, title, text in BURST:
        resp = httpx.put(f"{srv.url}/v1/records/{rid}", timeout=30, json={
            "kind": "case", "title": title, "text": text, "created": created, "product": "HX-Etch 500",
            "module": "真空", "error_codes": ["E9401"], "status": "open"})
        assert resp.status_code in (200, 201), resp.text
    assert httpx.put(f"{srv.url}/v1/records/PO-RISE", json=RISING_PO, timeout=30).status_code in (200, 201)
    for rid, created, title in LINKED:
        resp = httpx.put(f"{srv.url}/v1/records/{rid}", timeout=30, json={
            "kind": "case", "title": title, "text": f"{title}，轴承异响。", "created": created, "module": "真空",
            "error_codes": ["E1110"], "links": ["PO-RISE"]})
        assert resp.status_code in (200, 201), resp.text
    browser.get(srv.url + "/")
    browser.find_element(By.ID, "nav-emerging").click()
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#emerging .emerging-group")
                         or d.find_element(By.ID, "error").is_displayed())
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    assert "view=emerging" in browser.current_url and not browser.find_element(By.ID, "search-form").is_displayed()
    group = browser.find_element(By.CSS_SELECTOR, "#emerging .emerging-group")
    assert group.get_attribute("data-cases") == "B-1 B-2 B-3 B-4"
    assert "E9401" in group.find_element(By.CSS_SELECTOR, ".title").text
    assert "4 cases" in group.text and "growth ×5.0" in group.text and "HX-Etch 500" in group.text
    assert [c.text for c in group.find_elements(By.CSS_SELECTOR, ".codes .chip")] == ["E9401"]
    members = group.find_elements(By.CSS_SELECTOR, "a.member")
    assert [m.text for m in members] == ["B-1", "B-2", "B-3", "B-4"]
    assert "1 emerging group" in browser.find_element(By.ID, "status").text
    rising = browser.find_element(By.CSS_SELECTOR, '#emerging .rising[data-id="PO-RISE"]')
    assert "E1110" in rising.find_element(By.CSS_SELECTOR, ".title").text and "growth ×" in rising.text
    assert [m.text for m in rising.find_elements(By.CSS_SELECTOR, "a.member")] == ["K-1", "K-2", "K-3"]
    # Weekly cases as inline SVG bars: 4 windows of 30 days = 18 weeks, the last ending on 2025-06-24 (B-4).
    bars = group.find_elements(By.CSS_SELECTOR, "svg.week-chart rect")
    counts = [int(b.get_attribute("data-count")) for b in bars]
    assert counts == [0] * 14 + [1, 1, 1, 1], counts  # B-1 06-03, B-2 06-09, B-3 06-15, B-4 06-24
    heights = [float(b.get_attribute("height")) for b in bars]
    assert heights[-1] == max(heights) > heights[0] and len(set(heights[-4:])) == 1
    assert "weekly cases since 2025-02-25" in group.find_element(By.CSS_SELECTOR, ".trend").text
    rising_bars = rising.find_elements(By.CSS_SELECTOR, "svg.week-chart rect")
    assert len(rising_bars) == 18 and sum(int(b.get_attribute("data-count")) for b in rising_bars) >= 3
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "emerging-page.png"))  # the trend charts

    members[1].click()  # B-2 -> "related to this record" in the search view
    _wait(browser).until(lambda d: d.find_element(By.ID, "context").is_displayed()
                         and d.find_elements(By.CSS_SELECTOR, "#results .group .result"))
    assert "related=B-2" in browser.current_url and not browser.find_element(By.ID, "emerging").is_displayed()
    assert "B-2" in browser.find_element(By.ID, "context").text
    shown = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#results .result")]
    assert "B-2" not in shown and {"B-1", "B-3", "B-4"} <= set(shown)

    # Suggest fields inline: the burst's module is suggested, the unset category is not (with the reason).
    target = browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="B-1"]')
    target.find_element(By.CSS_SELECTOR, ".suggest").click()
    _wait(browser).until(lambda d: target.find_elements(By.CSS_SELECTOR, '.suggestions tr[data-field="module"]'))
    module = target.find_element(By.CSS_SELECTOR, '.suggestions tr[data-field="module"]')
    assert module.find_element(By.CSS_SELECTOR, ".value strong").text == "真空" and "%" in module.text
    category = target.find_element(By.CSS_SELECTOR, '.suggestions tr[data-field="category"]')
    assert "no suggestion" in category.text and "'category' set" in category.text
    browser.save_screenshot(str(ARTIFACTS / "suggest-fields.png"))
    assert not browser.find_elements(By.CSS_SELECTOR, '#results .result.kind-sop .suggest')

    browser.back()  # history: back to the emerging view
    _wait(browser).until(lambda d: d.find_element(By.ID, "emerging").is_displayed()
                         and d.find_elements(By.CSS_SELECTOR, "#emerging .emerging-group"))
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe  # no CSP violations, failed fetches or script errors


def test_attributes_are_shown_in_results_and_the_record_view_and_filter_both(srv, browser):
    from selenium.webdriver.common.by import By

    original = httpx.get(f"{srv.url}/v1/records/C-1001", timeout=30).json()
    attrs = {"customer": "ACME 半导体", "site": "Fab 2", "serial": "<b>SN-0042</b>"}  # shown as text, never markup
    body = {k: v for k, v in original.items() if k != "id"}
    assert httpx.put(f"{srv.url}/v1/records/C-1001", json={**body, "attributes": attrs}, timeout=30).status_code == 200
    try:
        def shown_attrs(selector):
            return browser.execute_script(
                f"return [...document.querySelectorAll('{selector} .attr')].map(a => [a.dataset.key, "
                "a.querySelector('.attr-key').textContent, a.querySelector('.attr-value').textContent])")

        def shown():
            return browser.execute_script("return [...document.querySelectorAll('#results .result')]"
                                          ".map(e => e.dataset.id)")

        before = [r.get_attribute("data-id") for r in _search(browser, srv.url, "真空泵无法启动")]
        assert "C-1001" in before and len(before) > 1
        assert shown_attrs('#results .result[data-id="C-1001"]') == [[k, k, v] for k, v in sorted(attrs.items())]
        assert not browser.find_elements(By.CSS_SELECTOR, "#results .result:not([data-id='C-1001']) .attrs")
        assert not browser.find_elements(By.CSS_SELECTOR, "#results .attrs b")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.execute_script("document.querySelector('#results .result[data-id=\"C-1001\"]').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "search-attributes.png"))

        box = browser.find_element(By.ID, "attr")
        box.send_keys("customer = acme 半导体")  # values compare case-insensitively
        browser.find_element(By.ID, "search-btn").click()
        _wait(browser).until(lambda d: shown() == ["C-1001"])

        box.clear()
        box.send_keys("customer")
        browser.find_element(By.ID, "search-btn").click()
        _wait(browser).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        error = browser.find_element(By.ID, "error").text
        assert "expected key=value" in error and "field: attributes" in error, error

        _search(browser, srv.url, "真空泵无法启动")  # a fresh page: no filter
        browser.find_element(By.ID, "attr").send_keys("site=Fab 2")  # the related view filters too
        browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="P-2001"] .related').click()
        _wait(browser).until(lambda d: d.find_element(By.ID, "context").is_displayed() and shown() == ["C-1001"])
        browser.find_element(By.CSS_SELECTOR, '#results .result[data-id="C-1001"] .related').click()
        _wait(browser).until(lambda d: "C-1001" in d.find_element(By.ID, "context").text)
        assert shown_attrs("#context") == [[k, k, v] for k, v in sorted(attrs.items())]  # the record's own view
        browser.save_screenshot(str(ARTIFACTS / "related-attributes.png"))
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and "422" not in e["message"]]  # the refused filter is the server's answer, shown above
        assert not severe, severe
    finally:
        httpx.put(f"{srv.url}/v1/records/C-1001", json=body, timeout=30)
