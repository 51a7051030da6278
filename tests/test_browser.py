"""The web page in a real browser (headless Chromium) against a real gunicorn with both models."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    if not HAVE_BROWSER:
        message = (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # .ci/run installs them: a skip in CI would hide a broken setup
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def artifacts_dir() -> Path:
    """Where CI keeps screenshots: $MLAPI_ARTIFACTS_DIR (set by .ci/run) or the temp dir."""
    root = Path(os.environ.get("MLAPI_ARTIFACTS_DIR") or tempfile.gettempdir())
    path = root / "mlapi-browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for_text(driver, selector: str, text: str, timeout: float = 10):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text)
    )
    return driver.find_element(By.CSS_SELECTOR, selector).text


def test_both_forms_end_to_end(browser, start_gunicorn, iris_model_path, sentiment_models_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    env = {
        **os.environ,
        "MODELO_PATH": str(iris_model_path),
        "MODELS_DIR": str(sentiment_models_dir),
    }
    base_url = start_gunicorn(env, "-w", "1")
    browser.get(base_url + "/")
    assert "mlapi" in browser.title
    # Under the page's strict CSP the script ran: the curl lines name the address in use.
    origins = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "code .origin")}
    assert origins == {base_url}

    # Sentiment, with the keyboard only: type, then Ctrl+Enter.
    review = browser.find_element(By.ID, "review")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=review]").text == "Review"
    review.send_keys("A great and wonderful film, I loved it.")
    review.send_keys(Keys.CONTROL, Keys.ENTER)
    result = wait_for_text(browser, "#sentiment-result", "Positive")
    assert "positive" in result and "%" in result
    bars = browser.find_elements(By.CSS_SELECTOR, "#sentiment-result .bar")
    assert [bar.get_attribute("aria-label").split(":")[0] for bar in bars] == [
        "negative",
        "positive",
    ]

    # An example button fills the form and submits it.
    browser.find_element(By.XPATH, "//button[text()='Scathing']").click()
    wait_for_text(browser, "#sentiment-result .verdict", "Negative")

    # An empty review shows the API's message, readably.
    review.clear()
    browser.find_element(By.CSS_SELECTOR, "#sentiment-form button[type=submit]").click()
    wait_for_text(browser, "#sentiment-result [role=alert]", "must not be empty")

    # Iris: the defaults are a setosa; the Virginica example gives a virginica.
    browser.find_element(By.CSS_SELECTOR, "#iris-form button[type=submit]").click()
    wait_for_text(browser, "#iris-result .verdict", "Iris setosa")
    browser.find_element(By.XPATH, "//button[text()='Virginica']").click()
    wait_for_text(browser, "#iris-result .verdict", "Iris virginica")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#iris-result .bar")) == 3

    browser.save_screenshot(str(artifacts_dir() / "index.png"))

    # A missing measurement is refused by the API, and the page says which one.
    browser.find_element(By.ID, "petal_width").clear()
    browser.find_element(By.CSS_SELECTOR, "#iris-form button[type=submit]").click()
    wait_for_text(browser, "#iris-result [role=alert]", "features[3]")
    browser.save_screenshot(str(artifacts_dir() / "index-error.png"))


def test_without_a_sentiment_model_its_form_is_disabled_and_says_why(
    browser, start_gunicorn, iris_model_path, tmp_path
):
    from selenium.webdriver.common.by import By

    env = {**os.environ, "MODELO_PATH": str(iris_model_path), "MODELS_DIR": str(tmp_path)}
    base_url = start_gunicorn(env, "-w", "1")
    browser.get(base_url + "/")

    status = browser.find_element(By.ID, "sentiment-status").text
    assert status.startswith("Not available: no sentiment model at")
    assert "mlapi train imdb --data PATH" in status and "`" not in status
    submit = browser.find_element(By.CSS_SELECTOR, "#sentiment-form button[type=submit]")
    assert not submit.is_enabled()
    assert not browser.find_element(By.ID, "review").is_enabled()
    scathing = browser.find_element(By.XPATH, "//button[text()='Scathing']")
    assert not scathing.is_enabled()
    browser.save_screenshot(str(artifacts_dir() / "index-no-sentiment.png"))

    # The Iris form is untouched: the server is ready with Iris alone.
    browser.find_element(By.XPATH, "//button[text()='Virginica']").click()
    wait_for_text(browser, "#iris-result .verdict", "Iris virginica")
