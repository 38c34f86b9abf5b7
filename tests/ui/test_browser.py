"""The console in a real browser (headless Chromium driven by Selenium) over a store the
quickstart filled: every page loads with no console error, the inbox approval flow works
end to end and shows in `mlstack audit log`, self-approval is refused in the page, and each
page is saved as a screenshot (the folder is printed; `MLSTACK_UPDATE_SCREENSHOTS=1` also
writes them to docs/images/console/ for docs/console.md)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.config.recipe_file import load_recipe
from stack.contract.states import LifecycleState
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.session import StackSession
from tests.recipes.conftest import copy_recipe, endpoints_stopped, run_recipe
from tests.support.chromium import chromedriver, chromium
from tests.support.cli import MLSTACK, ROOT, cli_in
from tests.support.ports import free_port

DOCS_IMAGES = ROOT / "docs" / "images" / "console"
#: (screenshot name, address): every page of the console
PAGES = (
    ("inventory", "/"),
    ("model", "/models/churn"),
    ("inbox", "/inbox"),
    ("lineage", "/lineage?model=churn"),
    ("audit", "/audit"),
    ("rollouts", "/rollouts"),
    ("monitoring", "/monitoring?model=churn"),
    ("monitoring-index", "/monitoring"),
    ("check", "/monitoring/checks/1"),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quickstart run once, then two versions waiting for ml-leads' approval to serve:
    churn@3 registered by a data scientist, churn@4 by the lead who will look at the inbox."""
    folder = tmp_path_factory.mktemp("console-quickstart")
    copy_recipe("quickstart", folder, **{"customers: 2000": "customers: 1200"})
    with endpoints_stopped(folder):
        code, output = run_recipe(folder, "quickstart")
        assert code == 0, output
        recipe = load_recipe(folder / "quickstart")
        with StackSession.open(folder / "stack.yaml", base_dir=folder, recipe=recipe) as session:
            serving = session.registry.find_by_state("churn", LifecycleState.SERVING)[-1]
            for author in ("data-scientist", "ml-lead"):
                version = Lifecycle(session).register(
                    "churn", serving.source_uri, run_id=serving.run_id, actor=author, recipe=recipe
                )
                Governance(session).promote(version, LifecycleState.APPROVED, as_actor=author)
        yield folder


@pytest.fixture(scope="module")
def console(project: Path) -> Iterator[str]:
    """`mlstack ui` started as a user starts it, as ml-lead; its base URL."""
    port = free_port()
    env = {**os.environ, "MLSTACK_USER": "ml-lead"}
    env.pop("MLSTACK_TOKEN", None)
    process = subprocess.Popen(
        [str(MLSTACK), "ui", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/audit", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "mlstack ui never answered"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver()))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {folder}")
    return folder


def console_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def shoot(browser: Any, folder: Path, name: str) -> None:
    """A screenshot of the whole page (the window stretched to its height)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, max(700, min(int(height) + 40, 4000)))
    browser.save_screenshot(str(folder / f"{name}.png"))
    if os.environ.get("MLSTACK_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(DOCS_IMAGES / f"{name}.png"))
    browser.set_window_size(1280, 1000)


def test_every_page_loads_with_no_console_error(
    browser: Any, console: str, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    for name, address in PAGES:
        browser.get(console + address)
        assert browser.find_element(By.CSS_SELECTOR, "header.top .who").text.startswith(
            "ml-lead"
        ), name
        assert "Something went wrong" not in browser.page_source, name
        assert console_errors(browser) == [], name
        shoot(browser, screenshots, name)
    assert sorted(p.stem for p in screenshots.glob("*.png")) == sorted(n for n, _ in PAGES)


def test_an_unknown_model_is_a_404_page(browser: Any, console: str, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(console + "/models/no-such-model")
    assert browser.find_element(By.TAG_NAME, "h1").text == "404 · Not found"
    assert "No model is called 'no-such-model'" in browser.page_source
    console_errors(browser)  # the 404 itself is logged; nothing else is asked of it
    shoot(browser, screenshots, "not-found")


def _decide(browser: Any, console: str, ref: str, reason: str) -> str:
    """Approve `ref` for serving in the inbox as a user does; the notice the page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(console + "/inbox")
    card = browser.find_element(
        By.CSS_SELECTOR, f'article.waiting[data-ref="{ref}"][data-target="serving"]'
    )
    card.find_element(
        By.CSS_SELECTOR, "form[action='/inbox/approve'] input[name=reason]"
    ).send_keys(reason)
    card.find_element(By.CSS_SELECTOR, "button.approve").click()
    notice = WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.notice"))
    )
    assert console_errors(browser) == []
    text: str = notice.text
    return text


def test_the_inbox_approval_flow_end_to_end(
    browser: Any, console: str, project: Path, screenshots: Path
) -> None:
    browser.get(console + "/inbox")
    shoot(browser, screenshots, "inbox-waiting")
    notice = _decide(browser, console, "churn@3", "card reviewed in the console")
    assert notice.startswith("You approved churn@3 for serving (audit entry #")
    shoot(browser, screenshots, "inbox-approved")
    log = cli_in(project)("audit", "log", "--model", "churn", check=True).stdout
    [line] = [row for row in log.splitlines() if "approval.approved" in row and "churn@3" in row]
    assert "ml-lead" in line and "card reviewed in the console" in line
    promoted = cli_in(project)("promote", "churn@3", "--to", "serving", "--dry-run").stdout
    assert "ok   approvals: 1 of 1 from ml-leads (ml-lead)" in promoted


def test_self_approval_is_refused_in_the_page(
    browser: Any, console: str, project: Path, screenshots: Path
) -> None:
    """The version's own author is offered no Approve button: it is disabled, the reason
    beside it (a forged POST is refused and audited: tests/ui/test_inbox.py)."""
    from selenium.webdriver.common.by import By

    browser.get(console + "/inbox")
    card = browser.find_element(
        By.CSS_SELECTOR, 'article.waiting[data-ref="churn@4"][data-target="serving"]'
    )
    button = card.find_element(By.CSS_SELECTOR, "button.approve")
    assert not button.is_enabled()
    assert "You registered this version" in card.text
    assert console_errors(browser) == []
    shoot(browser, screenshots, "inbox-refused")
    with StackSession.open(project / "stack.yaml", base_dir=project) as session:
        assert session.spine.approvals("churn@4") == []
        assert session.spine.audit_entries(subject="churn@4", action="approval.refused") == []
