"""The annotation page end to end in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
answer with the keyboard and the brush, undo, reload, export, and train one round from the answers.

Leaves tests/artifacts/annotator.png to look at; with SYN2REAL_UPDATE_DOCS=1 also docs/images/annotator.png."""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from conftest import serve_on_loopback
from test_annotate_api import make_request_folder

from syn2real.active.requests import Request
from syn2real.active.store import LabelStore
from syn2real.annotate.server import create_app
from syn2real.labels import CITYSCAPES19, IGNORE
from syn2real.synth.writer import render_frame

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGE = Path(__file__).parents[1] / "docs" / "images" / "annotator.png"
WIDTH, HEIGHT = 256, 128
POINTS = [(40, 110), (128, 12), (200, 70)]
OPEN_POINT = (150, 100)

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver (`make test` installs them: "
                              "apt-get install chromium chromium-driver)"),
]


def ellipse(cx, cy, rx, ry):
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    return ((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1


@pytest.fixture
def folder(tmp_path):
    images, predictions = {}, {}
    for index, name in enumerate(("street_0", "street_1")):
        images[name], label = render_frame(index, (WIDTH, HEIGHT), "photo", seed=5)
        prediction = label.copy()
        prediction[20:50, 150:200] = CITYSCAPES19.classes.index("vegetation")  # a model is never quite right
        predictions[name] = prediction
    requests = [Request.point("street_0", x, y) for x, y in POINTS] + [Request.point("street_1", 10, 10)]
    # The brushed region sits at the image centre, which the page puts at the canvas centre.
    regions = [Request.region("street_0", ellipse(WIDTH / 2, HEIGHT / 2, 30, 16)),
               Request.region("street_0", ellipse(40, 40, 18, 12)), Request.point("street_0", *OPEN_POINT)]
    return make_request_folder(tmp_path, images, predictions, [("labor-ppl", requests), ("ripu-ra", regions)])


@pytest.fixture
def server_url(folder):
    """The app under a real uvicorn on a free loopback port, in a background thread."""
    with serve_on_loopback(create_app(folder)) as url:
        yield url


@pytest.fixture
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1366,800", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, script, timeout=20):
    """Until the JavaScript expression is truthy; returns its value. A timeout tells what the page said."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
            lambda d: d.execute_script("return " + script))
    except TimeoutException:
        said = driver.execute_script("return document.getElementById('status').textContent")
        pytest.fail(f"waited {timeout} s for {script}; status line: {said!r}; console: {driver.get_log('browser')}")


def request_states(driver) -> dict[int, tuple[str, str]]:
    items = driver.execute_script(
        "return [...document.querySelectorAll('#requests li')].map(li => [li.dataset.requestId, li.dataset.state,"
        " li.textContent])")
    return {int(i): (state, text) for i, state, text in items}


def press(driver, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def test_label_in_the_browser_reload_export_and_train(folder, server_url, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    store = LabelStore(folder / "labels.sqlite")
    point_ids = [s.id for s in store.requests(image="street_0", round_index=0)]
    region_id, other_region_id = [s.id for s in store.requests(image="street_0") if s.request.kind == "region"]
    prediction = np.array(Image.open(folder / "predictions" / "street_0.png"))
    suggested = int(prediction[POINTS[2][1], POINTS[2][0]])

    browser.get(f"{server_url}/?annotator=alice")
    wait_for(browser, "document.body.dataset.ready === 'true'")
    assert "street_0" in browser.find_element(By.ID, "image-name").text  # the lease handed out the first image
    states = request_states(browser)
    assert [s for s, _ in states.values()] == ["open"] * 6

    # Three points with the keyboard: "1" = road, "q" = the 10th class (terrain), Enter = the prediction's class.
    press(browser, "1", "q", Keys.ENTER)
    wait_for(browser, "document.querySelectorAll('#requests li[data-state=answered]').length === 3")
    press(browser, "z")  # undo the last one, then answer it again
    wait_for(browser, f"document.querySelector('#requests li[data-request-id=\"{point_ids[2]}\"]')"
                      ".dataset.state === 'open'")
    assert len(store.answers("street_0")) == 2
    press(browser, Keys.ENTER)
    wait_for(browser, "document.querySelectorAll('#requests li[data-state=answered]').length === 3")

    # The region with the brush: "2" = sidewalk, F fills it, "4" = wall, a stroke from the centre up and right out
    # of the ellipse, through the corner of its box (not requested, so not painted).
    assert browser.execute_script("return document.querySelector('#requests li.selected').dataset.requestId") \
        == str(region_id)
    press(browser, "b", "2", "f", "4")
    canvas = browser.find_element(By.ID, "canvas")
    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(240, -120).release().perform()
    press(browser, Keys.ENTER)
    wait_for(browser, "document.querySelectorAll('#requests li[data-state=answered]').length === 4")
    ARTIFACTS.mkdir(exist_ok=True)

    browser.refresh()
    wait_for(browser, "document.body.dataset.ready === 'true'")
    states = request_states(browser)
    assert [states[i][0] for i in point_ids + [region_id, other_region_id]] == ["answered"] * 4 + ["open"]
    assert len(states) == 6 and list(states.values())[-1][0] == "open"
    assert "road" in states[point_ids[0]][1] and "terrain" in states[point_ids[1]][1]
    assert CITYSCAPES19.classes[suggested] in states[point_ids[2]][1]
    assert "sidewalk + wall" in states[region_id][1]
    assert browser.find_element(By.ID, "progress-text").text.startswith("4 / 7 answered")
    assert browser.find_element(By.ID, "banner").get_attribute("hidden")  # two requests are still open
    browser.save_screenshot(str(ARTIFACTS / "annotator.png"))
    if os.environ.get("SYN2REAL_UPDATE_DOCS") == "1":
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "annotator.png", DOCS_IMAGE)
    press(browser, "p")  # the prediction overlay
    assert browser.find_element(By.ID, "prediction").get_attribute("aria-pressed") == "true"
    browser.save_screenshot(str(ARTIFACTS / "annotator_prediction.png"))

    browser.find_element(By.ID, "export").click()
    wait_for(browser, "document.getElementById('status').textContent.startsWith('exported 4 answers')")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    # What the browser sent is in the store and the export, as the labeller gave it.
    records = {r["request"]: r for r in json.loads((folder / "export" / "answers.json").read_text())}
    assert [records[i]["class"] for i in point_ids] == [0, 9, suggested]
    assert all(records[i]["annotator"] == "alice" and records[i]["source"] == "human" for i in records)
    mask = np.array(Image.open(folder / "export" / "masks" / "street_0.png"))
    region = ellipse(WIDTH / 2, HEIGHT / 2, 30, 16)
    assert [mask[y, x] for x, y in POINTS] == [0, 9, suggested]
    assert set(np.unique(mask[region])) == {1, 3}  # filled with sidewalk, a stroke of wall
    wall = np.argwhere((mask == 3) & region)
    assert len(wall) > 20 and wall[:, 1].min() >= WIDTH // 2 - 4 and wall[:, 0].max() <= HEIGHT // 2 + 4
    assert (mask[~region] != IGNORE).sum() == 3  # the stroke left the region: only the points lie outside it
    assert (mask[ellipse(40, 40, 18, 12)] == IGNORE).all()

    train_one_round(folder, tmp_path)


def train_one_round(folder, tmp_path):
    """The next round trains on the answers: the exported masks as a labelled `folder` dataset and, as active
    labelling's training does, the target batches read the store's sparse labels directly."""
    from syn2real.active.dataset import SparseLabelDataset
    from syn2real.config import Config, from_dict
    from syn2real.data import build_dataset, train_transform
    from syn2real.engine.trainer import Trainer

    root = tmp_path / "labelled"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    store = LabelStore(folder / "labels.sqlite")
    for name in store.images():
        mask = folder / "export" / "masks" / f"{name}.png"
        if (np.array(Image.open(mask)) != IGNORE).any():
            shutil.copyfile(store.image_path(name), root / "images" / f"{name}.png")
            shutil.copyfile(mask, root / "masks" / f"{name}.png")
    assert len(list((root / "masks").iterdir())) == 1
    (root / "id_map.yaml").write_text(yaml.safe_dump({"ids": {i: i for i in range(19)}}))
    cfg = from_dict(Config, {
        "name": "round1", "out_dir": str(tmp_path / "runs"),
        "model": {"pretrained": None, "head_channels": 16, "channels_last": False},
        "data": {"source": {"kind": "folder", "root": str(root)}, "target": {"kind": "folder", "root": str(root)},
                 "crop_size": [HEIGHT, WIDTH], "scale_range": [1.0, 1.0], "hflip": False, "batch_size": 1,
                 "workers": 0},
        "train": {"iters": 2, "checkpoint_every": 2, "log_every": 1, "device": "cpu"},
        "method": {"name": "source_only"},
    })
    target = SparseLabelDataset(build_dataset(cfg.data.target, labels=False), store, train_transform(cfg.data))
    source = build_dataset(cfg.data.source, train_transform(cfg.data))
    result = Trainer(cfg, datasets={"source": source, "target": target, "val": None}, progress=False).fit()
    assert result["step"] == 2 and np.isfinite(result["loss_seg"]) and result["loss_tgt_labelled"] > 0


def test_zoom_pan_skip_click_and_move_between_images(folder, server_url, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server_url}/?annotator=bob")
    wait_for(browser, "document.body.dataset.ready === 'true'")
    canvas = browser.find_element(By.ID, "canvas")

    def canvas_becomes(differs_from=None, equals=None, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shot = canvas.screenshot_as_png
            if (differs_from is not None and shot != differs_from) or (equals is not None and shot == equals):
                return shot
            time.sleep(0.05)
        pytest.fail("the canvas did not change as expected")

    time.sleep(0.3)  # let the first frame settle
    fitted = canvas.screenshot_as_png
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -400).perform()  # zoom in
    zoomed = canvas_becomes(differs_from=fitted)
    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(-120, -60).release().perform()
    canvas_becomes(differs_from=zoomed)  # panned
    press(browser, "0")
    canvas_becomes(equals=fitted)  # fit again: the very same picture

    press(browser, *["s"] * 6)  # skip / unsure, request after request
    wait_for(browser, "document.querySelectorAll('#requests li[data-state=skipped]').length === 6")
    assert not browser.find_element(By.ID, "banner").get_attribute("hidden")  # the image is done
    press(browser, "n")
    wait_for(browser, "document.getElementById('image-name').textContent.startsWith('street_1')")
    press(browser, Keys.ARROW_LEFT)
    wait_for(browser, "document.getElementById('image-name').textContent.startsWith('street_0')")
    press(browser, Keys.ARROW_RIGHT)
    wait_for(browser, "document.getElementById('image-name').textContent.startsWith('street_1')")
    browser.find_element(By.CSS_SELECTOR, '#palette li[data-class="13"]').click()  # a class by mouse: car
    wait_for(browser, "document.querySelector('#requests li[data-state=answered]')")
    press(browser, "n")
    wait_for(browser, "document.getElementById('status').textContent.startsWith('no image with open requests')")

    store = LabelStore(folder / "labels.sqlite")
    answers = [answer for _, answer in store.answers()]
    assert sum(a.skipped for a in answers) == 6 and {a.annotator for a in answers} == {"bob"}
    assert store.sparse_label("street_1")[10, 10] == 13
    press(browser, "z")  # undo the last answer
    wait_for(browser, "document.querySelector('#requests li').dataset.state === 'open'")
    assert store.sparse_label("street_1")[10, 10] == IGNORE and len(store.answers()) == 6
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
