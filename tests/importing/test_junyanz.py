"""junyanz/pytorch-CycleGAN-and-pix2pix checkpoints, imported: pix2pix and CycleGAN compute what
the original computed, serve it, train on, and foreign or damaged files fail naming the tensor."""

import os
import shutil

import numpy as np
import pytest

from import_support import assert_matches_original, fixture, import_original, resume_for_one_step, serve
from tfsynth.importing.tensors import ImportFailure

# Each test names its family, so that --family=cyclegan does not run
# pix2pix's imports and the other way round.
PIX2PIX, CYCLEGAN = pytest.mark.family("pix2pix"), pytest.mark.family("cyclegan")


def nhwc(name, family):
    return np.load(fixture(family, name)).transpose(0, 2, 3, 1)  # the originals' goldens are NCHW


def golden_uint8(golden):
    """A [-1, 1] output as the export returns it (its 0..255 scale, rounded and clipped)."""
    from tfsynth.pixels import from_unit_range, to_uint8

    return to_uint8(from_unit_range(golden)).numpy().astype(np.int32)


def input_uint8(x):
    """The picture ToTensor + Normalize(0.5, 0.5) turned into ``x``: (u / 255 - 0.5) / 0.5 = x."""
    return np.round((x + 1) * 127.5).astype(np.uint8)


def only_entries(folder):
    return sorted(os.listdir(folder))


def write_pictures(folder, height, width, count=2):
    """``count`` random PNG pictures in ``folder`` (the split's parent is the source root)."""
    from PIL import Image

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for index in range(count):
        picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(picture).save(os.path.join(folder, f"{index}.png"))
    return str(os.path.dirname(folder))


# ------------------------------------------------------------------------------------ pix2pix

@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    # The goldens are test.py --eval (running statistics); train_opt.txt cannot say so (--eval is
    # a test option), so the import is told, as a user would.
    model_dir = tmp_path_factory.mktemp("pix2pix") / "run"
    return model_dir, import_original("junyanz", fixture("pix2pix"), model_dir, "test_mode=eval", export=False)


@PIX2PIX
@pytest.mark.unit
def test_pix2pix_options_and_shapes_become_the_config(pix2pix_run):
    import json

    model_dir, _ = pix2pix_run
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"] == "pix2pix"
    hparams = config["hparams"]
    assert {key: hparams[key] for key in ("generator", "base_filters", "discriminator", "discriminator_layers",
                                          "discriminator_filters", "norm", "dropout", "dropout_placement",
                                          "gan_mode", "lambda_l1", "crop_size", "load_size", "label_input",
                                          "test_mode")} == {
        "generator": "unet_128", "base_filters": 8, "discriminator": "basic", "discriminator_layers": 3,
        "discriminator_filters": 8, "norm": "batch", "dropout": 0.5, "dropout_placement": "pytorch",
        "gan_mode": "vanilla", "lambda_l1": 100.0, "crop_size": 128, "load_size": 128, "label_input": "image",
        "test_mode": "eval"}
    assert "latest_net_D.pth" in config["imported"]["source"]


@PIX2PIX
@pytest.mark.unit
def test_pix2pix_networks_compute_the_originals_outputs(pix2pix_run):
    import tensorflow as tf

    from tfsynth import run_dir

    model_dir, _ = pix2pix_run
    model, name = run_dir.load_model(str(model_dir), purpose="networks")
    x = nhwc("input_A.npy", "pix2pix")
    fake = model.networks["generator"]([tf.constant(x), tf.zeros([2], tf.int64)], training=False).numpy()
    golden = nhwc("G_out_eval.npy", "pix2pix")
    assert_matches_original(fake, golden, "pix2pix G (eval mode)")
    logits = model.networks["discriminator"](tf.concat([x, golden], axis=-1), training=False).numpy()
    assert_matches_original(logits, nhwc("D_out_eval.npy", "pix2pix"), "pix2pix D(input, G(input)) (eval mode)")


@PIX2PIX
@pytest.mark.unit
def test_pix2pix_default_test_mode_is_the_originals_per_image_batch_norm(tmp_path):
    """Without --eval on record, tfsynth's test_mode=paper: batch norm on the image's own statistics,
    the original test.py's default but for its dropout (the diagnostic golden)."""
    import tensorflow as tf

    original, model = read_and_fill(copy_files(tmp_path / "ckpt", *[
        (fixture("pix2pix", name), name) for name in ("latest_net_G.pth", "train_opt.txt")]))
    assert "test_mode" not in original.hparams and model.config.test_mode == "paper"
    x = nhwc("input_A.npy", "pix2pix")
    fake = model.generator([tf.constant(x), tf.zeros([2], tf.int64)], training=False).numpy()
    assert_matches_original(fake, nhwc("G_out_bnbatchstats_nodropout.npy", "pix2pix"), "pix2pix G (per-image BN)")


@PIX2PIX
@pytest.mark.slow
def test_pix2pix_export_serves_the_originals_output(tmp_path):
    export = import_original("junyanz", fixture("pix2pix"), tmp_path / "run", "test_mode=eval")
    x = nhwc("input_A.npy", "pix2pix")
    served = serve(export, "translate", image=input_uint8(x))["image"].astype(np.int32)
    assert np.abs(served - golden_uint8(nhwc("G_out_eval.npy", "pix2pix"))).max() <= 1


@PIX2PIX
@pytest.mark.slow
def test_pix2pix_import_trains_on(pix2pix_run, tmp_path):
    """On photo -> photo pairs at the original's 128x128 (the imported hparams, unchanged)."""
    from tfsynth.data import convert, sources

    model_dir, _ = pix2pix_run
    listed = {"train": sources.SOURCES["pix2pix_ab"].list_split(write_pictures(tmp_path / "ab" / "train", 128, 256),
                                                                "train", None, direction="AtoB")}
    convert.convert_dataset(listed, str(tmp_path / "data"), format_name="pix2pix_ab", source=str(tmp_path / "ab"),
                            label_space=None, num_workers=1, extra_info={"direction": "AtoB"},
                            log=lambda line: None)
    resume_for_one_step(model_dir, f"--train_data={tmp_path / 'data'}", "--noexport")
    assert os.path.exists(os.path.join(model_dir, "checkpoints", "ckpt-1.index"))


# ----------------------------------------------------------------------------------- CycleGAN

@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("cyclegan") / "run"
    return model_dir, import_original("junyanz", fixture("cyclegan"), model_dir, export=False)


@CYCLEGAN
@pytest.mark.unit
def test_cyclegan_networks_compute_the_originals_outputs(cyclegan_run):
    from tfsynth import run_dir

    model_dir, _ = cyclegan_run
    model, name = run_dir.load_model(str(model_dir), purpose="networks")
    assert name == "cyclegan" and model.config.generator == "resnet_6blocks"
    assert (model.config.base_filters, model.config.discriminator_filters, model.config.pool_size) == (8, 8, 50)
    real_a, real_b = nhwc("input_A.npy", "cyclegan"), nhwc("input_B.npy", "cyclegan")
    for network, images, golden in (("G_A", real_a, "G_A_out"), ("G_B", real_b, "G_B_out"),
                                    ("D_A", real_b, "D_A_out"), ("D_B", real_a, "D_B_out")):
        output = model.networks[network](images, training=False).numpy()
        assert_matches_original(output, nhwc(f"{golden}.npy", "cyclegan"), f"CycleGAN {network}")


@CYCLEGAN
@pytest.mark.slow
def test_cyclegan_export_serves_both_directions(tmp_path):
    export = import_original("junyanz", fixture("cyclegan"), tmp_path / "run")
    for signature, images, golden in (("a_to_b", "input_A.npy", "G_A_out.npy"),
                                      ("b_to_a", "input_B.npy", "G_B_out.npy")):
        served = serve(export, signature, image=input_uint8(nhwc(images, "cyclegan")))["image"].astype(np.int32)
        assert np.abs(served - golden_uint8(nhwc(golden, "cyclegan"))).max() <= 1, signature


@CYCLEGAN
@pytest.mark.slow
def test_cyclegan_import_trains_on(cyclegan_run, tmp_path):
    """On two unpaired 64x64 image folders (trainA, trainB), the imported hparams unchanged."""
    from tfsynth.data import convert, sources

    model_dir, _ = cyclegan_run
    listed = {split: sources.SOURCES["image_folder"].list_split(write_pictures(tmp_path / "src" / split, 64, 64),
                                                                split, None)
              for split in ("trainA", "trainB")}
    convert.convert_dataset(listed, str(tmp_path / "data"), format_name="image_folder",
                            source=str(tmp_path / "src"), label_space=None, num_workers=1, log=lambda line: None)
    losses = resume_for_one_step(model_dir, f"--train_data={tmp_path / 'data'}", "--noexport")
    assert {"cycle_a", "idt_a", "D/total"} <= set(losses)


# ------------------------------------------------------------------------------------ hostile

def copy_files(folder, *pairs):
    os.makedirs(folder, exist_ok=True)
    for source, name in pairs:
        shutil.copyfile(source, os.path.join(folder, name))
    return str(folder)


def assert_fails_leaving_nothing(path, tmp_path, pattern, *hparams):
    with pytest.raises(ImportFailure, match=pattern):
        import_original("junyanz", path, tmp_path / "run", *hparams)
    assert not os.path.exists(tmp_path / "run")
    assert not [name for name in os.listdir(tmp_path) if "import" in name]


@PIX2PIX
@pytest.mark.unit
def test_a_pix2pix_unet_saved_as_cyclegan_generators_is_refused(tmp_path):
    unet = fixture("pix2pix", "latest_net_G.pth")
    folder = copy_files(tmp_path / "ckpt", (unet, "latest_net_G_A.pth"), (unet, "latest_net_G_B.pth"))
    assert_fails_leaving_nothing(folder, tmp_path,
                                 r"latest_net_G_A\.pth: a U-Net generator .*'model\.model\.0\.weight'")


@CYCLEGAN
@pytest.mark.unit
def test_a_cyclegan_generator_where_pix2pix_expects_its_g_is_refused(tmp_path):
    resnet = fixture("cyclegan", "latest_net_G_A.pth")
    path = copy_files(tmp_path / "ckpt", (resnet, "latest_net_G.pth"))
    assert_fails_leaving_nothing(os.path.join(path, "latest_net_G.pth"), tmp_path,
                                 r"latest_net_G\.pth: a ResNet generator .*'model\.model\.0\.weight'")


def write_state_dict(path, arrays):
    """A zip-format .pth as torch.save writes a state dict, written without PyTorch (the pickling
    stand-ins of tests/test_torch_files.py)."""
    import collections

    from test_torch_files import Storage, Tensor, write_checkpoint

    state = collections.OrderedDict()
    for key, (name, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array)
        storage = Storage(str(key), {"float32": "FloatStorage", "int64": "LongStorage"}[array.dtype.name],
                          array.reshape(-1))
        state[name] = Tensor(storage, 0, array.shape, [stride // array.itemsize for stride in array.strides])
    return write_checkpoint(path, state)


def rewritten_pix2pix(folder, network, change):
    """The pix2pix fixture folder with ``latest_net_<network>.pth`` rewritten after ``change(arrays)``."""
    from tfsynth.importing.torch_files import read_state_dict

    copy_files(folder, *[(fixture("pix2pix", name), name)
                         for name in ("latest_net_G.pth", "latest_net_D.pth", "train_opt.txt")])
    path = os.path.join(folder, f"latest_net_{network}.pth")
    arrays = read_state_dict(path)
    change(arrays)
    write_state_dict(path, arrays)
    return str(folder)


@PIX2PIX
@pytest.mark.unit
def test_a_reshaped_tensor_is_named_with_both_shapes(tmp_path):
    target = "model.model.1.model.3.model.1.weight"  # e3's kernel, cut to 4 output channels

    def cut(arrays):
        arrays[target] = arrays[target][:4]

    folder = rewritten_pix2pix(tmp_path / "ckpt", "G", cut)
    assert_fails_leaving_nothing(folder, tmp_path,
                                 rf"latest_net_G\.pth: tensor '{target}' has shape \(4, 16, 4, 4\), layer e3 ")


@PIX2PIX
@pytest.mark.unit
def test_a_missing_tensor_and_a_contradicting_option_are_named(tmp_path):
    gone = "model.6.running_var"
    folder = rewritten_pix2pix(tmp_path / "ckpt", "D", lambda arrays: arrays.pop(gone))
    assert_fails_leaving_nothing(folder, tmp_path, rf"latest_net_D\.pth: tensor '{gone}' is missing")
    with open(os.path.join(folder, "train_opt.txt")) as f:
        options = f.read().replace("ngf: 8 ", "ngf: 64")
    with open(os.path.join(folder, "train_opt.txt"), "w") as f:
        f.write(options)
    assert_fails_leaving_nothing(folder, tmp_path,
                                 r"train_opt.txt says ngf=64, but .*latest_net_G\.pth holds ngf=8")


@PIX2PIX
@pytest.mark.unit
def test_a_folder_without_generator_and_a_discriminator_file_are_refused(tmp_path):
    folder = copy_files(tmp_path / "ckpt", (fixture("pix2pix", "latest_net_D.pth"), "latest_net_D.pth"))
    assert_fails_leaving_nothing(folder, tmp_path, r"no <epoch>_net_G\.pth")
    assert_fails_leaving_nothing(os.path.join(folder, "latest_net_D.pth"), tmp_path,
                                 "a discriminator; give the generator")
    assert only_entries(folder) == ["latest_net_D.pth"]


# ------------------------------------------------------------------- files, epochs and options

@PIX2PIX
@pytest.mark.unit
def test_latest_then_the_highest_epoch_and_a_single_generator_file(tmp_path, capsys):
    from tfsynth.importing import formats

    g, d = fixture("pix2pix", "latest_net_G.pth"), fixture("pix2pix", "latest_net_D.pth")
    folder = copy_files(tmp_path / "ckpt", (g, "5_net_G.pth"), (d, "5_net_D.pth"), (g, "10_net_G.pth"),
                        (g, "iter_900_net_G.pth"), (fixture("pix2pix", "train_opt.txt"), "train_opt.txt"))
    original = formats.read("junyanz", folder)  # no latest: epoch 10 (which has no D)
    assert "10_net_G.pth" in original.source and "5_net_D.pth" not in original.source
    assert "no 10_net_D.pth: D starts fresh" in original.source
    assert "D starts fresh" in capsys.readouterr().out
    assert original.hparams["crop_size"] == 128 and original.hparams["discriminator_filters"] == 8  # options
    original = formats.read("junyanz", os.path.join(folder, "5_net_G.pth"))  # a file: its epoch's D
    assert "5_net_D.pth" in original.source and "fresh" not in original.source
    original = formats.read("junyanz", os.path.join(folder, "iter_900_net_G.pth"))
    assert original.iteration == 900
    copy_files(folder, (g, "latest_net_G.pth"))
    assert "latest_net_G.pth" in formats.read("junyanz", folder).source


@CYCLEGAN
@pytest.mark.unit
def test_cyclegan_needs_both_generators(tmp_path):
    from tfsynth.importing import formats

    folder = copy_files(tmp_path / "ckpt", (fixture("cyclegan", "latest_net_G_A.pth"), "latest_net_G_A.pth"))
    with pytest.raises(ImportFailure, match=r"latest_net_G_B\.pth: missing"):
        formats.read("junyanz", folder)
    copy_files(folder, (fixture("cyclegan", "latest_net_G_B.pth"), "latest_net_G_B.pth"))
    original = formats.read("junyanz", os.path.join(folder, "latest_net_G_B.pth"))
    assert original.model == "cyclegan" and original.hparams["generator"] == "resnet_6blocks"
    assert "D_A starts fresh" in original.source and "D_B starts fresh" in original.source
    assert "no train_opt.txt" in original.source


# --------------------------------------------------------------- variants the fixtures do not cover
# State dicts laid out as the original's modules name them (networks.py's UnetGenerator,
# ResnetGenerator, NLayerDiscriminator, PixelDiscriminator), random values.

class StateDict(dict):
    def __init__(self, norm, seed=0):
        super().__init__()
        self.norm, self.rng = norm, np.random.default_rng(seed)

    def tensor(self, name, *shape):
        self[name] = self.rng.normal(size=shape).astype(np.float32)

    def conv(self, prefix, out, inp, k, bias=None, transposed=False):
        self.tensor(f"{prefix}weight", *((inp, out) if transposed else (out, inp)), k, k)
        if self.norm == "instance" if bias is None else bias:
            self.tensor(f"{prefix}bias", out)

    def bn(self, prefix, channels):
        if self.norm == "batch":
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                self.tensor(f"{prefix}{leaf}", channels)
            self[f"{prefix}num_batches_tracked"] = np.array(7, np.int64)


def unet_state(levels, ngf, norm, input_nc=3, output_nc=3):
    from tfsynth.importing.junyanz import _unet_prefix

    state, widths = StateDict(norm), [ngf * min(2**level, 8) for level in range(levels)]
    for level in range(levels):
        p, inner = _unet_prefix(level), widths[level]
        if level == 0:
            state.conv(f"{p}0.", inner, input_nc, 4)
            state.conv(f"{p}3.", output_nc, 2 * inner, 4, bias=True, transposed=True)
        elif level == levels - 1:
            state.conv(f"{p}1.", inner, widths[level - 1], 4)
            state.conv(f"{p}3.", widths[level - 1], inner, 4, transposed=True)
            state.bn(f"{p}4.", widths[level - 1])
        else:
            state.conv(f"{p}1.", inner, widths[level - 1], 4)
            state.bn(f"{p}2.", inner)
            state.conv(f"{p}5.", widths[level - 1], 2 * inner, 4, transposed=True)
            state.bn(f"{p}6.", widths[level - 1])
    return state


def resnet_state(blocks, ngf, norm="instance", dropout=False):
    state = StateDict(norm)
    state.conv("model.1.", ngf, 3, 7)
    state.bn("model.2.", ngf)
    state.conv("model.4.", 2 * ngf, ngf, 3)
    state.bn("model.5.", 2 * ngf)
    state.conv("model.7.", 4 * ngf, 2 * ngf, 3)
    state.bn("model.8.", 4 * ngf)
    second = 6 if dropout else 5
    for block in range(blocks):
        state.conv(f"model.{10 + block}.conv_block.1.", 4 * ngf, 4 * ngf, 3)
        state.bn(f"model.{10 + block}.conv_block.2.", 4 * ngf)
        state.conv(f"model.{10 + block}.conv_block.{second}.", 4 * ngf, 4 * ngf, 3)
        state.bn(f"model.{10 + block}.conv_block.{second + 1}.", 4 * ngf)
    state.conv(f"model.{10 + blocks}.", 2 * ngf, 4 * ngf, 3, transposed=True)
    state.bn(f"model.{11 + blocks}.", 2 * ngf)
    state.conv(f"model.{13 + blocks}.", ngf, 2 * ngf, 3, transposed=True)
    state.bn(f"model.{14 + blocks}.", ngf)
    state.conv(f"model.{17 + blocks}.", 3, ngf, 7, bias=True)
    return state


def patch_state(layers, ndf, input_nc, norm):
    state, previous = StateDict(norm, seed=1), ndf
    state.conv("model.0.", ndf, input_nc, 4, bias=True)
    for index in range(1, layers + 1):
        width = ndf * min(2**index, 8)
        state.conv(f"model.{3 * index - 1}.", width, previous, 4)
        state.bn(f"model.{3 * index}.", width)
        previous = width
    state.conv(f"model.{3 * layers + 2}.", 1, previous, 4, bias=True)
    return state


def pixel_state(ndf, input_nc, norm):
    state = StateDict(norm, seed=2)
    state.conv("net.0.", ndf, input_nc, 1, bias=True)
    state.conv("net.2.", 2 * ndf, ndf, 1)
    state.bn("net.3.", 2 * ndf)
    state.conv("net.5.", 1, 2 * ndf, 1)  # bias=use_bias in the original, unlike the PatchGAN's logits
    return state


def write_checkpoints(folder, options="", **networks):
    os.makedirs(folder, exist_ok=True)
    for network, state in networks.items():
        write_state_dict(os.path.join(folder, f"latest_net_{network}.pth"), state)
    if options:
        with open(os.path.join(folder, "train_opt.txt"), "w") as f:
            f.write("----------------- Options ---------------\n")
            for line in options.split(","):
                name, value = line.split("=")
                f.write(f"{name:>25}: {value:<30}\n")
            f.write("----------------- End -------------------\n")
    return str(folder)


def read_and_fill(folder):
    """The Original read from ``folder`` and a model of its family built from its hparams and filled."""
    from tfsynth import config as config_lib
    from tfsynth import registry, training
    from tfsynth.import_weights import _hparam_text
    from tfsynth.importing import formats

    original = formats.read("junyanz", folder)
    spec = registry.get(original.model)
    config = config_lib.build_config(spec.load().config_class,
                                     {key: _hparam_text(value) for key, value in original.hparams.items()})
    model = training.build_model(spec, config)
    original.set_weights(model)
    return original, model


@PIX2PIX
@pytest.mark.unit
def test_pix2pix_variants_import_every_tensor(tmp_path):
    from tfsynth.importing.tensors import conv_transpose_kernel

    # unet_256 with instance norm (biased convs, no norm state) and a PixelGAN.
    g = unet_state(8, 2, "instance")
    folder = write_checkpoints(tmp_path / "a", "netD=pixel,load_size=286,crop_size=256", G=g,
                               D=pixel_state(4, 6, "instance"))
    original, model = read_and_fill(folder)
    assert {key: original.hparams[key] for key in ("generator", "base_filters", "norm", "discriminator")} == {
        "generator": "unet_256", "base_filters": 2, "norm": "instance", "discriminator": "pixel"}
    innermost = "model.model.1" + ".model.3" * 6 + ".model.3."
    np.testing.assert_array_equal(model.generator.get_layer("d1").kernel.numpy(),
                                  conv_transpose_kernel(g[f"{innermost}weight"]))
    np.testing.assert_array_equal(model.generator.get_layer("e1").bias.numpy(), g["model.model.0.bias"])
    # unet_32 with batch norm, no dropout, a 4-layer PatchGAN.
    original, model = read_and_fill(write_checkpoints(
        tmp_path / "b", "no_dropout=True,netD=n_layers,n_layers_D=4,load_size=32,crop_size=32",
        G=unet_state(5, 2, "batch"), D=patch_state(4, 2, 6, "batch")))
    assert (original.hparams["generator"], original.hparams["dropout"]) == ("unet_32", 0.0)
    assert (model.config.discriminator, model.config.discriminator_layers) == ("n_layers", 4)
    # A PixelGAN with batch norm has no logits bias in the original: zero here.
    d = pixel_state(4, 6, "batch")
    _, model = read_and_fill(write_checkpoints(tmp_path / "c", "netD=pixel,load_size=32,crop_size=32",
                                               G=unet_state(5, 2, "batch"), D=d))
    assert "net.5.bias" not in d and not model.discriminator.get_layer("logits").bias.numpy().any()


@CYCLEGAN
@pytest.mark.unit
def test_cyclegan_variants_import_every_tensor(tmp_path):
    g = resnet_state(9, 2)
    original, model = read_and_fill(write_checkpoints(tmp_path / "a", G_A=g, G_B=resnet_state(9, 2),
                                                      D_A=patch_state(2, 2, 3, "instance"),
                                                      D_B=patch_state(2, 2, 3, "instance")))
    assert (model.config.generator, model.config.discriminator_layers) == ("resnet_9blocks", 2)
    np.testing.assert_array_equal(model.G_A.get_layer("res9_conv2").bias.numpy(), g["model.18.conv_block.5.bias"])


@pytest.mark.parametrize("networks, pattern", [
    pytest.param(lambda: {"G_A": resnet_state(6, 2, "batch"), "G_B": resnet_state(6, 2, "batch")},
                 r"latest_net_G_A\.pth: norm=batch .*CycleGAN supports norm=instance", marks=CYCLEGAN,
                 id="cyclegan-batch-norm"),
    pytest.param(lambda: {"G_A": resnet_state(6, 2, dropout=True), "G_B": resnet_state(6, 2, dropout=True)},
                 r"latest_net_G_A\.pth: ResNet blocks with Dropout", marks=CYCLEGAN, id="cyclegan-dropout"),
    pytest.param(lambda: {"G_A": resnet_state(6, 2), "G_B": resnet_state(6, 2),
                          "D_A": pixel_state(2, 3, "instance")},
                 r"latest_net_D_A\.pth: a PixelGAN discriminator", marks=CYCLEGAN, id="cyclegan-pixelgan"),
    pytest.param(lambda: {"G": resnet_state(9, 2)}, r"latest_net_G\.pth: a ResNet generator", marks=PIX2PIX,
                 id="pix2pix-resnet"),
    pytest.param(lambda: {"G": unet_state(7, 2, "batch", input_nc=1)},
                 r"latest_net_G\.pth: input_nc=1, output_nc=3", marks=PIX2PIX, id="pix2pix-grey-input"),
    pytest.param(lambda: {"G": unet_state(7, 2, "none")}, r"latest_net_G\.pth: norm=none", marks=PIX2PIX,
                 id="pix2pix-no-norm"),
])
@pytest.mark.unit
def test_variants_tfsynth_lacks_are_one_line_naming_them(tmp_path, networks, pattern):
    from tfsynth.importing import formats

    with pytest.raises(ImportFailure, match=pattern) as error:
        formats.read("junyanz", write_checkpoints(tmp_path / "ckpt", **networks()))
    assert "\n" not in str(error.value)
