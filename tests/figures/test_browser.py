"""The widgets in a real browser: JupyterLab headless, driven through Chromium by Playwright.

nbval runs the notebooks but cannot see widgets, so this test opens them as a student does:
it starts JupyterLab with `make lab`'s own command (headless, on a free loopback port, with a
token, --allow-root as root), runs every cell of the playground and of notebook 03 (shortened
with NN_SET to two epochs) in
Chromium, and checks that every widget renders, that a moved slider reaches the kernel, that
Play changes the picture and Pause stops it, and that no cell shows an error.

The notebooks run from copies in a temporary folder (JupyterLab saves what it runs), with
NN_LOG_DIR and NN_STATIC_DIR temporary too, so git status stays clean. Screenshots go to a
temporary folder, or to static/ with NN_SCREENSHOTS=1 (the README's pictures).
Needs /usr/bin/chromium (Debian's chromium) and the playwright package; skipped without
them, except in CI (CI=1), where a missing browser is a failure.
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("NN_CHROMIUM", "/usr/bin/chromium"))
NOTEBOOKS = {"playground": ROOT / "notebooks" / "00_playground.ipynb",
             "train_panel": ROOT / "notebooks" / "03_training.ipynb"}
SHORT = "train.num_epochs=2"  # NN_SET for notebook 03: its whole story in seconds, not minutes
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _missing(reason):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI the browser test must run (.ci/run installs chromium and playwright)")
    pytest.skip(reason)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(lab_args, lab_dir):
    """The command `make lab` runs, with LAB_ARGS and LAB_DIR as given (read from `make -n`)."""
    out = subprocess.run(["make", "-n", "-s", "--no-print-directory", "lab", f"LAB_ARGS={lab_args}",
                          f"LAB_DIR={lab_dir}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, f"expected one `jupyter lab` line in `make -n lab`, got:\n{out}"
    return lines[0]


pytestmark = pytest.mark.browser

def test_make_lab_command_is_headless_and_root_safe():
    line = lab_command("--no-browser --ip 127.0.0.1 --port 8888", "notebooks/")
    assert "--no-browser --ip 127.0.0.1 --port 8888" in line and line.rstrip().endswith("notebooks/")
    shown = subprocess.run(["bash", "-c", "echo " + line.split("jupyter lab", 1)[1]], capture_output=True,
                           text=True, check=True).stdout.split()
    assert ("--allow-root" in shown) == (os.getuid() == 0), shown


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server started by make lab's command on copies of the notebooks: (base URL, token, folder)."""
    folder = tmp_path_factory.mktemp("lab")
    for path in NOTEBOOKS.values():
        shutil.copy(path, folder / path.name)
    settings = folder / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell stays in the page (no windowing), so the test sees every widget.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No question about Jupyter news (it would cover the screenshots) and no fetching it.
    apputils = folder / ".settings" / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    (apputils / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                           "checkForUpdates": False}))
    port, token = _free_port(), os.urandom(12).hex()
    args = (f"--no-browser --ip 127.0.0.1 --port {port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --LabApp.expose_app_in_browser=True "
            f"--LabApp.user_settings_dir={folder / '.settings'} --LabApp.workspaces_dir={folder / '.workspaces'} "
            "--ServerApp.open_browser=False")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"), "NN_SET": SHORT,
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    log = open(folder / ".server.log", "w")
    server = subprocess.Popen(["bash", "-c", "exec " + lab_command(args, shlex.quote(str(folder)))], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (folder / ".server.log").read_text()[-3000:])
                time.sleep(0.5)
        print(f"JupyterLab answered after {time.monotonic() - deadline + 90:.1f} s")
        yield base, token, folder
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_lab_serves_with_token(lab):
    base, token, _ = lab
    with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as r:
        assert r.status == 200 and "JupyterLab" in r.read().decode()
    with pytest.raises(urllib.error.HTTPError):  # without the token the API refuses
        urllib.request.urlopen(f"{base}/api/contents", timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots():
    if os.environ.get("NN_SCREENSHOTS") == "1":
        yield ROOT / "static"
        return
    folder = Path(tempfile.mkdtemp(prefix="nn-screenshots-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def notebooks(browser, lab):
    """One JupyterLab page with both notebooks open and every cell run (the two kernels run side by side).

    Returns (page, {key: the notebook panel's DOM id}); page.page_errors collects JavaScript errors.
    """
    base, token, _ = lab
    start = time.monotonic()
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.page_errors = []
    page.on("pageerror", lambda e: page.page_errors.append(str(e)))
    page.goto(f"{base}/lab?token={token}", timeout=120_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell && "
                           "window.jupyterapp.commands.hasCommand('docmanager:open')", timeout=120_000)
    # Every extension (the widget renderer among them) is loaded once the app is restored.
    page.evaluate("async () => { await window.jupyterapp.restored; window.jupyterapp.shell.collapseLeft(); }")
    ids, ran = {}, {}
    for key, path in NOTEBOOKS.items():
        begin = time.monotonic()
        ids[key] = page.evaluate("""async name => {
            const w = await window.jupyterapp.commands.execute('docmanager:open', {path: name});
            await w.context.ready;
            (window.__notebooks = window.__notebooks || {})[w.id] = w;
            return w.id;
        }""", path.name)
        page.wait_for_function("""id => { const w = window.__notebooks[id]; const s = w.sessionContext.session;
            return s && s.kernel && s.kernel.status === 'idle' && w.content.widgets.length > 0; }""",
                               arg=ids[key], timeout=120_000)
        # The saved outputs go first (their prompts are numbered, their widget views would count twice).
        page.evaluate("""async id => { window.jupyterapp.shell.activateById(id);
            await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
            window.jupyterapp.commands.execute('notebook:run-all-cells'); }""", ids[key])
        page.wait_for_function("""id => { const w = window.__notebooks[id];
            const prompts = [...w.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p))
                   && w.sessionContext.session.kernel.status === 'idle'; }""", arg=ids[key], timeout=600_000)
        ran[key] = round(time.monotonic() - begin, 1)
    opened = time.monotonic()
    print(f"JupyterLab page and both notebooks run in {opened - start:.1f} s (seconds per notebook: {ran})")
    yield page, ids
    page.close()


def activate(page, ids, key):
    """Bring a notebook's tab to the front; returns a locator for its panel."""
    page.evaluate("id => window.jupyterapp.shell.activateById(id)", ids[key])
    return page.locator(f"#{ids[key]}")


def assert_no_errors(page):
    bad = page.locator('[data-mime-type="application/vnd.jupyter.stderr"], '
                       '[data-mime-type="application/vnd.jupyter.error"]')
    texts = [bad.nth(i).text_content()[:500] for i in range(bad.count())]
    assert not texts, f"error output in a notebook: {texts}"
    body = page.evaluate("() => document.body.textContent")  # hidden tabs too
    for sign in ("Error displaying widget", "Error rendering output", "Traceback"):
        assert sign not in body, f"{sign!r} on the page"
    assert not page.page_errors, f"JavaScript errors: {page.page_errors}"


def dom_counts(page, root):
    return page.evaluate("""root => {
        const q = s => [...document.querySelectorAll(root)].reduce((n, r) => n + r.querySelectorAll(s).length, 0);
        return {slider: q('.widget-slider'), button: q('button.jupyter-button'),
                dropdown: q('.widget-dropdown select'),
                checkbox: q('.widget-checkbox input'), text: q('.widget-text input'), image: q('img.widget-image')};
    }""", root)


def test_playground_in_browser(notebooks, shots):
    from tests.figures.widget_counts import count_widgets
    from utils.figures.playground import Playground

    expected = count_widgets(Playground("spirals").view.widget)
    page, ids = notebooks
    notebook = activate(page, ids, "playground")
    assert_no_errors(page)
    assert notebook.locator(".pg-widget").count() == 2  # the spirals and the Fashion-MNIST playground
    assert dom_counts(page, ".pg-widget") == {k: 2 * v for k, v in expected.items()}
    first = notebook.locator(".pg-widget").nth(0)
    first.scroll_into_view_if_needed()

    # A slider moved in the browser reaches the kernel: the status line is written by the kernel.
    assert "lr 0.03" in first.locator(".pg-status").inner_text()  # the notebook's last pg.set(..., lr=0.03)
    first.locator(".pg-lr .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.pg-widget .pg-status').innerText.includes('lr 0.1')",
                           timeout=30_000)
    # An inactive control is disabled: momentum under Adam.
    assert first.locator(".pg-momentum .noUi-target[disabled]").count() == 0
    first.locator(".pg-optimizer select").select_option("adam")
    first.locator(".pg-momentum .noUi-target[disabled]").wait_for(timeout=30_000)
    first.locator(".pg-optimizer select").select_option("sgd")
    page.wait_for_function("() => !document.querySelector('.pg-widget .pg-momentum .noUi-target')"
                           ".hasAttribute('disabled')", timeout=30_000)

    # Play changes the picture within a few seconds; Pause stops it.
    picture = first.locator("img.pg-picture")
    before = picture.get_attribute("src")
    epoch_before = int(re.search(r"epoch (\d+)", first.locator(".pg-status").inner_text())[1])
    first.locator("button.pg-play").click()
    page.wait_for_function("src => document.querySelector('.pg-widget img.pg-picture').src !== src", arg=before,
                           timeout=30_000)
    time.sleep(1.5)
    first.locator("button.pg-pause").click()
    page.wait_for_function("() => document.querySelector('.pg-widget button.pg-play').disabled === false",
                           timeout=30_000)
    time.sleep(1.0)  # the last frame of the stopped task arrives
    paused_src, paused_status = picture.get_attribute("src"), first.locator(".pg-status").inner_text()
    assert int(re.search(r"epoch (\d+)", paused_status)[1]) > epoch_before
    time.sleep(2.0)
    assert picture.get_attribute("src") == paused_src, "the picture still changes after Pause"
    assert first.locator(".pg-status").inner_text() == paused_status
    assert_no_errors(page)
    first.screenshot(path=str(shots / "screenshot_playground.png"))


def test_train_panel_in_browser(notebooks, shots):
    import numpy as np

    from tests.figures.widget_counts import count_widgets
    from utils.figures.panel import training_panel
    from utils.plumbing.config import load_config

    tiny = {"X_train": np.zeros((4, 784), np.float32), "y_train": np.arange(4), "image_shape": (1, 28, 28),
            "num_classes": 10, "X_val": np.zeros((4, 784), np.float32), "y_val": np.arange(4)}
    expected = count_widgets(training_panel(load_config("mlp_fashion"), tiny).widget)
    page, ids = notebooks
    notebook = activate(page, ids, "train_panel")
    assert_no_errors(page)
    assert notebook.locator(".tp-widget").count() == 1
    assert dom_counts(page, ".tp-widget") == expected
    panel = notebook.locator(".tp-widget")
    panel.scroll_into_view_if_needed()
    assert "done: best epoch" in panel.locator(".tp-status").inner_text()  # the scripted quick run
    # Under the cosine schedule the decay sliders are disabled; under step they are not.
    assert panel.locator(".tp-decay_factor .noUi-target[disabled]").count() == 1
    panel.locator(".tp-lr_schedule select").select_option("step")
    page.wait_for_function("() => !document.querySelector('.tp-decay_factor .noUi-target').hasAttribute('disabled')",
                           timeout=30_000)
    # Back to the config's schedule (cosine): the README's screenshot shows the run the config describes.
    panel.locator(".tp-lr_schedule select").select_option("cosine")
    panel.locator(".tp-decay_factor .noUi-target[disabled]").wait_for(timeout=30_000)
    # A slider moved in the browser reaches the kernel, which rewrites the status line.
    panel.locator(".tp-num_epochs .noUi-handle").focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('.tp-status').innerText.includes('num_epochs=1')",
                           timeout=30_000)
    before = panel.locator("img.tp-curves").get_attribute("src")
    panel.locator(".tp-quick input").check()
    panel.locator("button.tp-button").click()
    # The curves change after the first epoch; "done:" returns only when train() has finished.
    page.wait_for_function("src => document.querySelector('.tp-status').innerText.includes('done:') && "
                           "document.querySelector('img.tp-curves').src !== src", arg=before, timeout=90_000)
    assert_no_errors(page)
    panel.screenshot(path=str(shots / "screenshot_train_panel.png"))
