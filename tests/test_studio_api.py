"""The studio's HTTP API without a browser: TF Serving's REST calls and the studio-only ones, each
with good and bad bodies (a bad one is a 4xx with {"error": ...}, never a crash)."""

import base64
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from cli_support import REPO_ROOT, cli_env
from studio_support import saved_model_flag

#: The studio answers loopback host names only, and JSON POSTs only.
LOCAL = "http://localhost"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def studio(studio_exports):
    """(TestClient of the studio over the tiny exports, its models, its LocalServing)."""
    from starlette.testclient import TestClient

    from tfsynth.studio import exports, serving, server

    models = exports.load_models(saved_model_flag(studio_exports))
    local = serving.LocalServing({model.name: model.path for model in models})
    with TestClient(base_url=LOCAL, app=server.create_app(models, local)) as client:
        yield client, models, local


@pytest.fixture(scope="module")
def client(studio):
    return studio[0]


def png_b64(array) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return {"b64": base64.b64encode(buffer.getvalue()).decode()}


def street(height=32, width=64):
    """A label map (road, a car, sky) and its instance map, as lists."""
    label = np.full((height, width), 7, np.uint8)
    label[: height // 3] = 23
    instance = label.astype(np.int32)
    label[12:20, 20:36], instance[12:20, 20:36] = 26, 26001
    return label, instance


def assert_error(response, status, *words):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


# ----------------------------------------------------------------------------- studio config

@pytest.mark.slow
def test_config_describes_each_model_from_its_export(client):
    config = client.get("/studio/v1/config").json()
    classes = {c["name"]: c for c in config["label_space"]["classes"]}
    assert config["label_space"]["name"] == "cityscapes35" and len(classes) == 35
    assert classes["car"]["thing"] and classes["person"]["thing"] and not classes["road"]["thing"]
    assert classes["road"]["color"] == [128, 64, 128] and classes["car"]["id"] == 26
    assert config["canvas"] == [32, 64] and config["examples"] == [] and config["serving"] == "in-process"
    models = {m["name"]: m for m in config["models"]}
    assert list(models) == ["crn", "pix2pix", "pix2pixhd"]
    assert models["crn"]["outputs"] == ["image", "images"] and models["crn"]["num_outputs"] == 3
    assert models["pix2pix"]["size"] == [32, 32] and models["pix2pix"]["style_clusters"] is None
    hd = models["pix2pixhd"]
    assert [i["kind"] for i in hd["inputs"]] == ["label", "instance", "seed", "cluster_map"]
    assert hd["signature_name"] == "serving_default" and len(hd["style_clusters"]) == 35
    assert hd["style_clusters"][26] >= 2  # cars offer styles to cycle through


# ------------------------------------------------------------------------ TF Serving's REST API

@pytest.mark.slow
def test_status_and_metadata_answer_as_tf_serving(client):
    status = client.get("/v1/models/crn").json()
    assert status["model_version_status"][0] == {"version": "1", "state": "AVAILABLE",
                                                 "status": {"error_code": "OK", "error_message": ""}}
    metadata = client.get("/v1/models/pix2pixhd/metadata").json()
    assert metadata["model_spec"] == {"name": "pix2pixhd", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["label"]["dtype"] == "DT_UINT8"
    assert signature["inputs"]["clusters"]["dtype"] == "DT_INT32"
    assert signature["outputs"]["image"]["dtype"] == "DT_UINT8"
    assert signature["method_name"] == "tensorflow/serving/predict"
    for path in ("/v1/models/nope", "/v1/models/nope/metadata"):
        assert_error(client.get(path), 404, "Servable not found", "nope")


@pytest.mark.slow
def test_predict_in_row_and_columnar_formats(client):
    label, _ = street()
    row = client.post("/v1/models/crn:predict", json={"instances": [{"label": label.tolist()}]})
    assert row.status_code == 200, row.text
    prediction = row.json()["predictions"][0]
    assert np.asarray(prediction["image"]).shape == (32, 64, 3)
    assert np.asarray(prediction["images"]).shape == (3, 32, 64, 3)
    columnar = client.post("/v1/models/crn:predict", json={"signature_name": "serving_default",
                                                           "inputs": {"label": [label.tolist()]}}).json()
    np.testing.assert_array_equal(columnar["outputs"]["images"][0], prediction["images"])
    # One output: TF Serving gives each prediction as the bare value, and takes a bare instance.
    single = client.post("/v1/models/pix2pix:predict", json={"instances": [label[:, :32].tolist()]}).json()
    assert np.asarray(single["predictions"]).shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_predict_png_takes_and_returns_b64(client):
    label, _ = street()
    response = client.post("/v1/models/crn:predict", json={"signature_name": "predict_png",
                                                           "instances": [png_b64(label)]})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(prediction["b64"]))))
    direct = client.post("/v1/models/crn:predict", json={"instances": [{"label": label.tolist()}]}).json()
    np.testing.assert_array_equal(image, direct["predictions"][0]["image"])


@pytest.mark.slow
def test_pix2pixhd_cluster_choice_changes_that_instance_and_seeds_are_deterministic(client):
    label, instance = street()

    def render(car_style, seed=3):
        clusters = np.where(instance == 26001, car_style, -1)
        body = {"instances": [{"label": label.tolist(), "instance": instance.tolist(), "seed": seed,
                               "clusters": clusters.tolist()}]}
        response = client.post("/v1/models/pix2pixhd:predict", json=body)
        assert response.status_code == 200, response.text
        return np.asarray(response.json()["predictions"][0])

    drawn = render(-1)
    np.testing.assert_array_equal(drawn, render(-1))
    first, second = render(0), render(1)
    car = instance == 26001
    assert not np.array_equal(first[car], second[car])


BAD_PREDICTS = [
    ("crn", b"{not json", 400, "malformed JSON"),
    ("crn", [1, 2], 400, "JSON object"),
    ("crn", {"signature_name": "serving_default"}, 400, "instances"),
    ("crn", {"instances": [], }, 400, "non-empty"),
    ("crn", {"instances": [[[1]]], "inputs": [[[1]]]}, 400, "exactly one"),
    ("crn", {"signature_name": "nope", "instances": [[[1]]]}, 400, "nope"),
    ("crn", {"instances": [{"label": [[7] * 64] * 32, "color": 1}]}, 400, "unknown input(s) color"),
    ("pix2pixhd", {"instances": [{"label": [[7] * 64] * 32}]}, 400, "missing input(s)"),
    ("pix2pixhd", {"inputs": [[[7] * 64] * 32]}, 400, "takes named inputs"),
    ("crn", {"instances": [{"label": [[7] * 64] * 32}, [[7] * 64] * 32]}, 400, "all name their inputs"),
    ("crn", {"instances": [{"label": [[7] * 64, [7] * 63]}]}, 400, "different lengths"),
    ("crn", {"instances": [{"label": [[300] * 64] * 32}]}, 400, "do not fit uint8"),
    ("crn", {"instances": [{"label": [[1.5] * 64] * 32}]}, 400, "integers"),
    ("crn", {"instances": [{"label": [["road"] * 64] * 32}]}, 400, "expected numbers"),
    ("crn", {"instances": [{"label": [7] * 64}]}, 400, "expected shape"),
    ("crn", {"instances": [{"label": [[40] * 64] * 32}]}, 400, "outside cityscapes35"),
    ("crn", {"instances": [{"label": [[7] * 8] * 2056}]}, 400, "max_size 2048"),
    ("crn", {"signature_name": "predict_png", "instances": [{"b64": "%%%"}]}, 400, "base64"),
    ("crn", {"signature_name": "predict_png", "instances": [{"b64": base64.b64encode(b"GIF89a").decode()}]},
     400, ""),
    ("nope", {"instances": [[[1]]]}, 404, "Servable not found"),
    ("pix2pixhd", {"instances": [{"label": [[7] * 64] * 32, "instance": [[7] * 64] * 32, "seed": 0,
                                  "clusters": [[50] * 64] * 32}]}, 400, "a style beyond"),
    ("pix2pixhd", {"instances": [{"label": [[7] * 64] * 32, "instance": [[7] * 64] * 32, "seed": 0,
                                  "clusters": [[-2] * 64] * 32}]}, 400, "-1 to draw"),
    ("pix2pixhd", {"instances": [{"label": [[7] * 64] * 32, "instance": [[7] * 64] * 32, "seed": 0,
                                  "clusters": [[0] * 8] * 8}]}, 400, "clusters must have the batch size"),
    ("pix2pixhd", {"instances": [{"label": [[7] * 64] * 32, "instance": [[99001] * 64] * 32, "seed": 0,
                                  "clusters": [[-1] * 64] * 32}]},
     400, "instance ids are a class id"),
    ("crn", {"signature_name": ["serving_default"], "instances": [[[1]]]}, 400, "must be a string"),
    ("crn", b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
    ("crn", {"instances": [{"label": [[7] * 1100] * 2048}] * 2}, 413, "4505600 pixels"),
]


@pytest.mark.parametrize("model,body,status,words", BAD_PREDICTS,
                         ids=[f"{i}-{words or status}" for i, (_, _, status, words) in enumerate(BAD_PREDICTS)])
@pytest.mark.slow
def test_bad_predict_bodies_are_refused_with_a_message(client, model, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert_error(client.post(f"/v1/models/{model}:predict", content=content, headers=JSON), status, words)


@pytest.mark.slow
def test_the_server_keeps_serving_after_refusals(client):
    client.post("/v1/models/crn:predict", content=b"{", headers=JSON)
    label, _ = street()
    assert client.post("/v1/models/crn:predict", json={"instances": [{"label": label.tolist()}]}).status_code == 200


# ------------------------------------------------------------------------------------ scenes

@pytest.mark.slow
def test_synthetic_scenes_come_at_the_canvas_size_with_instances(client):
    scene = client.get("/studio/v1/scenes/synthetic/0").json()
    label, instance = np.asarray(scene["label"]), np.asarray(scene["instance"])
    assert label.shape == instance.shape == (32, 64) and scene["key"] == "synthetic_s0_000000"
    assert label.max() < 35 and (instance >= 1000).any()  # things carry class * 1000 + k
    np.testing.assert_array_equal(np.where(instance >= 1000, instance // 1000, instance), label)
    assert client.get("/studio/v1/scenes/synthetic/1").json()["label"] != scene["label"]
    assert_error(client.get("/studio/v1/scenes/examples/0"), 404, "--examples")


@pytest.mark.slow
def test_uploads_are_checked_and_resized_to_the_canvas(client):
    label, instance = street(64, 128)
    scene = client.post("/studio/v1/scenes/upload", json={"label": png_b64(label),
                                                           "instance": png_b64(instance.astype(np.uint16))})
    assert scene.status_code == 200, scene.text
    np.testing.assert_array_equal(scene.json()["label"], label[1::2, 1::2])  # nearest: the centre pixel
    np.testing.assert_array_equal(scene.json()["instance"], instance[1::2, 1::2])
    colours = client.post("/studio/v1/scenes/upload", json={"label": png_b64(
        np.array([[128, 64, 128], [70, 130, 180]], np.uint8)[(label == 23).astype(int)])})
    np.testing.assert_array_equal(colours.json()["label"], np.where(label == 23, 23, 7)[1::2, 1::2])
    jpeg = io.BytesIO()
    Image.fromarray(label).save(jpeg, format="JPEG")
    bad = [
        ({"label": {"b64": base64.b64encode(jpeg.getvalue()).decode()}}, 400, "not a PNG"),
        ({"label": {"b64": "!!"}}, 400, "base64"),
        ({"label": "label.png"}, 400, "b64"),
        ({}, 400, "label"),
        ({"label": png_b64(np.full((8, 8), 50, np.uint8))}, 400, "label id 50 is outside the label space"),
        ({"label": png_b64(np.zeros((4, 2049), np.uint8))}, 400, "max_size 2048"),
        ({"label": png_b64(label), "instance": png_b64(instance[:32].astype(np.uint16))}, 400, "differs"),
    ]
    for body, status, words in bad:
        assert_error(client.post("/studio/v1/scenes/upload", json=body), status, words)
    assert_error(client.post("/studio/v1/scenes/upload", content=b"\x89PNG", headers=JSON), 400, "malformed JSON")


@pytest.mark.slow
def test_label_and_instance_maps_download_as_png(client):
    label, instance = street()
    for kind, ids, mode in (("label", label, "L"), ("instance", instance, "I;16")):
        response = client.post("/studio/v1/png", json={"kind": kind, "ids": ids.tolist()})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), ids)
    for body, words in (({"kind": "photo", "ids": [[1]]}, "kind"), ({"kind": "label", "ids": [[35]]}, "0..34"),
                        ({"kind": "instance", "ids": [[70000]]}, "0..65535"), ({"kind": "label", "ids": [1, 2]}, "[height][width]")):
        assert_error(client.post("/studio/v1/png", json=body), 400, words)


@pytest.mark.slow
def test_examples_from_a_tfrecord_dataset(studio):
    from starlette.testclient import TestClient

    from tfsynth.data import pipelines
    from tfsynth.studio import scenes, server

    _, models, local = studio
    data_dir = pipelines.resolve_data_dir("synthetic:32x64:20")
    examples = scenes.Examples(scenes.example_files(data_dir, "val", "cityscapes35"))
    with pytest.raises(ValueError, match="cityscapes35 label maps; the exports take cityscapes20"):
        scenes.example_files(data_dir, "val", "cityscapes20")
    with TestClient(base_url=LOCAL, app=server.create_app(models, local, examples)) as client:
        keys = client.get("/studio/v1/config").json()["examples"]
        assert len(keys) == 2 and keys[0].startswith("synthetic")
        scene = client.get("/studio/v1/scenes/examples/1").json()
        assert scene["key"] == keys[1] and np.asarray(scene["instance"]).shape == (32, 64)
        assert_error(client.get("/studio/v1/scenes/examples/2"), 404, "no example 2")


# ------------------------------------------------------------------ --serving_url: forwarding

@pytest.mark.slow
def test_forwarding_to_tf_serving_passes_calls_and_answers_through(studio):
    """--serving_url: the page's calls go to TF Serving unchanged (here the studio's own REST API
    stands in for tensorflow_model_server), errors and all."""
    import httpx2 as httpx
    from starlette.testclient import TestClient

    from tfsynth.studio import serving, server

    local_client, models, local = studio
    tf_serving = httpx.ASGITransport(app=server.create_app(models, local, limits=server.Limits(allowed_hosts=("tfserving",))))
    forwarding = serving.ForwardedServing("http://tfserving:8501/", transport=tf_serving)
    label, _ = street()
    body = {"instances": [{"label": label.tolist()}]}
    with TestClient(base_url=LOCAL, app=server.create_app(models, forwarding)) as client:
        assert client.get("/studio/v1/config").json()["serving"] == "http://tfserving:8501"
        assert client.get("/v1/models/crn/metadata").json() == local_client.get("/v1/models/crn/metadata").json()
        assert client.get("/v1/models/crn").json()["model_version_status"][0]["state"] == "AVAILABLE"
        assert client.post("/v1/models/crn:predict", json=body).json() == \
            local_client.post("/v1/models/crn:predict", json=body).json()
        assert_error(client.post("/v1/models/crn:predict", content=b"{", headers=JSON), 400, "malformed JSON")
    unreachable = serving.ForwardedServing("http://127.0.0.1:9")
    with TestClient(base_url=LOCAL, app=server.create_app(models, unreachable)) as client:
        assert_error(client.post("/v1/models/crn:predict", json=body), 502, "did not answer")


# ------------------------------------------------------------------------------------ command

@pytest.mark.cli
def test_command_refuses_bad_flags_at_once(tmp_path, cache_dir, studio_exports):
    from tfsynth.studio import exports

    def studio_command(*args):
        return subprocess.run([sys.executable, "-m", "tfsynth.studio", *args], cwd=REPO_ROOT, env=cli_env(cache_dir),
                              capture_output=True, text=True, timeout=60)

    started = time.time()
    missing = studio_command(f"--saved_model=crn:{tmp_path / 'none'}")
    assert missing.returncode != 0 and "error: --saved_model" in missing.stderr and "Traceback" not in missing.stderr
    assert time.time() - started < 20  # no TensorFlow import before the flags are checked
    twice = studio_command(f"--saved_model=a:{studio_exports['crn']},a:{studio_exports['pix2pix']}")
    assert twice.returncode != 0 and "unique" in twice.stderr
    no_examples = studio_command(f"--saved_model=crn:{studio_exports['crn']}", f"--examples={tmp_path / 'none'}")
    assert no_examples.returncode != 0 and "error: --examples" in no_examples.stderr
    assert time.time() - started < 30
    assert "127.0.0.1" in studio_command("--helpfull").stdout  # loopback unless --host says otherwise
    # An export that renders no label map is refused by name.
    photo = tmp_path / "photo" / "1"
    photo.mkdir(parents=True)
    (photo / "saved_model.pb").write_bytes(b"")
    info = json.load(open(os.path.join(studio_exports["pix2pix"], "tfsynth_export.json")))
    info["endpoints"] = [{"name": "serving_default", "inputs": [{"name": "image", "kind": "image",
                                                                 "source": "image", "optional": False}],
                          "outputs": ["image"], "scale": 1, "reference": None, "conditioned_on_labels": False}]
    (photo / "tfsynth_export.json").write_text(json.dumps(info))
    with pytest.raises(exports.StudioError, match="cyclegan.*no label -> image endpoint"):
        exports.load_models(f"cyclegan:{photo}")
