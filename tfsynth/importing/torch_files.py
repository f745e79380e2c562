"""Reads PyTorch checkpoints (``.pth`` / ``.pt`` files written by ``torch.save``) without PyTorch.

Why this exists
---------------
The models tfsynth ports were released, and are still trained by their users, as PyTorch
checkpoints. Importing one should not mean installing PyTorch, a build of several gigabytes that
tfsynth has no other use for, so this module decodes the file format itself with nothing but the
standard library and NumPy.

It is also the safe way to open a downloaded checkpoint. A ``.pth`` file is a pickle, and a plain
unpickle imports and calls whatever the file names: ``os.system`` as easily as a tensor
constructor. The unpickler here knows a short, fixed list of names (the tensor and parameter
rebuild functions, the storage types, the dtypes and ``collections.OrderedDict``), binds each to an
object of this module rather than to PyTorch's, and refuses any other name before anything is
looked up, so reading a file never runs code that the file chose.

What it reads
-------------
- The zip format that ``torch.save`` writes since PyTorch 1.6: ``<folder>/data.pkl`` (the folder
  name is whatever the writer chose) holds the pickled object, and each storage is the raw record
  ``<folder>/data/<key>``, in the byte order named by ``<folder>/byteorder`` (little if absent).
  Storages are typed by their class (``torch.FloatStorage``, ...) or, for dtypes without one, are
  untyped bytes that the tensor reads with a dtype of its own (``_rebuild_tensor_v3``).
- The legacy format written before 1.6 (and after it with ``_use_new_zipfile_serialization=False``):
  pickles one after another (a magic number, the protocol version 1001, a dict of system facts,
  the object, the list of storage keys), then per key an int64 element count and the raw bytes.
  Storage views of the old releases are honoured. Only files written on little-endian machines are
  read; the tar archives of PyTorch < 0.1.10 are not.

Tensors come back as NumPy arrays that own their memory, with the dtype, shape, strides and storage
offset of the original (shared storages and views are resolved; 0-d tensors are 0-d arrays).
bfloat16 has no NumPy type: bfloat16 tensors are widened, exactly, to float32 (a bfloat16 is the
upper half of a float32); a dtype stored as a value (``torch.float32``) comes back as the NumPy dtype
its tensors get. Where a storage was saved (``'cpu'``, ``'cuda:0'``, ...) is ignored.
Anything wrong with a file (missing, truncated, corrupt, not a checkpoint, naming a forbidden
global) raises :class:`TorchFileError`, a ``ValueError`` whose one-line message names the file.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["TorchFileError", "read_torch_file", "read_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_NOT_A_CHECKPOINT = "not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)"


class TorchFileError(ValueError):
    """A PyTorch checkpoint that cannot be read; the message is ``"<path>: <reason>"`` on one line."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        # One line, so that a log line or a CLI error says all of it.
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # the default would re-create it from the message alone, and fail
        return type(self), (self.path, self.reason)


class _Bad(Exception):
    """Raised inside the reader where the path is not known; read_torch_file adds it."""


class _ElementType:
    """One PyTorch element type: how it is stored in the file and what NumPy type it becomes."""

    __slots__ = ("name", "stored", "out")

    def __init__(self, name: str, stored: str, out: str | None = None):
        object.__setattr__(self, "name", name)  # the PyTorch spelling, for messages
        object.__setattr__(self, "stored", np.dtype(stored))  # little-endian layout in the file
        object.__setattr__(self, "out", np.dtype(out or stored).newbyteorder("="))

    def __setattr__(self, name, value):
        # A pickle's BUILD opcode sets attributes on whatever it is given; these objects are shared
        # by every read, so a file must not be able to change them.
        raise _Bad("a pickle tried to change a reader object")

    @property
    def itemsize(self) -> int:
        return self.stored.itemsize

    def decode(self, raw: memoryview, count: int, byteorder: str) -> np.ndarray:
        stored = self.stored.newbyteorder("<" if byteorder == "little" else ">")
        values = np.frombuffer(raw, dtype=stored, count=count)
        if self.name == "bfloat16":
            # bfloat16 is the high half of a float32, so widening is a shift, and exact.
            return (values.astype(np.uint32) << 16).view(np.float32)
        if values.dtype != self.out:
            values = values.astype(self.out)  # foreign byte order: a native copy
        return values

    def __repr__(self):
        return f"torch.{self.name}"


_FLOAT32 = _ElementType("float32", "<f4")
_FLOAT64 = _ElementType("float64", "<f8")
_FLOAT16 = _ElementType("float16", "<f2")
_BFLOAT16 = _ElementType("bfloat16", "<u2", "<f4")
_INT64 = _ElementType("int64", "<i8")
_INT32 = _ElementType("int32", "<i4")
_INT16 = _ElementType("int16", "<i2")
_INT8 = _ElementType("int8", "i1")
_UINT8 = _ElementType("uint8", "u1")
_BOOL = _ElementType("bool", "?")

# The storage classes a state dict's pickle names (``torch.FloatStorage``, ...). GPU checkpoints of
# the legacy format name ``torch.cuda.FloatStorage``: the bytes are the same.
_STORAGE_TYPES = {
    "FloatStorage": _FLOAT32, "DoubleStorage": _FLOAT64, "HalfStorage": _FLOAT16,
    "BFloat16Storage": _BFLOAT16, "LongStorage": _INT64, "IntStorage": _INT32,
    "ShortStorage": _INT16, "CharStorage": _INT8, "ByteStorage": _UINT8, "BoolStorage": _BOOL,
}
# dtype attributes (``torch.float32``): newer files name an untyped byte storage and give the
# tensor's dtype separately (``_rebuild_tensor_v3``), for dtypes that have no storage class.
_DTYPES = {
    "float32": _FLOAT32, "float": _FLOAT32, "float64": _FLOAT64, "double": _FLOAT64,
    "float16": _FLOAT16, "half": _FLOAT16, "bfloat16": _BFLOAT16,
    "int64": _INT64, "long": _INT64, "int32": _INT32, "int": _INT32, "int16": _INT16,
    "short": _INT16, "int8": _INT8, "uint8": _UINT8, "bool": _BOOL,
    "uint16": _ElementType("uint16", "<u2"), "uint32": _ElementType("uint32", "<u4"),
    "uint64": _ElementType("uint64", "<u8"),
}


class _StorageRef:
    """A storage named by a persistent id: ``numel`` elements of ``etype`` from element ``offset``
    of the bytes stored under ``key`` (the offset is non-zero only for legacy storage views)."""

    __slots__ = ("key", "etype", "offset", "numel")

    def __init__(self, key: str, etype: _ElementType, offset: int, numel: int):
        self.key, self.etype, self.offset, self.numel = key, etype, offset, numel


class _PendingTensor:
    """A tensor as the pickle describes it. Arrays are made only after the whole pickle is read,
    because the legacy format stores the bytes after the pickle that refers to them."""

    __slots__ = ("storage", "offset", "size", "stride", "etype")

    def __init__(self, storage, offset, size, stride, etype=None):
        if not isinstance(storage, _StorageRef):
            raise _Bad(f"a tensor is rebuilt from {_describe(storage)} instead of a storage")
        self.storage = storage
        self.offset = _index(offset, "storage offset")
        self.size = tuple(_index(n, "size") for n in _sequence(size, "size"))
        self.stride = tuple(_index(n, "stride") for n in _sequence(stride, "stride"))
        if len(self.size) != len(self.stride):
            raise _Bad(f"a tensor has size {self.size} but stride {self.stride}")
        self.etype = etype or storage.etype


def _index(value, what: str) -> int:
    if type(value) is not int or value < 0:  # bool is no index either
        raise _Bad(f"a tensor has {what} {value!r}, not a non-negative integer")
    return value


def _sequence(value, what: str):
    if not isinstance(value, (tuple, list)):
        raise _Bad(f"a tensor has {what} {_describe(value)}, not a tuple")
    return value


# Stand-ins for PyTorch's rebuild functions. The pickle calls them with its own arguments; all they
# do is record the description. Extra trailing arguments (metadata) carry nothing a NumPy array has.
def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       *_ignored):
    if not isinstance(dtype, _ElementType):
        raise _Bad(f"a tensor has dtype {_describe(dtype)}")
    return _PendingTensor(storage, storage_offset, size, stride, dtype)


def _rebuild_parameter(data, *_ignored):
    # A Parameter is its tensor plus requires_grad / hooks / Python state that arrays have no use for.
    if not isinstance(data, _PendingTensor):
        raise _Bad(f"a parameter is rebuilt from {_describe(data)} instead of a tensor")
    return data


class _Callable:
    """What the unpickler hands out for a rebuild function: a callable a pickle cannot modify (BUILD on
    a plain function could set its ``__defaults__`` for every later read)."""

    __slots__ = ("_function",)

    def __init__(self, function):
        object.__setattr__(self, "_function", function)

    def __call__(self, *args):
        return self._function(*args)

    def __setattr__(self, name, value):
        raise _Bad("a pickle tried to change a reader object")


_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): _Callable(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v3"): _Callable(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter),
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "UntypedStorage"): _UINT8,
    ("torch.storage", "UntypedStorage"): _UINT8,
}
_GLOBALS.update({("torch", name): etype for name, etype in _STORAGE_TYPES.items()})
_GLOBALS.update({("torch.cuda", name): etype for name, etype in _STORAGE_TYPES.items()})
_GLOBALS.update({("torch", name): etype for name, etype in _DTYPES.items()})


class _Unpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in ``_GLOBALS`` and hands persistent ids (the
    storages) to ``storage_for``; without one, a persistent id is an error."""

    def __init__(self, file, storage_for=None):
        # PyTorch reads with utf-8, which also decodes the byte strings of Python 2 era files.
        super().__init__(file, encoding="utf-8")
        self._storage_for = storage_for

    def find_class(self, module, name):
        try:
            return _GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _Bad(f"refuses to load '{module}.{name}': a checkpoint may only hold tensors, numbers, "
                       "strings and containers") from None

    def persistent_load(self, pid):
        if self._storage_for is None:
            raise _Bad(f"a storage reference {_describe(pid)} where none may be")
        if not isinstance(pid, tuple) or not pid:
            raise _Bad(f"a storage reference is {_describe(pid)}, not a tuple")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise _Bad("holds a whole pickled module (torch.save(model)), not tensors: "
                       "save model.state_dict() instead")
        if kind != "storage":
            raise _Bad(f"unknown kind of persistent id {kind!r}")
        return self._storage_for(pid[1:])


def _unpickle(file, storage_for=None):
    try:
        return _Unpickler(file, storage_for).load()
    except _Bad:
        raise
    except EOFError:
        raise _Bad("truncated: the pickle ends early") from None
    except RecursionError:
        raise _Bad("corrupt: the pickle nests too deeply") from None
    except Exception as err:  # noqa: BLE001 -- any failure of a damaged pickle is a damaged file
        raise _Bad(f"corrupt pickle ({type(err).__name__}: {err})") from err


def _storage_fields(fields, numel_at: int):
    """The (element type, key, element count) of a storage persistent id, checked."""
    if len(fields) <= numel_at:
        raise _Bad(f"a storage reference has {len(fields) + 1} fields, not {numel_at + 2}")
    etype, key, numel = fields[0], fields[1], fields[numel_at]
    if not isinstance(etype, _ElementType):
        raise _Bad(f"a storage reference names {_describe(etype)} as its type")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str):
        raise _Bad(f"a storage reference has key {_describe(key)}")
    if type(numel) is not int or numel < 0:
        raise _Bad(f"storage {key} has {numel!r} elements")
    return etype, key, numel


def _read_zip(file) -> object:
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            found = "no" if not pickles else f"{len(pickles)}"
            raise _Bad(f"a zip archive with {found} <folder>/data.pkl: not a PyTorch checkpoint")
        folder = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if folder + "byteorder" in names:
            byteorder = archive.read(folder + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise _Bad(f"unknown byte order {byteorder!r}")

        def storage_for(fields):
            # ('storage', type, key, location, numel): the count is of the type's elements.
            etype, key, numel = _storage_fields(fields, 3)
            return _StorageRef(key, etype, 0, numel)

        obj = _unpickle(archive.open(pickles[0]), storage_for)

        def read_record(key):
            try:
                return archive.read(f"{folder}data/{key}")
            except KeyError:
                raise _Bad(f"storage {key} is missing (no record {folder}data/{key})") from None

        return _materialise(obj, read_record, byteorder)


def _read_legacy(file, size: int) -> object:
    try:
        magic = _unpickle(file)
    except _Bad as err:
        if str(err).startswith("refuses"):
            raise  # a pickle naming a forbidden global: say so, whatever else the file is
        raise _Bad(_NOT_A_CHECKPOINT) from None
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise _Bad(_NOT_A_CHECKPOINT)
    protocol = _unpickle(file)
    if protocol != _LEGACY_PROTOCOL:
        raise _Bad(f"legacy format version {protocol!r}, not {_LEGACY_PROTOCOL}")
    sys_info = _unpickle(file)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise _Bad("written on a big-endian machine: not supported")

    used = {}  # key -> element type, to know the width of each stored element

    def storage_for(fields):
        # ('storage', type, root key, location, root numel, view) with view = None for a whole
        # storage, else (view key, element offset, element count) into the root storage.
        etype, key, numel = _storage_fields(fields, 3)
        if used.setdefault(key, etype).itemsize != etype.itemsize:
            raise _Bad(f"storage {key} is named with two element sizes")
        view = fields[4] if len(fields) > 4 else None
        if view is None:
            return _StorageRef(key, etype, 0, numel)
        if not isinstance(view, tuple) or len(view) != 3:
            raise _Bad(f"storage {key} has view {_describe(view)}")
        return _StorageRef(key, etype, _index(view[1], "view offset"), _index(view[2], "view size"))

    obj = _unpickle(file, storage_for)
    keys = _unpickle(file)
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise _Bad(f"the list of storage keys is {_describe(keys)}")
    records = {}
    for key in keys:
        if key not in used:
            raise _Bad(f"storage {key} is stored but nothing refers to it")
        head = file.read(8)
        if len(head) < 8:
            raise _Bad(f"truncated: the size of storage {key} is cut off")
        (count,) = struct.unpack("<q", head)
        if count < 0:
            raise _Bad(f"corrupt: storage {key} has {count} elements")
        needed = count * used[key].itemsize
        # Check against the file size before reading, so a corrupt count cannot ask for terabytes.
        present = min(needed, size - file.tell())
        if present < needed:
            raise _Bad(f"truncated: storage {key} needs {needed} bytes, {present} present")
        records[key] = file.read(needed)
    missing = sorted(set(used) - set(records))
    if missing:
        raise _Bad(f"storage {missing[0]} is referred to but not stored")
    return _materialise(obj, records.__getitem__, "little")


def _materialise(obj, read_record, byteorder: str):
    """``obj`` with every pending tensor (and bare storage) replaced by an array of its own."""
    records, storages, done = {}, {}, {}

    def storage_array(ref: _StorageRef, etype: _ElementType) -> np.ndarray:
        cache_key = (ref.key, ref.offset, ref.numel, ref.etype.name, etype.name)
        if cache_key not in storages:
            if ref.key not in records:
                records[ref.key] = memoryview(read_record(ref.key))
            raw = records[ref.key]
            start, stop = ref.offset * ref.etype.itemsize, (ref.offset + ref.numel) * ref.etype.itemsize
            if stop > len(raw):
                raise _Bad(f"truncated: {_storage_name(ref)} needs {stop} bytes, {len(raw)} present")
            storages[cache_key] = etype.decode(raw[start:stop], (stop - start) // etype.itemsize, byteorder)
        return storages[cache_key]

    def tensor_array(t: _PendingTensor) -> np.ndarray:
        flat = storage_array(t.storage, t.etype)
        if 0 in t.size:
            return np.zeros(t.size, dtype=flat.dtype)
        # The furthest element the view touches must lie inside the storage, or as_strided would
        # read whatever memory follows it.
        last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
        if last >= flat.size:
            raise _Bad(f"a tensor of size {t.size}, stride {t.stride} and offset {t.offset} reaches element "
                       f"{last} of {_storage_name(t.storage)}, which has {flat.size}")
        strides = tuple(s * flat.itemsize for s in t.stride)
        return as_strided(flat[t.offset:], shape=t.size, strides=strides, writeable=False).copy()

    def walk(value):
        # Tensors shared in the file stay shared (one array); containers are rebuilt in place, and
        # `done` also stops reference cycles, which a pickle can express. It keeps each original
        # alive next to its result, so that no id is reused while the walk runs.
        if id(value) in done:
            return done[id(value)][1]
        if isinstance(value, _PendingTensor):
            result = tensor_array(value)
        elif isinstance(value, _StorageRef):
            result = storage_array(value, value.etype).copy()
        elif isinstance(value, _ElementType):
            return value.out
        elif isinstance(value, dict):
            done[id(value)] = (value, value)
            for key in list(value):
                value[key] = walk(value[key])
            return value
        elif isinstance(value, list):
            done[id(value)] = (value, value)
            value[:] = [walk(item) for item in value]
            return value
        elif isinstance(value, tuple):
            done[id(value)] = (value, value)  # a cycle back into it keeps the original
            result = tuple(walk(item) for item in value)
        elif isinstance(value, (set, frozenset)):
            if any(isinstance(item, (_PendingTensor, _StorageRef)) for item in value):
                raise _Bad("a tensor inside a set")
            result = value
        else:
            return value
        done[id(value)] = (value, result)
        return result

    return walk(obj)


def _storage_name(ref: _StorageRef) -> str:
    return f"storage {ref.key}" + (f" (the view from its element {ref.offset})" if ref.offset else "")


def read_torch_file(path) -> object:
    """The object a ``torch.save`` file holds, every tensor an owning ``numpy.ndarray``.

    Containers keep their types (a state dict is a ``collections.OrderedDict``); see the module
    docstring for the formats. Raises :class:`TorchFileError` for any file it cannot read.
    """
    try:
        try:
            file = open(path, "rb")
        except FileNotFoundError:
            raise _Bad("no such file") from None
        except IsADirectoryError:
            raise _Bad("is a directory, not a checkpoint") from None
        except OSError as err:
            raise _Bad(f"cannot be read ({err.strerror or err})") from None
        with file:
            size = os.fstat(file.fileno()).st_size
            head = file.read(512)
            file.seek(0)
            if not head:
                raise _Bad("empty file: " + _NOT_A_CHECKPOINT)
            if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                try:
                    return _read_zip(file)
                except (zipfile.BadZipFile, zlib.error, EOFError, struct.error, OSError) as err:
                    raise _Bad(f"truncated or corrupt zip archive ({err})") from err
            if head[257:262] == b"ustar":
                raise _Bad("a tar archive (the format of PyTorch < 0.1.10): not supported")
            return _read_legacy(file, size)
    except _Bad as err:
        raise TorchFileError(path, str(err)) from err.__cause__
    except RecursionError:
        raise TorchFileError(path, "corrupt: containers nest too deeply") from None


def read_state_dict(path, key: str | None = None) -> dict[str, np.ndarray]:
    """The name -> array mapping of a state-dict checkpoint.

    ``key`` first takes that entry of a file that holds a dict of state dicts (FastGAN's ``'g'``,
    ``'d'``). A leading ``module.`` (what ``nn.DataParallel`` adds) is dropped from every name when
    every name has it. Raises :class:`TorchFileError` when the file holds no such mapping.
    """
    obj = read_torch_file(path)
    where = "it holds"
    if key is not None:
        if not isinstance(obj, Mapping):
            raise TorchFileError(path, f"has no entry {key!r}: it holds {_describe(obj)}")
        if key not in obj:
            raise TorchFileError(path, f"has no entry {key!r} (entries: {_list_keys(obj)})")
        obj, where = obj[key], f"entry {key!r} is"
    if not isinstance(obj, Mapping):
        raise TorchFileError(path, f"{where} {_describe(obj)}, not a mapping of names to tensors")
    for name, value in obj.items():
        if not isinstance(value, np.ndarray) or not isinstance(name, str):
            hint = ""
            if key is None and all(isinstance(v, Mapping) for v in obj.values()):
                hint = f"; pick one of its entries ({_list_keys(obj)}) with key="
            raise TorchFileError(path, f"{where} {_describe(obj)} whose entry {name!r} is {_describe(value)}, "
                                       f"not a tensor{hint}")
    names = list(obj)
    if names and all(name.startswith("module.") for name in names):
        return {name[len("module."):]: value for name, value in obj.items()}
    return dict(obj)


def _list_keys(mapping, limit: int = 12) -> str:
    keys = [repr(k) for k in list(mapping)[: limit + 1]]
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a tensor of shape {value.shape}"
    if isinstance(value, Mapping):
        return f"{_a(type(value).__name__)} of {len(value)} entries"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, (_PendingTensor, _StorageRef)):
        return "a tensor" if isinstance(value, _PendingTensor) else "a storage"
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return _a(type(value).__name__)


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
