"""The storefront page in a real browser (headless Chromium, driven by Selenium) against the test stack: a
search shows cards with photos; a shopper's click moves that card up on the next search; a photo searches
by itself; Triton stopped shows the degradation on the page. Screenshots go to build/storefront/.

Chromium and its driver are Debian packages (`apt-get install chromium chromium-driver`; .ci/run installs
them): without them the tests are skipped, saying so."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.edge.client import api_key
from atelier.offline.catalog.hm_loader import HMDataset
from atelier.serving.settings import ROOT
from atelier.stack.launcher import Stack

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium/chromedriver: apt-get install chromium chromium-driver"
)
SHOTS = ROOT / "build" / "storefront"
WAIT_S = 60


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1000"):
        options.add_argument(argument)
    # Chromium refuses some ports (10080, say: a test port offset of 2000) unless told.
    options.add_argument(f"--explicitly-allowed-ports={stack.endpoints.envoy_port}")
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _page(driver, stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    driver.get(stack.endpoints.edge_url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(stack.endpoints.edge_url + "/")
    driver.find_element(By.ID, "key").send_keys(api_key())
    driver.find_element(By.CSS_SELECTOR, "#keyform button").click()


def _search(driver, query: str = "", shopper: str = "", photo: Path | None = None) -> list[str]:
    """Submits the form; the article ids of the cards shown once the answer is on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.find_element(By.ID, "status").text
    field = driver.find_element(By.ID, "query")
    field.clear()
    field.send_keys(query)
    driver.find_element(By.CSS_SELECTOR, f"#shopper option[value='{shopper}']").click()
    upload = driver.find_element(By.ID, "photo")
    upload.clear()
    if photo is not None:
        upload.send_keys(str(photo))
    driver.find_element(By.CSS_SELECTOR, "#search button").click()
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: (s := d.find_element(By.ID, "status").text) != before and "searching" not in s)
    return [card.get_attribute("data-article-id") for card in driver.find_elements(By.CSS_SELECTOR, ".card")]


def test_a_click_moves_its_card_up_on_the_next_search(browser, stack: Stack, catalog: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _page(browser, stack)
    shopper = "demo-ben"  # test_storefront.py clicks as demo-ada
    ids = _search(browser, "black trousers", shopper)
    assert len(ids) >= 10, browser.find_element(By.ID, "status").text
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: all(i.get_attribute("src") for i in d.find_elements(By.CSS_SELECTOR, ".card img")[:5]))
    browser.save_screenshot(str(SHOTS / "search.png"))
    clicked = browser.find_elements(By.CSS_SELECTOR, ".card")[7]
    target = clicked.get_attribute("data-article-id")
    clicked.click()
    wait.until(lambda d: "clicked" in d.find_element(By.ID, "status").text)
    deadline = time.monotonic() + WAIT_S
    while True:  # the click reaches the shopper's features through the broker and a stream worker
        ids = _search(browser, "black trousers", shopper)
        if (target in ids and ids.index(target) < 7) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert target in ids and ids.index(target) < 7, (
        f"{target} still at {ids.index(target) + 1 if target in ids else '-'}"
    )
    card = browser.find_element(By.CSS_SELECTOR, f".card[data-article-id='{target}']")
    assert "▲" in card.find_element(By.CSS_SELECTOR, ".move").text
    assert "behaviour" in card.find_element(By.CSS_SELECTOR, ".scores").text
    browser.save_screenshot(str(SHOTS / "after-click.png"))


def test_a_photo_searches_by_itself(browser, stack: Stack, catalog: int, catalog_dataset: HMDataset) -> None:
    from selenium.webdriver.common.by import By

    _page(browser, stack)
    photos = sorted(Path(catalog_dataset.images).rglob("*.jpg"))
    ids = _search(browser, photo=photos[0])
    assert ids, browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(SHOTS / "photo.png"))


def test_triton_stopped_shows_the_degradation(browser, stack: Stack, catalog: int) -> None:
    from selenium.webdriver.common.by import By

    _page(browser, stack)
    stack.supervisor.stop("triton")
    try:
        _search(browser, "red summer dress uncached")
        shown = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#degradations li")]
        browser.save_screenshot(str(SHOTS / "triton-stopped.png"))
    finally:
        stack.up()
    assert any(line.startswith("triton:") for line in shown), shown
