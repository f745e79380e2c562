"""The studio in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright's
Python client; no browser download) on ``python -m tfsynth.studio`` over tiny exports.

Paints a stroke of a class, renders, checks that every model's image appears and changes when
the painted class changes, cycles one pix2pixHD instance's style and checks that no pixel
outside that instance changes, and keeps a screenshot (the test's tmp dir; also the path in
$TFSYNTH_STUDIO_SCREENSHOT, e.g. docs/studio.png). $TFSYNTH_STUDIO_SAVED_MODEL runs it on other
exports (name:PATH,...), e.g. the quickstarts' for the README's screenshot.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cli_support import REPO_ROOT, cli_env
from studio_support import saved_model_flag

pytestmark = pytest.mark.browser

INSTALL_HINT = ("apt-get update && apt-get install -y chromium (Debian; .ci/run does it), "
                "python -m playwright install chromium, or point $TFSYNTH_CHROMIUM at a Chromium binary")


def launch_chromium(playwright):
    """Headless Chromium: $TFSYNTH_CHROMIUM, else the system's (Debian's ``chromium``), else
    Playwright's own download; a clear failure (never a skip) when there is none."""
    path = os.environ.get("TFSYNTH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        return playwright.chromium.launch(**({"executable_path": path} if path else {}))
    except Exception as error:  # noqa: BLE001 - Playwright's missing-browser error has no own type
        pytest.fail(f"headless Chromium could not start ({str(error).splitlines()[0]}); the studio's "
                    f"browser test needs it: {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="module")
def studio_url(request, cache_dir):
    """The URL of ``python -m tfsynth.studio --port=0`` on the exports, and when it was started."""
    saved_model = (os.environ.get("TFSYNTH_STUDIO_SAVED_MODEL")
                   or saved_model_flag(request.getfixturevalue("studio_exports")))
    started = time.time()
    process = subprocess.Popen([sys.executable, "-m", "tfsynth.studio", f"--saved_model={saved_model}", "--port=0"],
                               cwd=REPO_ROOT, env=cli_env(cache_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines, announced = [], threading.Event()

    def read():  # drains the pipe for the server's whole life, so it never blocks on a full one
        for line in process.stdout:
            lines.append(line)
            if "tfsynth studio: http" in line:
                announced.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not announced.wait(120) or process.poll() is not None:
            pytest.fail("the studio did not start:\n" + "".join(lines[-40:]), pytrace=False)
        url = re.search(r"http://\S+/", next(line for line in lines if "tfsynth studio: http" in line))[0]
        assert url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
        yield url, started
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def page(studio_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright's Python client is missing: pip install -e '.[test]'", pytrace=False)
    url, started = studio_url
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_function("window.studio && studio.state.config", timeout=60_000)
        wait_for_renders(page, len(models(page)))
        print(f"studio: startup to first render {time.time() - started:.1f} s")
        yield page
        assert not errors, errors
        browser.close()


def models(page) -> list[dict]:
    return page.evaluate("studio.state.config.models")


def wait_for_renders(page, count: int, after: int = 0):
    """Until ``count`` renders finished after the ``after``-th, and none is running."""
    page.wait_for_function(f"window.studio && studio.renders >= {after + count} && studio.pending === 0",
                           timeout=60_000)


def renders(page) -> int:
    return page.evaluate("studio.renders")


def pixels(page, model: str, index: int = 0) -> np.ndarray:
    """The RGB pixels of a model's ``index``-th image, as shown."""
    data = page.evaluate("""([model, index]) => {
        const canvas = document.querySelector(`canvas[data-model="${model}"][data-index="${index}"]`);
        const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        return [canvas.height, canvas.width, Array.from(image.data)];
    }""", [model, index])
    height, width, values = data
    return np.asarray(values, np.uint8).reshape(height, width, 4)[..., :3]


def all_pixels(page) -> dict:
    return {model["name"]: pixels(page, model["name"]) for model in models(page)}


def class_id(page, name: str) -> int:
    return page.evaluate(f"studio.state.config.label_space.classes.find(c => c.name === {name!r}).id")


def load_scene(page, index: int = 0):
    before = renders(page)
    page.fill("#scene-index", str(index))
    page.click("#synthetic")
    wait_for_renders(page, len(models(page)), before)


def stroke(page, name: str, points, brush: int = 6):
    """Paints ``points`` (fractions of the canvas) with class ``name``, and waits for the renders."""
    page.click(f'#classes button[data-class-id="{class_id(page, name)}"]')
    page.evaluate(f"b => {{ b.value = {brush}; b.dispatchEvent(new Event('input')); }}",
                  page.query_selector("#brush"))
    box = page.query_selector("#label-canvas").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    before = renders(page)
    page.mouse.move(*xy[0])
    page.mouse.down()
    for point in xy[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()
    wait_for_renders(page, len(models(page)), before)


def test_painting_a_class_renders_every_model_and_another_class_renders_differently(page):
    load_scene(page, 0)
    scene = all_pixels(page)
    for model in models(page):
        assert scene[model["name"]].shape[:2] == tuple(model["size"])  # each at its model's size
        assert scene[model["name"]].any()
        count = model["num_outputs"] if "images" in model["outputs"] else 1
        assert page.locator(f'canvas[data-model="{model["name"]}"]').count() == count  # CRN: its K images
    across = [(0.15, 0.55), (0.5, 0.6), (0.85, 0.55)]
    stroke(page, "vegetation", across)
    height, width = page.evaluate("studio.state.config.canvas")
    label = np.asarray(page.evaluate("Array.from(studio.state.label)")).reshape(height, width)
    assert label[int(0.6 * height), width // 2] == class_id(page, "vegetation")
    vegetation = all_pixels(page)
    before = renders(page)
    page.click("#undo")
    wait_for_renders(page, len(models(page)), before)
    for name, image in all_pixels(page).items():
        np.testing.assert_array_equal(image, scene[name])  # undo restores the scene and its renders
    stroke(page, "building", across)
    building = all_pixels(page)
    for name in scene:
        assert not np.array_equal(vegetation[name], scene[name]), name
        assert not np.array_equal(vegetation[name], building[name]), name


def test_fill_pick_and_downloads(page, tmp_path):
    from PIL import Image

    height, width = page.evaluate("studio.state.config.canvas")
    page.click(f'#classes button[data-class-id="{class_id(page, "road")}"]')
    before = renders(page)
    page.click("#blank")
    wait_for_renders(page, len(models(page)), before)
    assert set(page.evaluate("Array.from(new Set(studio.state.label))")) == {class_id(page, "road")}
    load_scene(page, 0)
    state = lambda key: np.asarray(page.evaluate(f"Array.from(studio.state.{key})")).reshape(height, width)  # noqa: E731
    sky = class_id(page, "sky")
    label = state("label")
    row, col = map(int, np.argwhere(label == sky)[0])
    box = page.query_selector("#label-canvas").bounding_box()
    at = lambda r, c: (box["x"] + (c + 0.5) * box["width"] / width, box["y"] + (r + 0.5) * box["height"] / height)  # noqa: E731
    page.click(f'#classes button[data-class-id="{class_id(page, "vegetation")}"]')
    page.check('input[name="tool"][value="fill"]')
    before = renders(page)
    page.mouse.click(*at(row, col))
    wait_for_renders(page, len(models(page)), before)
    filled = state("label")
    changed = filled != label
    assert filled[row, col] == class_id(page, "vegetation")
    assert (label[changed] == sky).all() and (filled[changed] == class_id(page, "vegetation")).all()
    # Pick: a car's class and instance, so the next stroke extends that car.
    instance = state("instance")
    car_pixel = np.argwhere(instance // 1000 == class_id(page, "car"))[0]
    page.check('input[name="tool"][value="pick"]')
    page.mouse.click(*at(*car_pixel))
    assert page.evaluate("[studio.state.classId, studio.state.extend]") == [class_id(page, "car"),
                                                                             int(instance[tuple(car_pixel)])]
    page.check('input[name="tool"][value="brush"]')
    for button, name in (("#download-label", "label.png"), ("#download-instance", "instance.png")):
        with page.expect_download() as download:
            page.click(button)
        assert download.value.suggested_filename == name
        download.value.save_as(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "label.png")), filled)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "instance.png")), instance)
    with page.expect_download() as download:
        page.locator('figure[data-model] a').first.click()
    download.value.save_as(tmp_path / "render.png")
    first = models(page)[0]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "render.png").convert("RGB")),
                                  pixels(page, first["name"]))


def test_bad_upload_shows_a_message(page, tmp_path):
    not_png = tmp_path / "label.png"
    not_png.write_bytes(b"GIF89a not a png at all")
    page.set_input_files("#upload-label", str(not_png))
    page.click("#upload")
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "not a PNG" in message.inner_text()
    assert page.evaluate("studio.state.label.length") > 0  # the scene is still there


def test_cycling_one_instance_style_changes_only_that_instance(page, tmp_path):
    load_scene(page, 0)
    stroke(page, "car", [(0.42, 0.72), (0.58, 0.72)], brush=8)
    styled = [m for m in models(page) if any(i["kind"] == "cluster_map" for i in m["inputs"])]
    assert styled, "no loaded export takes a cluster_map (pix2pixHD with instance features)"
    car = class_id(page, "car")
    car_id = max(i for i in page.evaluate("Array.from(new Set(studio.state.instance))") if i // 1000 == car)
    others = {m["name"]: pixels(page, m["name"]) for m in models(page) if m not in styled}
    for model in styled:
        name, (height, width) = model["name"], model["size"]
        instance = np.asarray(page.evaluate(f"Array.from(studio.state.outputs.get({name!r}).instance)"))
        inside = instance.reshape(height, width) == car_id
        assert inside.any(), "the car stroke did not reach the model's size"
        canvas = page.locator(f'canvas[data-model="{name}"][data-index="0"]')
        box = canvas.bounding_box()
        rows, cols = np.nonzero(inside)
        middle = len(rows) // 2
        target = (box["x"] + (cols[middle] + 0.5) * box["width"] / width,
                  box["y"] + (rows[middle] + 0.5) * box["height"] / height)
        start = pixels(page, name)
        changed = False
        for _ in range(model["style_clusters"][car]):  # the first choice may be the seed's own
            before = renders(page)
            page.mouse.click(*target)
            wait_for_renders(page, len(styled), before)
            after = pixels(page, name)
            np.testing.assert_array_equal(after[~inside], start[~inside])
            changed = changed or not np.array_equal(after[inside], start[inside])
        assert changed, f"{name}: no style of the car changed its pixels"
        assert f"style {model['style_clusters'][car]} of" in page.locator("#message").inner_text()
    for name, image in others.items():
        np.testing.assert_array_equal(pixels(page, name), image)  # styles are pix2pixHD's alone
    screenshot = tmp_path / "studio.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("TFSYNTH_STUDIO_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["TFSYNTH_STUDIO_SCREENSHOT"])
