"""tfsynth.importing.torch_files reads the checkpoints that the original PyTorch code wrote (both the
zip and the pre-1.6 legacy format), with every tensor's values, and refuses hostile or broken files
with one-line TorchFileErrors."""

import collections
import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from tfsynth.importing.torch_files import TorchFileError, read_state_dict, read_torch_file

pytestmark = pytest.mark.unit

ORIGINALS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "originals")
LEGACY = os.path.join(ORIGINALS, "fast_neural_style", "legacy_running_stats.pth")
CYCLEGAN = os.path.join(ORIGINALS, "cyclegan", "latest_net_G_A.pth")
FASTGAN = os.path.join(ORIGINALS, "fastgan", "29.pth")
PIX2PIX = os.path.join(ORIGINALS, "pix2pix", "latest_net_G.pth")


def meta(family):
    with open(os.path.join(ORIGINALS, family, "meta.json")) as f:
        return json.load(f)


def shapes_of(arrays):
    return {name: list(array.shape) for name, array in arrays.items()}


# --- the original codebases' files -------------------------------------------------------------

@pytest.mark.parametrize("family, name", [("fast_neural_style", "legacy_running_stats.pth"),
                                          ("cyclegan", "latest_net_G_A.pth"), ("fastgan", "29.pth"),
                                          ("pix2pix", "latest_net_G.pth")])
def test_fixture_copies_are_the_originals_bytes(family, name):
    """The copies are unmodified: the sha256 the generator recorded matches."""
    with open(os.path.join(ORIGINALS, family, name), "rb") as f:
        data = f.read()
    recorded = meta(family)["files"][name]
    assert len(data) == recorded["bytes"]
    assert hashlib.sha256(data).hexdigest() == recorded["sha256"]


def test_cyclegan_zip_state_dict():
    state = read_state_dict(CYCLEGAN)
    expected = meta("cyclegan")["state_dict_shapes"]["latest_net_G_A.pth"]
    assert shapes_of(state) == expected
    assert list(state) == list(expected)  # the file's order
    assert {array.dtype for array in state.values()} == {np.dtype(np.float32)}
    for array in state.values():
        assert array.flags.c_contiguous and array.flags.owndata and array.flags.writeable
        assert np.isfinite(array).all()
    # Trained, not zero-filled: the init was normal(0, 0.02), the biases moved off 0.
    assert 0.005 < float(state["model.1.weight"].std()) < 0.1
    assert np.abs(state["model.1.bias"]).max() > 0


def test_pix2pix_zip_state_dict_with_int64_scalars():
    state = read_state_dict(PIX2PIX)
    assert shapes_of(state) == meta("pix2pix")["state_dict_shapes"]["latest_net_G.pth"]
    counters = [name for name in state if name.endswith("num_batches_tracked")]
    assert counters
    for name, array in state.items():
        if name in counters:
            assert array.dtype == np.int64 and array.shape == () and array.ndim == 0
            assert int(array) == meta("pix2pix")["training"]["iterations"]  # one BN update per step
        else:
            assert array.dtype == np.float32 and np.isfinite(array).all()
    assert (state["model.model.1.model.2.running_var"] > 0).all()


def test_fastgan_dict_of_state_dicts():
    info = meta("fastgan")
    raw = read_torch_file(FASTGAN)
    assert set(raw) == {"g", "d"}
    assert shapes_of(raw["g"]) == info["g_state_dict_shapes"]
    assert shapes_of(raw["d"]) == info["d_state_dict_shapes"]
    for part in ("g", "d"):
        for name, array in raw[part].items():
            expected = np.int64 if name.endswith("num_batches_tracked") else np.float32
            assert array.dtype == expected, name

    generator = read_state_dict(FASTGAN, key="g")
    assert list(generator) == [name[len("module."):] for name in info["g_state_dict_shapes"]]
    assert all(not name.startswith("module.") for name in generator)
    assert np.array_equal(generator["init.init.0.weight_orig"], raw["g"]["module.init.init.0.weight_orig"])
    discriminator = read_state_dict(FASTGAN, key="d")
    assert shapes_of(discriminator) == {name[len("module."):]: shape
                                        for name, shape in info["d_state_dict_shapes"].items()}


def test_fastgan_missing_key_names_the_keys_present():
    with pytest.raises(TorchFileError) as caught:
        read_state_dict(FASTGAN, key="g_ema")
    message = str(caught.value)
    assert message.startswith(FASTGAN + ": ") and "'g_ema'" in message
    assert "'g'" in message and "'d'" in message


def test_fastgan_without_key_asks_for_one():
    with pytest.raises(TorchFileError, match=r"'g', 'd'.*key="):
        read_state_dict(FASTGAN)


def test_legacy_format_state_dict():
    info = meta("fast_neural_style")
    state = read_state_dict(LEGACY)
    extra = info["legacy_extra_keys"]
    assert len(extra) == 30 and set(extra) <= set(state)
    # The 0.3-era order: each InstanceNorm's running statistics right after its bias.
    order = []
    for name in info["state_dict_shapes"]:
        order.append(name)
        module = name[: -len(".bias")]
        if name.endswith(".bias") and module + ".running_mean" in extra:
            order += [module + ".running_mean", module + ".running_var"]
    assert list(state) == order
    expected = dict(info["state_dict_shapes"])
    expected.update({name: info["state_dict_shapes"][name.rsplit(".", 1)[0] + ".weight"] for name in extra})
    assert shapes_of(state) == expected
    assert {array.dtype for array in state.values()} == {np.dtype(np.float32)}
    for name in extra:
        assert np.isfinite(state[name]).all(), name
        if name.endswith("running_var"):
            assert (state[name] > 0).all(), name
    assert np.abs(state["in1.running_mean"]).max() > 0  # running averages, not the zero init

    weight = state["conv1.conv2d.weight"]
    assert weight.shape == (32, 3, 9, 9) and weight.flags.owndata
    assert float(weight.std()) > 1e-3 and np.isfinite(weight).all()
    # Two storages never bleed into each other: the conv's bias is not the tail of its weight.
    assert not np.array_equal(state["conv1.conv2d.bias"], weight.reshape(-1)[-32:])


# --- hand-written checkpoints ------------------------------------------------------------------
# The pickles below are written by the standard pickle module from stand-ins whose reductions name
# the globals PyTorch's files name (torch is not installed, so the real ones cannot be pickled).

class Global:
    """Pickles as the GLOBAL ``module.name`` (see StandInPickler.save_global)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __reduce__(self):
        return self.name

    def __call__(self, *args):  # pickle wants a reduction's function to be callable; never called
        raise AssertionError("a stand-in")


class Storage:
    """A storage: pickled as a persistent id, its bytes go to the archive's data/<key>."""

    def __init__(self, key, type_name, values, module="torch"):
        self.key, self.type_name, self.values, self.module = key, type_name, values, module


class StorageView:
    """A legacy-format view: ``size`` elements of ``root`` from element ``offset``."""

    def __init__(self, key, root, offset, size):
        self.key, self.root, self.offset, self.size = key, root, offset, size


class Tensor:
    def __init__(self, storage, offset, size, stride, function="_rebuild_tensor_v2"):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.function = function

    def __reduce__(self):
        extra = (False, collections.OrderedDict()) if self.function == "_rebuild_tensor_v2" else ()
        return Global("torch._utils", self.function), self.args + extra


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return Global("torch._utils", "_rebuild_parameter"), (self.tensor, True, collections.OrderedDict())


class StandInPickler(pickle._Pickler):  # the pure-Python pickler: its save_global can be extended
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, StorageView):
            root = obj.root
            return ("storage", Global(root.module, root.type_name), root.key, "cuda:0", len(root.values),
                    (obj.key, obj.offset, obj.size))
        if isinstance(obj, Storage):
            fields = ("storage", Global(obj.module, obj.type_name), obj.key, "cpu", len(obj.values))
            return fields + (None,) if self.legacy else fields
        return None

    def save_global(self, obj, name=None):
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def storages_in(obj, found):
    if isinstance(obj, Storage):
        found[obj.key] = obj
    elif isinstance(obj, StorageView):
        found[obj.root.key] = obj.root
    elif isinstance(obj, Tensor):
        storages_in(obj.args[0], found)
    elif isinstance(obj, Parameter):
        storages_in(obj.tensor, found)
    elif isinstance(obj, dict):
        for value in obj.values():
            storages_in(value, found)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            storages_in(value, found)
    return found


def write_zip(path, data_pkl, records=(), folder="weird name-7"):
    """A zip checkpoint laid out as torch.save lays it out (any top folder name)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        archive.writestr(f"{folder}/byteorder", "little")
        for key, data in dict(records).items():
            archive.writestr(f"{folder}/data/{key}", data)
        archive.writestr(f"{folder}/version", "3\n")
    return str(path)


def write_checkpoint(path, obj):
    buffer = io.BytesIO()
    StandInPickler(buffer, protocol=2).dump(obj)
    storages = storages_in(obj, {})
    return write_zip(path, buffer.getvalue(),
                     {key: np.asarray(s.values).tobytes() for key, s in storages.items()})


def test_strided_views_and_element_types(tmp_path):
    floats = Storage("0", "FloatStorage", np.arange(20, dtype="<f4"))
    bf16_values = np.array([1.0, -2.5, 0.15625, 0.0], np.float32)
    bf16 = Storage("1", "BFloat16Storage", (bf16_values.view(np.uint32) >> 16).astype("<u2"))
    longs = Storage("2", "LongStorage", np.array([7, -3, 2**40], "<i8"))
    path = write_checkpoint(tmp_path / "strided.pth", collections.OrderedDict([
        ("transposed", Tensor(floats, 2, (3, 4), (1, 3))),  # a .t()-style view with an offset
        ("scalar", Tensor(floats, 19, (), ())),
        ("broadcast", Tensor(floats, 5, (2, 3), (0, 1))),  # an expand()-style zero stride
        ("old_rebuild", Tensor(floats, 0, (4,), (5,), function="_rebuild_tensor")),
        ("parameter", Parameter(Tensor(floats, 1, (2, 2), (2, 1)))),
        ("bfloat16", Tensor(bf16, 0, (2, 2), (1, 2))),
        ("long", Tensor(longs, 1, (2,), (1,))),
        ("empty", Tensor(longs, 0, (0, 3), (3, 1))),
    ]))
    state = read_state_dict(path)
    assert np.array_equal(state["transposed"], [[2 + i + 3 * j for j in range(4)] for i in range(3)])
    assert state["transposed"].flags.c_contiguous and state["transposed"].flags.owndata
    assert state["transposed"].dtype == np.float32
    assert state["scalar"].shape == () and float(state["scalar"]) == 19.0
    assert np.array_equal(state["broadcast"], [[5, 6, 7], [5, 6, 7]])
    assert np.array_equal(state["old_rebuild"], [0, 5, 10, 15])
    assert np.array_equal(state["parameter"], [[1, 2], [3, 4]])
    assert state["bfloat16"].dtype == np.float32
    assert np.array_equal(state["bfloat16"], bf16_values.reshape(2, 2).T)
    assert state["long"].dtype == np.int64 and state["long"].tolist() == [-3, 2**40]
    assert state["empty"].shape == (0, 3) and state["empty"].dtype == np.int64
    # Arrays own their memory: writing one changes no other.
    state["transposed"][0, 0] = -1
    assert float(state["scalar"]) == 19.0 and state["old_rebuild"][0] == 0


def write_legacy_checkpoint(path, obj):
    """The pre-1.6 layout: magic, protocol, system facts, the object, the keys, then the storages."""
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buffer, protocol=2)
    pickler = StandInPickler(buffer, protocol=2)
    pickler.legacy = True
    pickler.dump(obj)
    storages = storages_in(obj, {})
    pickle.dump(list(storages), buffer, protocol=2)
    for storage in storages.values():
        values = np.asarray(storage.values)
        buffer.write(np.int64(values.size).astype("<i8").tobytes() + values.tobytes())
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return str(path)


def test_legacy_storage_views_and_gpu_storages(tmp_path):
    root = Storage("140001", "FloatStorage", np.arange(12, dtype="<f4"), module="torch.cuda")
    view = StorageView("140002", root, 4, 6)  # elements 4..9 of the root
    halves = Storage("140003", "HalfStorage", np.array([0.5, -1.0, 65504.0], "<f2"))
    path = write_legacy_checkpoint(tmp_path / "old.pth", collections.OrderedDict([
        ("whole", Tensor(root, 0, (3, 4), (4, 1))),
        ("in_view", Tensor(view, 1, (2, 2), (1, 2))),
        ("half", Tensor(halves, 0, (3,), (1,))),
    ]))
    state = read_state_dict(path)
    assert np.array_equal(state["whole"], np.arange(12).reshape(3, 4))
    assert np.array_equal(state["in_view"], [[5, 7], [6, 8]])
    assert state["half"].dtype == np.float16 and state["half"].tolist() == [0.5, -1.0, 65504.0]
    overrun = write_legacy_checkpoint(tmp_path / "overrun_view.pth", {"w": Tensor(view, 3, (4,), (1,))})
    message = assert_one_line_error(overrun)
    assert "reaches element 6 of storage 140001 (the view from its element 4), which has 6" in message


def test_a_shared_storage_gives_independent_arrays(tmp_path):
    storage = Storage("0", "FloatStorage", np.arange(6, dtype="<f4"))
    path = write_checkpoint(tmp_path / "shared.pth", {"a": Tensor(storage, 0, (6,), (1,)),
                                                     "b": Tensor(storage, 3, (3,), (1,))})
    state = read_torch_file(path)
    assert np.array_equal(state["b"], [3, 4, 5])
    assert not np.shares_memory(state["a"], state["b"])


def test_a_view_outside_its_storage_is_refused(tmp_path):
    storage = Storage("0", "FloatStorage", np.arange(6, dtype="<f4"))
    path = write_checkpoint(tmp_path / "overrun.pth", {"w": Tensor(storage, 2, (2, 3), (3, 1))})
    with pytest.raises(TorchFileError, match=r"overrun\.pth: .*reaches element 7 of storage 0, which has 6"):
        read_torch_file(path)


def test_non_mappings_and_mixed_prefixes(tmp_path):
    storage = Storage("0", "FloatStorage", np.ones(2, "<f4"))
    listed = write_checkpoint(tmp_path / "list.pth", [Tensor(storage, 0, (2,), (1,))])
    with pytest.raises(TorchFileError, match=r"list\.pth: it holds a list of 1 items, not a mapping"):
        read_state_dict(listed)
    assert isinstance(read_torch_file(listed)[0], np.ndarray)
    mixed = write_checkpoint(tmp_path / "mixed.pth", {"module.a": Tensor(storage, 0, (1,), (1,)),
                                                      "b": Tensor(storage, 1, (1,), (1,))})
    assert list(read_state_dict(mixed)) == ["module.a", "b"]  # stripped only when every name has it


# --- hostile and broken files ------------------------------------------------------------------

def assert_one_line_error(path, reader=read_torch_file):
    with pytest.raises(TorchFileError) as caught:
        reader(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    assert os.path.basename(str(path)) in message
    return message


def test_truncated_zip(tmp_path):
    with open(CYCLEGAN, "rb") as f:
        data = f.read()
    path = tmp_path / "half.pth"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt zip archive" in assert_one_line_error(path)


@pytest.mark.parametrize("keep, reason", [(1200, "truncated: storage 2 needs 4608 bytes, 1200 present"),
                                          (None, "storage 2 is missing")])
def test_zip_with_a_short_or_missing_storage_record(tmp_path, keep, reason):
    with zipfile.ZipFile(CYCLEGAN) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    path = tmp_path / "short_record.pth"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            if name.endswith("/data/2"):  # model.4.weight: 16*8*3*3 float32 = 4608 bytes
                if keep is None:
                    continue
                data = data[:keep]
            archive.writestr(name, data)
    assert reason in assert_one_line_error(path)


@pytest.mark.parametrize("cut, reason", [("half", "truncated: storage"), (5000, "truncated")])
def test_truncated_legacy_file(tmp_path, cut, reason):
    with open(LEGACY, "rb") as f:
        data = f.read()
    path = tmp_path / "legacy_cut.pth"
    path.write_bytes(data[: len(data) // 2 if cut == "half" else cut])
    assert reason in assert_one_line_error(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)" in assert_one_line_error(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty file" in assert_one_line_error(tmp_path / "empty.pth")
    assert "no such file" in assert_one_line_error(tmp_path / "absent.pth")
    assert "no such file" in assert_one_line_error(tmp_path / "absent.pth", read_state_dict)


@pytest.mark.parametrize("container", ["zip", "plain pickle"])
def test_a_pickle_naming_os_system_runs_nothing(tmp_path, monkeypatch, container):
    marker = tmp_path / "pwned"
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command))
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode("ascii")
    path = tmp_path / "evil.pth"
    if container == "zip":
        write_zip(path, payload, folder="archive")
    else:
        path.write_bytes(payload)
    message = assert_one_line_error(path)
    assert "refuses to load 'os.system'" in message
    assert calls == [] and not marker.exists()


@pytest.mark.parametrize("global_line", [b"builtins\neval\n", b"torch\nload\n", b"numpy\nfrombuffer\n"])
def test_other_globals_are_refused_too(tmp_path, global_line):
    module, name = global_line.decode().split()
    path = write_zip(tmp_path / "other.pth", b"c" + global_line + b".")
    assert f"refuses to load '{module}.{name}'" in assert_one_line_error(path)


def test_a_pickle_cannot_modify_the_reader(tmp_path):
    # BUILD with (None, {name: value}) sets attributes with setattr: on a plain function it would
    # replace the __defaults__ that every later read uses.
    payload = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__(ts\x86b."
    path = write_zip(tmp_path / "build.pth", payload)
    assert "a pickle tried to change a reader object" in assert_one_line_error(path)
    assert len(read_state_dict(CYCLEGAN)) == 36  # and later reads are unaffected
