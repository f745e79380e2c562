"""The real commands end to end: train, resume after kill -9, TensorBoard, export, infer, bench."""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli_support import SMOKE_FLAGS, cli_env, run_module
from family_support import smoke_flagfile

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One tiny CRN run shared by the tests that only read its outputs (steps 2-3 profiled, and
    oneDNN's verbose log in its output)."""
    model_dir = str(tmp_path_factory.mktemp("run") / "crn")
    return model_dir, run_module(cache_dir, "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}",
                                 "--profile_steps=2,3", env={"ONEDNN_VERBOSE": "1", "ONEDNN_VERBOSE_TIMESTAMP": "1"})


def test_profile_steps_leave_a_trace_for_tensorboards_profile_tab(trained):
    model_dir, result = trained
    traces = glob.glob(os.path.join(model_dir, "logs", "plugins", "profile", "*", "*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 10_000
    assert f"profiled steps 2-3: tensorboard --logdir={model_dir}/logs" in result.stdout


def test_profiling_sums_the_trace_up_by_kind_of_work(trained, cache_dir, tmp_path):
    model_dir, training = trained
    onednn_log = tmp_path / "train.out"
    onednn_log.write_text(training.stdout)
    result = run_module(cache_dir, "tfsynth.profiling", f"--logdir={model_dir}/logs", "--top=3",
                        f"--onednn_log={onednn_log}")
    shares = dict(re.findall(r"^  (\S.*?)\s+(\d+\.\d) %", result.stdout, re.MULTILINE))
    assert re.search(r"^  steps +2 \(step 2 to 3\), median \d+\.\d+ s$", result.stdout, re.MULTILINE), result.stdout
    assert float(shares["computing"]) > 50
    assert abs(sum(float(shares[name]) for name in ("computing", "input pipeline", "host")) - 100) < 0.5
    assert float(shares["convolution, forward"]) > 0
    categories = [name for name in shares if name.startswith(("convolution", "idle", "optimizer",
                                                               "normalisation", "data", "elementwise", "matmul"))]
    assert abs(sum(float(shares[name]) for name in categories) - 100) < 0.5, result.stdout
    # Lined up by time with the trace: the log holds all four steps, the export and the samples.
    onednn = {name: share for name, share in shares.items() if name.startswith("oneDNN")}
    assert float(onednn["oneDNN convolution, filter gradient"]) > 0 and "oneDNN reorder (a layout or type conversion)" in onednn
    assert abs(sum(float(share) for share in onednn.values()) - 100) < 0.5

    result = run_module(cache_dir, "tfsynth.profiling", f"--logdir={tmp_path}", check=False)
    assert result.returncode != 0 and f"error: --logdir: no profiler trace under {tmp_path}" in result.stderr


def test_training_writes_config_checkpoints_samples_and_export(trained):
    model_dir, result = trained
    assert "generator" in result.stdout and "parameters" in result.stdout
    assert "step 4/4" in result.stdout
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"] == "crn"
    assert config["hparams"]["image_size"] == [32, 64] and config["hparams"]["num_outputs"] == 3
    assert config["data"]["label_space"] == "cityscapes35"
    samples = sorted(os.listdir(os.path.join(model_dir, "samples")))
    assert samples == ["samples_00000002.png", "samples_00000004.png"]
    grid = np.asarray(Image.open(os.path.join(model_dir, "samples", samples[-1])))
    # num_samples=2 rows; label | real | 3 outputs columns
    assert grid.shape == (2 * 32, 5 * 64, 3)
    assert os.path.exists(os.path.join(model_dir, "export", "1", "saved_model.pb"))


def test_tensorboard_has_every_loss_term_learning_rate_and_grids(trained):
    from tensorboard.backend.event_processing import event_accumulator

    model_dir, _ = trained
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(model_dir, "logs", "train"), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["tensors"])
    expected = {f"loss/p{i}" for i in range(6)} | {"loss/total", "learning_rate/G", "samples"}
    assert expected <= tags, tags
    total = accumulator.Tensors("loss/total")
    assert [event.step for event in total] == [1, 2, 3, 4]
    assert all(np.isfinite(float(np.asarray(tf_event_value(e)))) for e in total)
    rates = [float(np.asarray(tf_event_value(e))) for e in accumulator.Tensors("learning_rate/G")]
    assert rates == pytest.approx([1e-4] * 4)


def tf_event_value(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def test_export_reloads_in_fresh_process_equal_to_eager_generator(trained, tmp_path, cache_dir):
    import tensorflow as tf

    from tfsynth import run_dir

    model_dir, _ = trained
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 34, size=(2, 64, 128), dtype=np.uint8)  # another size than training
    np.save(tmp_path / "labels.npy", labels)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['serving_default'](label=tf.constant(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], out['image'].numpy()); np.save(sys.argv[4], out['images'].numpy())\n"
        "png = tf.io.encode_png(tf.constant(np.load(sys.argv[2])[0][..., None]))\n"
        "res = m.signatures['predict_png'](label_png_bytes=tf.reshape(png, [1]))['image_png_bytes']\n"
        "np.save(sys.argv[5], tf.io.decode_png(res[0]).numpy())\n")
    subprocess.run([sys.executable, "-c", script, os.path.join(model_dir, "export", "1"),
                    str(tmp_path / "labels.npy"), str(tmp_path / "image.npy"), str(tmp_path / "images.npy"),
                    str(tmp_path / "png.npy")], check=True, env=cli_env(cache_dir), timeout=300)
    model, _ = run_dir.load_model(model_dir)
    eager = model.generate(tf.constant(labels)).numpy()
    expected = np.clip(np.round(eager), 0, 255).astype(np.uint8)
    images = np.load(tmp_path / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (2, 3, 64, 128, 3)
    # Exported and eager graphs may fuse ops differently: allow one grey level.
    assert np.abs(images.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(np.load(tmp_path / "image.npy"), images[:, 0])
    np.testing.assert_array_equal(np.load(tmp_path / "png.npy"), images[0, 0])


def test_export_signature_dtypes_and_invalid_input(trained):
    import tensorflow as tf

    model_dir, _ = trained
    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    serving = loaded.signatures["serving_default"]
    (spec,) = serving.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None] and spec.name == "label"
    assert {k: v.dtype for k, v in serving.structured_outputs.items()} == {"image": tf.uint8, "images": tf.uint8}
    png = loaded.signatures["predict_png"]
    assert png.structured_input_signature[1]["label_png_bytes"].dtype == tf.string
    assert png.structured_outputs["image_png_bytes"].dtype == tf.string
    with pytest.raises(tf.errors.InvalidArgumentError, match="label id outside"):
        serving(label=tf.fill([1, 32, 64], tf.constant(40, tf.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 8"):
        serving(label=tf.zeros([1, 36, 64], tf.uint8))


def test_saved_model_cli_lists_both_signatures(trained):
    model_dir, _ = trained
    shown = subprocess.run(["saved_model_cli", "show", "--all", "--dir", os.path.join(model_dir, "export", "1")],
                           capture_output=True, text=True, check=True, timeout=120).stdout
    assert "signature_def['serving_default']" in shown and "signature_def['predict_png']" in shown
    assert "DT_UINT8" in shown and "DT_STRING" in shown


def test_export_command_writes_next_version(trained, run_cli):
    model_dir, _ = trained
    result = run_cli("tfsynth.export", f"--model_dir={model_dir}")
    assert os.path.join(model_dir, "export", "2") in result.stdout
    assert os.path.exists(os.path.join(model_dir, "export", "2", "saved_model.pb"))


def test_infer_turns_label_pngs_into_photos(trained, run_cli, tmp_path):
    model_dir, _ = trained
    inputs = tmp_path / "labels"
    inputs.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 64), 7 + i, np.uint8)).save(inputs / f"l{i}.png")
    out = tmp_path / "out"
    run_cli("tfsynth.infer", f"--saved_model={model_dir}/export/1", f"--input={inputs}", f"--output={out}")
    assert sorted(os.listdir(out)) == ["l0.png", "l0_0.png", "l0_1.png", "l0_2.png",
                                       "l1.png", "l1_0.png", "l1_1.png", "l1_2.png"]
    assert np.asarray(Image.open(out / "l0.png")).shape == (32, 64, 3)


def test_infer_rejects_label_outside_space(trained, run_cli, tmp_path):
    model_dir, _ = trained
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((32, 64), 200, np.uint8)).save(bad)
    result = run_cli("tfsynth.infer", f"--saved_model={model_dir}/export/1", f"--input={bad}",
                     f"--output={tmp_path / 'o'}", check=False)
    assert result.returncode != 0 and "bad.png" in result.stderr and "200" in result.stderr


def test_the_start_up_lines_say_what_auto_precision_chose(tmp_path, run_cli):
    from tfsynth import distribute

    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path / 'm'}",
                     "--train_steps=2", "--export=false", "--mixed_precision=auto")
    assert "1 replica(s)" in result.stdout and "step 2/2" in result.stdout
    policy, reason = distribute.resolve_precision("auto")  # this machine's answer
    assert f"precision {policy} ({reason})" in result.stdout


def test_bfloat16_and_xla_steps_are_finite(tmp_path, run_cli):
    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path / 'm'}",
                     "--mixed_precision=bfloat16", "--jit_compile=true", "--train_steps=2", "--export=false")
    assert "XLA on, precision bfloat16" in result.stdout
    totals = [float(part.split("=")[1]) for line in result.stdout.splitlines() if line.startswith("step ")
              for part in line.split() if part.startswith("total=")]
    assert len(totals) == 2 and all(np.isfinite(totals))


def test_warm_start_copies_matching_modules(trained, tmp_path, run_cli):
    model_dir, _ = trained
    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path / 'big'}",
                     "--hparams=image_size=64x128,max_channels=16,num_outputs=1,loss=simple",
                     "--train_data=synthetic:64x128:4", f"--init_from={model_dir}", "--train_steps=1",
                     "--export=false")
    line = next(line for line in result.stdout.splitlines() if "warm start" in line)
    assert "g_64_conv1" in line and "g_32_output" not in line  # new module skipped, old one copied
    copied = int(line.split(": ")[1].split()[0])
    assert copied == 4 * 4  # modules 4..32 of the source, each 2 convs + 2 norms


def test_bench_reports_step_flops_and_pipeline(tmp_path, run_cli):
    out = tmp_path / "bench.json"
    # pix2pixHD: its endpoint's optional inputs (instance map, features) select the export's signature.
    result = run_cli("tfsynth.bench", f"--flagfile={smoke_flagfile('pix2pixhd')}", "--bench_steps=2", "--warmup_steps=1",
                     "--pipeline_batches=5", "--inference_sizes=64x128,128", f"--bench_out={out}")
    report = json.load(open(out))
    assert report["flops_per_step"] > 0 and report["train_step_s_median"] > 0
    assert 0 < report["fraction_of_peak"] and report["pipeline_images_per_s"] > 0
    assert report["peak_rss_mib"] > 100
    assert "GFLOP/s" in result.stdout
    # The training size and each asked-for output size.
    assert set(report["inference_latency_ms_by_size"]) == {"32x64", "64x128", "128x128"}
    assert all(ms > 0 for ms in report["inference_latency_ms_by_size"].values())
    assert "ms at 128x128" in result.stdout


def test_bench_compare_prints_the_ratio_of_two_reports(tmp_path, run_cli):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    json.dump({"model": "crn", "train_step_s_median": 2.0, "peak_rss_mib": 1000.0}, open(a, "w"))
    json.dump({"model": "crn", "train_step_s_median": 1.0, "peak_rss_mib": 1500.0}, open(b, "w"))
    result = run_cli("tfsynth.bench", f"--compare={a},{b}")
    assert "2 -> 1   B/A = 0.500 (better)" in result.stdout  # half the step time
    assert "1000 -> 1500   B/A = 1.500 (worse)" in result.stdout  # more memory
    refused = run_cli("tfsynth.bench", f"--compare={a},{tmp_path / 'missing.json'}", check=False)
    assert refused.returncode != 0 and "error: --compare:" in refused.stderr and "missing.json" in refused.stderr


def test_another_keras_backend_in_the_environment_does_not_reach_tfsynth(cache_dir):
    """KERAS_BACKEND=jax (set for other work; jax is not even installed here) is overridden."""
    result = run_module(cache_dir, "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", "--model_dir=/nonexistent",
                        "--dry_run", env={"KERAS_BACKEND": "jax"}, fresh=True, check=False)
    assert result.returncode == 0 and "generator" in result.stdout, result.stderr[-3000:]
