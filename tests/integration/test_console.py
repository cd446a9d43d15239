"""The web console (server/console/, served at GET /) in a real browser: headless Chromium driven by selenium loads
every page, runs a search with a filter and checks the hits against the same search over gRPC, pages through points,
shows the cluster and the live charts, and signs in with an API key when keys are on. Skipped without chromium,
chromium-driver and python3-selenium (tools/deps.sh --test)."""
import shutil
import time

import pytest

from qvtest import KEYWORD, L2, eq, free_port, pb, point

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover
    webdriver = None

pytestmark = pytest.mark.skipif(webdriver is None or not shutil.which("chromedriver") or
                                not shutil.which("chromium"), reason="chromium, chromedriver or selenium missing")


@pytest.fixture
def browser():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def wait(d, pred, what, timeout=15):
    try:
        return WebDriverWait(d, timeout).until(lambda _: pred())
    except Exception:
        raise AssertionError(f"timed out waiting for {what}; error banner: {d.find_element(By.ID, 'error').text!r}")


def rows(d, table):
    """The cells of a table's body, read in one script (the page may re-render it between element lookups)."""
    return d.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map("
        "tr => Array.from(tr.cells).map(td => td.textContent))", f"#{table} tbody tr")


def load(c):
    c.q.CreateCollection(pb.CreateCollectionRequest(name="docs", dim=4, metric=L2,
                                                    fields=[pb.FieldSchema(name="tag", type=KEYWORD)]))
    c.upsert_all("docs", [point(f"p{i:03d}", [float(i), 1.0, 0.0, 0.5], {"tag": "ab"[i % 2]}, text=f"text {i}")
                          for i in range(120)], batch=60)


def test_every_page_in_a_browser(make_server, browser):
    port = free_port()
    srv = make_server(seal_rows=50, extra=["--http-listen", f"127.0.0.1:{port}"]).start()
    c = srv.client
    load(c)
    d = browser
    d.get(f"http://127.0.0.1:{port}/")
    wait(d, lambda: any(r and r[0] == "docs" for r in rows(d, "collections")), "the collections table")
    r = [r for r in rows(d, "collections") if r[0] == "docs"][0]
    assert r[1] == "4" and r[2] == "L2" and r[3] == "120"
    d.find_element(By.CSS_SELECTOR, "#collections tbody tr").click()
    wait(d, lambda: len(rows(d, "segments")) >= 2, "the segments of the collection")
    assert "tag: KEYWORD" in d.find_element(By.ID, "detail-schema").text
    # search: vector query with a filter, against gRPC
    d.find_element(By.ID, "nav-search").click()
    wait(d, lambda: d.find_element(By.ID, "page-search").is_displayed(), "the search page")
    Select(d.find_element(By.ID, "search-collection")).select_by_value("docs")
    d.find_element(By.CSS_SELECTOR, "input[name=mode][value=vector]").click()
    d.find_element(By.ID, "search-query").send_keys("10, 1, 0, 0.5")
    k = d.find_element(By.ID, "search-k")
    k.clear()
    k.send_keys("5")
    d.find_element(By.ID, "filter-add").click()
    d.find_element(By.CSS_SELECTOR, "#filter-rows .f-field").send_keys("tag")
    d.find_element(By.CSS_SELECTOR, "#filter-rows .f-value").send_keys('"b"')
    d.find_element(By.ID, "search-run").click()
    wait(d, lambda: len(rows(d, "hits")) == 5, "5 hits")
    want = [h.id for h in c.search("docs", [10, 1, 0, 0.5], 5, flt=eq("tag", "b")).hits]
    assert [r[1] for r in rows(d, "hits")] == want
    assert all("tag=\"b\"" in r[3] for r in rows(d, "hits"))
    assert "ms" in d.find_element(By.ID, "search-took").text
    # points: scroll two pages
    d.find_element(By.ID, "nav-points").click()
    wait(d, lambda: d.find_element(By.ID, "page-points").is_displayed(), "the points page")
    Select(d.find_element(By.ID, "points-collection")).select_by_value("docs")
    d.find_element(By.ID, "points-scroll").click()
    wait(d, lambda: len(rows(d, "points")) == 50, "a page of points")
    first = [r[0] for r in rows(d, "points")]
    assert first == sorted(first) and first[0] == "p000"
    d.find_element(By.ID, "points-next").click()
    wait(d, lambda: rows(d, "points") and rows(d, "points")[0][0] == "p050", "the next page")
    d.find_element(By.ID, "points-id").send_keys("p007")
    d.find_element(By.ID, "points-get").click()
    wait(d, lambda: [r[0] for r in rows(d, "points")] == ["p007"], "Get by id")
    assert rows(d, "points")[0][2] == "text 7"
    # cluster and charts
    d.find_element(By.ID, "nav-cluster").click()
    wait(d, lambda: "role standalone" in d.find_element(By.ID, "cluster-role").text, "the cluster page")
    d.find_element(By.ID, "nav-charts").click()
    time.sleep(4.5)  # two samples of /metrics, 2 s apart
    assert d.execute_script("return series.qps.length") >= 1
    assert not d.find_element(By.ID, "error").is_displayed()


def test_sign_in_with_an_api_key(make_server, browser, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{'r' * 24} read\n{'a' * 24} admin\n")
    port = free_port()
    srv = make_server(extra=["--http-listen", f"127.0.0.1:{port}", "--api-keys", str(keys)]).start()
    d = browser
    d.get(f"http://127.0.0.1:{port}/")
    wait(d, lambda: "API key" in d.find_element(By.ID, "error").text, "the sign-in prompt")
    d.find_element(By.ID, "apikey").send_keys("r" * 24)
    d.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(d, lambda: not d.find_element(By.ID, "error").is_displayed(), "the signed-in console")
    assert srv.running
