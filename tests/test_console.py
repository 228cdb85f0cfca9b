"""The ops console in a real headless browser (Debian's chromium and chromium-driver,
which `make test` installs where it can), against a router process and a fake upstream."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEY, config_dict, sha
from tests.processes import RouterProcess

ADMIN_KEY = "sk-admin-secret-42"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="the console's browser test needs Debian's chromium and chromium-driver "
           "(`apt-get install chromium chromium-driver`; `make test` installs them where it runs as root)")


@pytest.fixture
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def until(check: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the console never showed {what}")
        time.sleep(0.2)


def severe(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@needs_browser
def test_the_console_shows_models_traffic_health_and_reloads(browser, make_upstream, tmp_path: Path):
    from selenium.webdriver.common.by import By

    upstream, url = make_upstream()
    config = config_dict(url)
    config["admin_keys"] = [{"name": "ops", "sha256": sha(ADMIN_KEY)}]
    config["routing"] = {"max_attempts": 1, "cooldown": {"failures": 2, "cooldown_s": 120}}
    config["keys"][1]["limits"] = {"tokens_per_day": 1000, "rpm": 600}
    with RouterProcess(config, tmp_path) as router:
        def text(element_id: str) -> str:
            return shown(f"#{element_id}")

        def shown(selector: str) -> str:  # read in one script: the page redraws its tables while we look
            return browser.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector)

        def log_in(key: str) -> None:
            field = browser.find_element(By.ID, "key")
            field.clear()
            field.send_keys(key)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()

        browser.get(f"{router.url}/console")
        log_in("sk-not-a-key-at-all")
        until(lambda: "does not know that key" in text("login-error"), "a wrong key's message")
        log_in(KEY)  # an API key, not an admin key
        until(lambda: "cannot open the console" in text("login-error"), "an API key's message")
        # Both refusals are 401/403 answers the browser logs as failed loads; nothing else may be.
        assert all(" 401 " in m or " 403 " in m for m in severe(browser)), severe(browser)

        log_in(ADMIN_KEY)
        until(lambda: browser.find_element(By.ID, "app").is_displayed(), "the console after logging in")
        models = until(lambda: text("models"), "the models table")
        for name in ("text-embedding-3-small", "bge-base-en-v1.5", "fake/text-embedding-3-small",
                     "fake/BAAI/bge-base-en-v1.5"):
            assert name in models
        assert "limited" in text("keys") and "1,000" in text("keys")
        chart = browser.find_element(By.ID, "chart-requests")
        before = int(chart.get_attribute("data-total") or 0)

        with httpx.Client(base_url=router.url, headers={"authorization": f"Bearer {KEY}"}) as client:
            for i in range(6):
                assert client.post("/v1/embeddings", json={"model": "bge-base-en-v1.5",
                                                           "input": f"text {i}"}).status_code == 200
            until(lambda: int(chart.get_attribute("data-total") or 0) >= before + 6, "the requests chart grow")
            assert browser.find_elements(By.CSS_SELECTOR, "#chart-requests polyline")

            upstream.fail_next(500, times=5)
            for i in range(2):
                assert client.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                                           "input": f"fails {i}"}).status_code == 502
        row = '[data-deployment="fake/text-embedding-3-small"] .state'
        until(lambda: shown(row) == "cooling down", "the deployment cool down")
        until(lambda: "upstream_error" in text("errors") or "502" in text("errors"), "the 502s by code")

        router.config_path.write_text("models: [this is not: a mapping\n")
        reason = until(lambda: text("reload-error"), "the refused reload's reason")
        assert "YAML" in str(reason)

        page = browser.page_source
        for secret in (ADMIN_KEY, KEY, sha(KEY), upstream.api_key):
            assert secret not in page
        assert not severe(browser), severe(browser)
        browser.save_screenshot(str(tmp_path / "console.png"))
        if target := os.environ.get("CONSOLE_SCREENSHOT"):  # how the README's image is made
            shutil.copy(tmp_path / "console.png", target)

        browser.set_window_size(390, 844)  # a phone
        time.sleep(0.3)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert browser.find_element(By.ID, "models").is_displayed()
        browser.save_screenshot(str(tmp_path / "console-phone.png"))


def test_the_page_is_small_and_loads_nothing_from_elsewhere(make_router, upstream_url):
    router = make_router(config_dict(upstream_url))
    answer = httpx.get(f"{router.url}/console")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert len(answer.content) < 100_000
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy and "connect-src 'self'" in policy
    for remote in (b"http://", b"https://", b"//cdn", b"@import", b"<link"):
        assert remote not in answer.content.replace(b"http://www.w3.org/2000/svg", b"")
