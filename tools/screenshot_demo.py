"""Take docs/demo.png: `python run_demo.py` (the model the newest `make demo` trained) answering a held-out gallery
scene, photographed in headless Chromium.

Run from the repository root after `make demo`: `python tools/screenshot_demo.py [--scene "held-out: counting"]`.
Needs Chromium and its driver (`apt-get install chromium chromium-driver`) and selenium (the dev extra).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lavis_ib.common.dist import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


def wait_for_page(url: str, server: subprocess.Popen, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "run_demo.py exited"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no page at {url} after {limit_s:.0f} s")


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)


def photograph(url: str, scene: str, out: Path, width: int, height: int) -> str:
    """Open the page, pick `scene` from the gallery, answer it and save the page as `out`; the answer shown."""
    driver = browser(width, height)
    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: "checkpoint" in d.find_element(By.ID, "identity").text)
        thumbnails = WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#gallery button.thumbnail-item") or False)
        next(t for t in thumbnails if t.text == scene).click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))
        driver.find_element(By.ID, "answer-button").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#answers[data-done='true']")
                                        or d.find_elements(By.CSS_SELECTOR, "#ranking"))
        time.sleep(0.5)  # the last repaint
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        return driver.find_element(By.ID, "answer").text
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="held-out: counting", help="the gallery label to answer")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "demo.png")
    parser.add_argument("--size", default="1280x1000", help="browser window, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(side) for side in args.size.split("x"))
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "run_demo.py", "--port", str(port)], cwd=REPO_ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, server)
        print(photograph(url, args.scene, args.out, width, height))
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
