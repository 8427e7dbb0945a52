"""The dashboard in a real browser (Debian's Chromium, driven by Selenium through
chromedriver), against a real `vigil serve` and a real `vigil worker` over a SQLite file of real
MNIST digits: sign-in, live listeners and jobs, metric curves, the gallery and its filter, retry,
and an upload predicted by the running worker.

Needs: the `vigil` binary (VIGIL_BIN, default $CARGO_TARGET_DIR/debug/vigil), chromium and
chromedriver (VIGIL_CHROMIUM, VIGIL_CHROMEDRIVER), the vigil Python package and selenium.
"""

import io
import os
import pathlib
import socket
import subprocess
import time

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import vigil

REPO = pathlib.Path(__file__).resolve().parents[3]
MNIST = REPO / "data" / "mnist"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
VIGIL = os.environ.get("VIGIL_BIN", str(TARGET / "debug" / "vigil"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(url, *args):
    done = subprocess.run([VIGIL, "--db", url, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not os.path.exists(VIGIL):
        pytest.fail(f"the vigil binary is not at {VIGIL}: run `cargo build -p vigil-cli` or set VIGIL_BIN")
    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite://{tmp / 'dash.db'}"
    db = vigil.connect(url, seed=3)
    digits = vigil.read_mnist(str(MNIST), limit=1200)
    mnist = db["mnist"]
    mnist.insert_many(digits[:1000])
    # A briefly trained LeNet5: metric curves for the overview, and mistakes for the gallery.
    model = vigil.Model.network("lenet5", vigil.lenet5(10), preprocess=vigil.mnist_preprocess(),
                                postprocess="argmax")
    db.add(model)
    model.fit(X="img", y="class", db=db, select=mnist.find(),
              configuration=vigil.TrainerConfig("quick", max_iterations=40, validation_interval=10,
                                                batch_size=32),
              metrics=[vigil.Metric("acc")],
              validation_sets=[vigil.Dataset("my_valid", mnist.find({"_fold": "valid"}))],
              progress=False)
    # One digit whose PNG is cut in half: its listener will park it with the decoder's reason.
    buf = io.BytesIO()
    digits[1000]["img"].save(buf, format="PNG")
    mnist.insert_one({"_id": "broken", "img": vigil.Encoded("image/png", buf.getvalue()[:60]), "class": 3})
    reader = cli(url, "token", "create", "--name", "reader", "--scope", "read")
    writer = cli(url, "token", "create", "--name", "writer", "--scope", "write")
    port = free_port()
    server = subprocess.Popen([VIGIL, "--db", url, "serve", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = subprocess.Popen([VIGIL, "--db", url, "worker", "--max-attempts", "2",
                               "--backoff-ms", "10"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"db": db, "url": url, "base": base, "reader": reader, "writer": writer,
           "digits": digits, "tmp": tmp}
    for p in (server, worker):
        p.terminate()
        p.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    service = Service(os.environ.get("VIGIL_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=30, what="the page"):
    # The page redraws live parts (listeners, jobs, counts) as events arrive: an element read
    # during a redraw is stale, and the condition is simply tried again.
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}; page text:\n{driver.find_element(By.TAG_NAME, 'body').text}")


def shot(driver, name):
    """Saves a screenshot when VIGIL_SCREENSHOTS names a directory (for looking, not asserting)."""
    where = os.environ.get("VIGIL_SCREENSHOTS")
    if where:
        driver.save_screenshot(os.path.join(where, f"{name}.png"))


def text(driver, css):
    for _ in range(20):
        try:
            return driver.find_element(By.CSS_SELECTOR, css).text
        except StaleElementReferenceException:
            time.sleep(0.05)  # redrawn while read: read the new one
    return driver.find_element(By.CSS_SELECTOR, css).text


def sign_in(driver, base, token):
    driver.delete_all_cookies()
    driver.get(base + "/")
    wait(driver, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), what="the sign-in form")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait(driver, lambda d: d.find_element(By.ID, "overview").is_displayed(), what="the overview")


def test_overview_is_live_and_read_tokens_only_read(setup, browser):
    d = browser
    d.get(setup["base"] + "/")
    wait(d, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), what="the sign-in form")
    # No data without signing in, and a wrong token is refused with the server's reason.
    assert not d.find_element(By.ID, "overview").is_displayed()
    d.find_element(By.ID, "token").send_keys("vgl_wrong")
    d.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait(d, lambda d: "unknown or revoked" in text(d, "#sign-in-error"), what="the sign-in error")

    sign_in(d, setup["base"], setup["reader"])
    assert text(d, "#who") == "reader (read)"
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#collections tr[data-collection="mnist"]'),
         what="the collections table")
    wait(d, lambda d: text(d, '#collections tr[data-collection="mnist"] td.n') == "1001",
         what="the collection's count")

    # The trained model's curve per validation set, drawn in the page.
    chart = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-model="lenet5"] svg[data-set="my_valid"]'),
                 what="the metric chart")[0]
    line = chart.find_element(By.CSS_SELECTOR, 'polyline[data-metric="acc"]')
    stored = setup["db"].load("model", "lenet5").metric_values["my_valid/acc"]
    assert len(line.get_attribute("points").split()) == len(stored) >= 3

    # A listener switched on while the page is open shows up, and its backfill runs to the end
    # under the worker, without a reload.
    assert "No listeners" in wait(d, lambda d: text(d, "#listeners") or None, what="the listeners panel")
    setup["db"].listen("mnist", "img", "lenet5")
    card = '[data-listener="mnist/img/lenet5"]'
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, card), what="the listener card")
    wait(d, lambda d: text(d, f"{card} .progress-text").startswith("backfill 1001 / 1001")
         and text(d, f"{card} .pending") == "0", what="the backfill to finish")
    wait(d, lambda d: d.find_element(By.CSS_SELECTOR, f"{card} .bar").get_attribute("aria-valuenow")
         == d.find_element(By.CSS_SELECTOR, f"{card} .bar").get_attribute("aria-valuemax") == "1001",
         what="the full progress bar")
    wait(d, lambda d: text(d, f"{card} .outputs") == "v2: 1000", what="the outputs per version")
    wait(d, lambda d: text(d, f"{card} .parked") == "1", what="the parked document")
    wait(d, lambda d: "broken" in text(d, f"{card} ul.errors"), what="the error list")
    wait(d, lambda d: "preprocess" in text(d, f"{card} ul.errors"), what="the error's reason")
    assert not d.find_elements(By.CSS_SELECTOR, f"{card} button.retry")  # read token
    wait(d, lambda d: "backfill" in text(d, "#jobs tbody"), what="the jobs table")
    shot(d, "overview")


def test_gallery_filters_pages_and_shows_predictions(setup, browser):
    d = browser
    sign_in(d, setup["base"], setup["reader"])
    db = setup["db"]
    mnist = db["mnist"]
    wait(d, lambda d: db.listener_status("mnist/img/lenet5")["pending"] == 0, what="the backfill")
    d.find_element(By.CSS_SELECTOR, '#tabs button[data-view="gallery"]').click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cards figure.card")) == 24, what="the first page")
    assert text(d, "#page-info") == "page 1 of 42 · 1001 documents"
    # Images load from the API (28 pixels wide) and each card shows its prediction.
    wait(d, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#cards img')].every(i => i.complete && i.naturalWidth === 28)"),
        what="the images")
    first = d.find_elements(By.CSS_SELECTOR, "#cards figure.card")[0]
    doc_id = first.get_attribute("data-id").strip('"')
    stored = mnist.find_one({"_id": doc_id})
    shown = first.find_element(By.CSS_SELECTOR, '[data-path="_outputs.img.lenet5"] .v').text
    assert int(shown) == stored["_outputs"]["img"]["lenet5"]  # the gallery is not live
    d.find_element(By.ID, "next").click()
    wait(d, lambda d: text(d, "#page-info").startswith("page 2 of 42"), what="page 2")

    # The model's mistakes, from the example button: prediction differs from class.
    mistakes = [x for x in mnist.find({}, projection={"img": 0})
                if x.get("_outputs", {}).get("img", {}).get("lenet5") != x["class"]]
    assert mistakes
    d.find_element(By.CSS_SELECTOR, "#gallery-examples button.example").click()
    wait(d, lambda d: text(d, "#page-info").endswith(f"· {len(mistakes)} documents"), what="the mistakes")
    shot(d, "gallery-mistakes")
    for c in d.find_elements(By.CSS_SELECTOR, "#cards figure.card"):
        got = c.find_elements(By.CSS_SELECTOR, '[data-path="_outputs.img.lenet5"] .v')
        assert not got or got[0].text != c.find_element(By.CSS_SELECTOR, '[data-path="class"] .v').text

    # A bad filter gets the server's message, not a blank page.
    box = d.find_element(By.ID, "gallery-filter")
    box.clear()
    box.send_keys('{"class": {"$where": 1}}')
    d.find_element(By.CSS_SELECTOR, "#gallery-form button[type=submit]").click()
    wait(d, lambda d: "$where" in text(d, "#gallery-error"), what="the filter error")


def test_write_token_retries_and_uploads_are_predicted_by_the_worker(setup, browser):
    d = browser
    db = setup["db"]
    sign_in(d, setup["base"], setup["writer"])
    card = '[data-listener="mnist/img/lenet5"]'
    wait(d, lambda d: d.find_element(By.CSS_SELECTOR, f"{card} button.retry").click() or True,
         what="the retry button")
    wait(d, lambda d: "1 documents queued again" in text(d, card), what="the retry's answer")
    # The worker tries it again, fails again, and parks it again (attempts counted afresh).
    wait(d, lambda d: [e for e in db.errors("mnist/img/lenet5") if e["parked"] and e["attempts"] == 2],
         what="the retried document to be parked again")

    d.find_element(By.CSS_SELECTOR, '#tabs button[data-view="upload"]').click()
    digit = setup["digits"][1100]
    path = setup["tmp"] / "upload.png"
    digit["img"].save(path)
    d.find_element(By.ID, "upload-collection").send_keys("mnist")
    d.find_element(By.ID, "upload-file").send_keys(str(path))
    d.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait(d, lambda d: text(d, "#upload-status").startswith("predicted in"), what="the prediction")
    expected = db.load("model", "lenet5").predict([digit["img"]])[0]
    assert text(d, "#upload-outputs") == f"img.lenet5: {expected}"
    shot(d, "upload")
    latency_ms = int(text(d, "#upload-status").split()[2])
    print(f"upload to prediction on the page: {latency_ms} ms")
    new_id = text(d, "#upload-id").strip('"')
    assert db["mnist"].find_one({"_id": new_id})["_outputs"]["img"]["lenet5"] == expected


def test_the_page_holds_no_data_and_runs_no_inline_code(setup, browser):
    d = browser
    d.delete_all_cookies()
    d.get(setup["base"] + "/")
    html = d.page_source
    assert "mnist" not in html and "lenet5" not in html
    # A strict content security policy: the page loads only its own script and style.
    import urllib.request
    with urllib.request.urlopen(setup["base"] + "/") as r:
        policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
