"""`python run_demo.py` in a real browser (headless Chromium via selenium): the page is served within 10 s of the
command, answers an uploaded image within 2 s of the click with what the model's own `generate` gives, ranks
candidates with the model's normalised probabilities, shows a message for bad input and keeps serving after it.

One server (the real command, in a subprocess, on a free port of 127.0.0.1) and one browser serve every test here.
It loads the demo model with a checkpoint this module writes, so the test process holds the very same weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from lavis_ib.app.checks import check_decoding
from lavis_ib.app.examples import GALLERY, gallery_examples
from lavis_ib.common.dist import free_port
from lavis_ib.common.media import open_image
from lavis_ib.datasets import synthetic

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO_ROOT / "projects" / "instructblip" / "demo_model.yaml"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
START_LIMIT_S, ANSWER_LIMIT_S = 10.0, 2.0
QUESTION = "Question: how many shapes are there? Short answer:"

if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip(f"the browser tests need Chromium and its driver: {INSTALL}", allow_module_level=True)
pytest.importorskip("gradio", reason="the demo page needs gradio: pip install -e .[demo]")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium: pip install -e .[dev]")
from selenium.webdriver.common.by import By  # noqa: E402 (after the skips)
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def model_and_checkpoint(tmp_path_factory):
    """The demo model with a seeded random Q-Former, and its trainable weights saved for the server to load."""
    from lavis_ib.app import parse_args
    from lavis_ib.app.served import load_served

    torch.manual_seed(0)
    served = load_served(parse_args(["--cfg-path", str(DEMO_MODEL)]))
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in served.model.trainable_state_dict().items()}, str(path))
    return served, path


@pytest.fixture(scope="module")
def server(model_and_checkpoint, tmp_path_factory):
    """`python run_demo.py --cfg-path demo_model.yaml --checkpoint ...` on a free port: its URL and start-up time."""
    _, checkpoint = model_and_checkpoint
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "run_demo.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "run_demo.py", "--cfg-path", str(DEMO_MODEL), "--checkpoint",
                                    str(checkpoint), "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, f"run_demo.py exited: {log.read_text()[-3000:]}"
            assert time.perf_counter() - start < 60, f"no page after 60 s: {log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield url, time.perf_counter() - start, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(server):
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(server[0])
        WebDriverWait(driver, 60).until(lambda d: "checkpoint" in d.find_element(By.ID, "identity").text)  # loaded
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A scene of the synthetic world, and files that are not usable images."""
    folder = tmp_path_factory.mktemp("uploads")
    scene = synthetic.Scene(0, "scene.png", "test", [synthetic.Thing("circle", "red", 12, 20),
                                                     synthetic.Thing("square", "blue", 52, 36)])
    synthetic.render_scene(scene, None).save(folder / "scene.png")
    (folder / "notes.txt").write_text("not an image")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    return folder


def upload(driver, path: Path) -> None:
    """Put `path` into the image box (after removing the file it holds, if any) and wait for the page's reply."""
    for clear in driver.find_elements(By.CSS_SELECTOR, "#image-file button[aria-label='Clear']"):
        clear.click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image-file input[type=file]"))
    before = request_number(driver, "#message [data-request]")
    driver.find_element(By.CSS_SELECTOR, "#image-file input[type=file]").send_keys(str(path))
    WebDriverWait(driver, 10).until(lambda d: request_number(d, "#message [data-request]") > before and (
        d.find_elements(By.CSS_SELECTOR, "#message .error") or d.find_elements(By.CSS_SELECTOR, "#preview img")))


def type_into(driver, css: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, css)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    field.send_keys(Keys.TAB)  # gradio takes the value on change/blur


def request_number(driver, css: str) -> int:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return int(found[0].get_attribute("data-request")) if found else 0


def ask(driver) -> float:
    """Click Answer and wait for the reply to this request (an answer whose stream ended, a ranking, or a message);
    the seconds from click to reply."""
    before = request_number(driver, "#message [data-request]")
    start = time.perf_counter()
    driver.find_element(By.ID, "answer-button").click()
    WebDriverWait(driver, 30).until(lambda d: request_number(d, "#message [data-request]") > before and (
        d.find_elements(By.CSS_SELECTOR, "#message .error") or d.find_elements(By.CSS_SELECTOR, "#ranking")
        or d.find_elements(By.CSS_SELECTOR, "#answers[data-done='true']")))
    return time.perf_counter() - start


def fill(driver, files: Path, instruction: str = QUESTION, mode: str = "Generate") -> None:
    """The scene in the image box, `instruction` in its box, `mode` chosen: each test starts from these."""
    upload(driver, files / "scene.png")
    type_into(driver, "#instruction textarea", instruction)
    choose(driver, mode)


def choose(driver, label: str) -> None:
    driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']").click()


def message(driver) -> str:
    return driver.find_element(By.ID, "message").text


def test_the_page_is_served_within_10_s_of_the_command_and_names_the_model_once_loaded(server, browser):
    _, seconds, log = server
    assert seconds <= START_LIMIT_S, f"page served after {seconds:.1f} s"
    assert "serving blip2_vicuna_instruct/tiny · checkpoint" in log.read_text()
    shown = " ".join(browser.find_element(By.ID, "identity").text.split())  # a long name wraps on the page
    assert shown.startswith("Model: blip2_vicuna_instruct/tiny · checkpoint")
    assert not [b for b in browser.find_elements(By.ID, "banner") if b.is_displayed()]  # trained: no warning


def test_an_uploaded_image_is_answered_within_2_s_with_what_generate_gives(browser, files, model_and_checkpoint):
    served, checkpoint = model_and_checkpoint
    fill(browser, files)
    assert browser.find_elements(By.CSS_SELECTOR, "#preview img") and message(browser) == ""
    type_into(browser, "#num-beams input[type=number]", "1")  # greedy: the streamed path
    seconds = ask(browser)
    assert seconds <= ANSWER_LIMIT_S, f"answer after {seconds:.2f} s"
    decoding = check_decoding(False, 1, 10, 1, 1.0, 0.9, 0.0, 1.5, 1)  # the page's defaults, 1 beam
    image = served.vis_processor(open_image(files / "scene.png")).unsqueeze(0)
    expected = served.model.generate({"image": image, "prompt": QUESTION}, **decoding.generate_args())
    assert browser.find_element(By.CSS_SELECTOR, "#answers .answer-text").text == (expected[0] or "(empty)")
    meta = browser.find_element(By.CSS_SELECTOR, "#answer .answer-meta").text
    assert f"model: blip2_vicuna_instruct/tiny · checkpoint {checkpoint} ·" in meta
    assert f"settings: {decoding.describe()}" in meta


def test_ranking_shows_the_models_normalised_probabilities_as_bars(browser, files, model_and_checkpoint):
    served, _ = model_and_checkpoint
    fill(browser, files, mode="Rank candidates")
    type_into(browser, "#candidates textarea", "circle, square, triangle")
    ask(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranking .bar-row")
    shown = {row.get_attribute("data-candidate"): float(row.get_attribute("data-probability")) for row in rows}
    image = served.vis_processor(open_image(files / "scene.png")).unsqueeze(0)
    sums = served.model.score_candidates({"image": image, "prompt": QUESTION}, ["circle", "square", "triangle"]).sum[0]
    expected = dict(zip(["circle", "square", "triangle"], torch.softmax(sums, 0).tolist()))
    assert list(shown) == sorted(expected, key=expected.get, reverse=True)  # most probable first
    assert shown == pytest.approx(expected, abs=1e-5)
    widths = [row.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width") for row in rows]
    track = rows[0].find_element(By.CSS_SELECTOR, ".bar-track").value_of_css_property("width")
    fractions = [float(width.removesuffix("px")) / float(track.removesuffix("px")) for width in widths]
    assert fractions == pytest.approx(list(shown.values()), abs=0.01)  # each bar as long as its probability
    assert f"{100 * max(shown.values()):.1f} %" in rows[0].text


def test_the_gallery_offers_held_in_and_held_out_scenes_and_a_click_fills_the_inputs(browser, tmp_path):
    expected = gallery_examples(tmp_path)  # the world is drawn from fixed seeds: the server drew the same one
    thumbnails = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#gallery button.thumbnail-item") or False)
    assert [t.text for t in thumbnails] == [label for _, _, label in GALLERY]
    for label in ("held-out: counting", "held-out: multiple choice (ranked)"):
        example = next(e for e in expected if e.label == label)
        next(t for t in thumbnails if t.text == label).click()
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "#instruction textarea")
                                         .get_attribute("value") == example.instruction)
        mode = "Rank candidates" if example.candidates else "Generate"
        assert browser.find_element(By.CSS_SELECTOR, f"#mode input[value='{mode}']").is_selected()
        assert browser.find_element(By.CSS_SELECTOR, "#candidates textarea").get_attribute("value") == \
            ", ".join(example.candidates)
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#preview img"))  # the scene


def test_bad_input_gets_a_message_and_the_server_keeps_serving(browser, files):
    fill(browser, files, mode="Rank candidates")
    type_into(browser, "#candidates textarea", "circle,,triangle")
    ask(browser)
    assert message(browser) == "Candidate 2 of 3 is empty: remove the extra comma or blank line."
    choose(browser, "Generate")
    type_into(browser, "#min-length input", "40")
    ask(browser)
    assert message(browser) == "Min length 40 is more than max length 10: raise the max length or lower the min length."
    type_into(browser, "#min-length input", "1")
    upload(browser, files / "notes.txt")
    assert message(browser).startswith("notes.txt is not an image file this page can read")
    ask(browser)
    assert message(browser).startswith("notes.txt is not an image file this page can read")
    upload(browser, files / "dot.png")
    assert message(browser).startswith("dot.png is 1×1 pixels: too small to show anything.")
    upload(browser, files / "scene.png")
    seconds = ask(browser)  # the same server answers again
    assert message(browser) == "" and browser.find_element(By.CSS_SELECTOR, "#answers .answer-text").text
    assert seconds <= ANSWER_LIMIT_S
