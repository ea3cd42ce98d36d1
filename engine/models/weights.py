"""Stream checkpoint weights into a network built on the meta device.

Reads safetensors files (one ``model.safetensors``, or shards listed by
``model.safetensors.index.json``) tensor by tensor with plain file reads.
A tensor kept as stored on the CPU is read straight into its own buffer; one
that is cast, moved to another device or quantised is read a few rows at a
time (``CHUNK_BYTES`` of the file) through one small staging buffer into its
target or the quantiser. Peak host memory is therefore the weights already
placed plus a few MiB, never a second copy of the model nor of one tensor in
the file's dtype. (The safetensors library maps a whole file; its resident pages
would count against a CPU load until the file is closed.) The file format is
the documented one: an 8-byte little-endian header length, a JSON header of
``{name: {dtype, shape, data_offsets}}``, then the raw little-endian data.

Every checkpoint tensor must match a network tensor by name and shape and
every network tensor must be covered: anything else is a ModelLoadError
naming the tensor. Only data is read; no code file beside the weights is
ever imported.
"""
from __future__ import annotations

import json
import logging
import math
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError

log = logging.getLogger(__name__)

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
PICKLES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "checkpoint.pt", "checkpoint.pth")
_HEADER_LIMIT = 100 << 20  # a header larger than this is not a real checkpoint

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int


def checkpoint_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder, in shard order.

    Raises ModelLoadError when there are none (naming a pickle if that is
    what the folder has) or when the index names a missing shard."""
    folder = Path(folder)
    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{index.name} cannot be read ({exc})") from None
        files = []
        for shard in shards:
            if not _inside_as_named(shard):
                raise ModelLoadError(f"{index.name} names the shard {shard!r}, which is outside {folder}: refused")
            path = folder / shard
            if not path.is_file():
                raise ModelLoadError(f"{index.name} names the shard {shard!r}, which is not in {folder}: "
                                     "download or copy the model again")
            files.append(path)
        return files
    if (folder / SINGLE).is_file():
        return [folder / SINGLE]
    found = sorted(folder.glob("*.safetensors"))
    odd = [p for p in found if not p.is_file()]
    if odd:  # a FIFO or a device would block or never end when read
        raise ModelLoadError(f"{odd[0].name} in {folder} is not a regular file; replace it with the real weights")
    if found:
        return found
    pickles = [p for p in PICKLES if (folder / p).is_file()]
    if pickles:
        refuse_pickle(folder / pickles[0])
    raise ModelLoadError(f"{folder} has no weights (no *.safetensors file)")


def _inside_as_named(shard: object) -> bool:
    """Whether an index's shard name is a plain relative path inside its folder, judged
    on the name itself: in the Hugging Face cache every shard is a symlink into
    ``blobs/`` (and a user's folder may link its files from elsewhere), so where a
    link points says nothing; what the index names must not climb out or be absolute."""
    if not isinstance(shard, str) or not shard or "\\" in shard or "\0" in shard:
        return False
    parts = shard.split("/")
    return all(p not in ("..", ".", "") for p in parts) and ":" not in parts[0]


def read_header(file: Path) -> list[TensorInfo]:
    """The tensors a safetensors file holds, from its header alone (no data read)."""
    try:
        st = file.stat()
        size = st.st_size
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO blocks until a writer comes
            raise ModelLoadError(f"{file.name} is not a regular file; replace it with the real weights")
        with open(file, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ModelLoadError(f"{file.name} is cut short ({size} bytes, less than a header): "
                                     "download or copy it again")
            n = int.from_bytes(raw, "little")
            if not 2 <= n <= _HEADER_LIMIT:
                raise ValueError("the header length is impossible")
            if n > size - 8:
                raise ModelLoadError(f"{file.name} is cut short ({size} bytes, inside its {n}-byte header): "
                                     "download or copy it again")
            header = json.loads(fh.read(n))
    except OSError as exc:
        raise ModelLoadError(f"{file.name} cannot be read ({exc.strerror or 'the system refused it'})") from None
    except (ValueError, UnicodeDecodeError):  # a damaged header: say what to do, not what Python saw
        raise ModelLoadError(f"{file.name} is damaged or is not a safetensors file (its header is not valid "
                             "JSON): download or copy it again (`lacuna-cli models pull` repairs a download)") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{file.name} is not a safetensors file (its header is not a table)")
    base = 8 + n
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"{file.name}: tensor {name} has an unreadable or unsupported entry") from None
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if min(shape, default=0) < 0 or begin < 0 or end - begin != nbytes:
            raise ModelLoadError(f"{file.name}: tensor {name} has the wrong size for its shape and dtype")
        out.append(TensorInfo(name, file, dtype, shape, base + begin, nbytes))
    need = max((i.start + i.nbytes for i in out), default=base)
    if need > size:
        raise ModelLoadError(f"{file.name} is cut short ({size} of the {need} bytes its header describes): "
                             "download or copy it again")
    # The format's rule: the tensors tile the data exactly, in offset order, from its first byte
    # (two tensors over the same bytes would let one write show through another).
    at = base
    for info in sorted((i for i in out if i.nbytes), key=lambda i: i.start):
        if info.start != at:
            what = "overlaps the tensor before it" if info.start < at else "leaves a gap before it"
            raise ModelLoadError(f"{file.name}: tensor {info.name} {what} (its data_offsets are impossible); "
                                 "the file is damaged or not a safetensors file")
        at += info.nbytes
    return out


def checkpoint_tensors(folder: Path) -> dict[str, TensorInfo]:
    """name -> TensorInfo over every file of the checkpoint; a name in two files is refused."""
    tensors: dict[str, TensorInfo] = {}
    for file in checkpoint_files(folder):
        for info in read_header(file):
            if info.name in tensors:
                raise ModelLoadError(f"tensor {info.name} appears twice ({tensors[info.name].file.name}, {file.name})")
            tensors[info.name] = info
    return tensors


def _read_into(info: TensorInfo, fh, out: torch.Tensor) -> torch.Tensor:
    """Read one tensor's bytes straight into ``out`` (a contiguous CPU tensor of at
    least ``info.nbytes`` bytes); returns it viewed with the tensor's dtype and shape."""
    raw = out.view(torch.uint8).reshape(-1)[: info.nbytes]
    view = memoryview(raw.numpy()).cast("B")
    fh.seek(info.start)
    got = 0
    while got < info.nbytes:
        n = fh.readinto(view[got:])
        if not n:
            raise ModelLoadError(f"{info.file.name}: tensor {info.name} is cut short")
        got += n
    t = raw.view(info.dtype).reshape(info.shape)
    if sys.byteorder != "little" and t.element_size() > 1:  # pragma: no cover - big-endian hosts
        t = t.view(torch.uint8).reshape(*info.shape, -1).flip(-1).contiguous().view(info.dtype).reshape(info.shape)
    return t


def iter_tensors(tensors: dict[str, TensorInfo], staged: set[str] = frozenset()) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, CPU tensor) one at a time, in file order.

    A tensor is read straight into its own new buffer, except those named in
    ``staged``: they are read into one reused staging buffer and are valid only
    until the next tensor is yielded (for tensors that are converted or
    quantised anyway, so that no per-tensor buffer is allocated and freed)."""
    by_file: dict[Path, list[TensorInfo]] = {}
    for info in tensors.values():
        by_file.setdefault(info.file, []).append(info)
    biggest = max((i.nbytes for i in tensors.values() if i.name in staged), default=0)
    staging = torch.empty(biggest, dtype=torch.uint8) if biggest else None
    for file, infos in by_file.items():
        with open(file, "rb") as fh:
            for info in sorted(infos, key=lambda i: i.start):
                if info.nbytes == 0:
                    yield info.name, torch.empty(info.shape, dtype=info.dtype)
                elif info.name in staged:
                    yield info.name, _read_into(info, fh, staging)
                else:
                    yield info.name, _read_into(info, fh, torch.empty(info.nbytes, dtype=torch.uint8))


# Bytes of the file read per chunk when a tensor is cast, moved off the CPU or
# quantised: the largest transient a load holds beside the weights it has placed.
CHUNK_BYTES = 1 << 20
# Rows a quantiser may ask for at once: NF4's blocks of 64 values must not straddle two reads.
MIN_CHUNK_ROWS = 64


class Rows:
    """Row-chunked access to one tensor of a checkpoint, cast to the load's dtype.

    ``read(start, stop)`` gives rows ``[start, stop)`` of the leading dimension as
    a contiguous CPU tensor ``[stop - start, *shape[1:]]`` in ``dtype`` (a 0-d
    tensor is one row); it is valid only until the next read. ``max_rows`` is the
    most rows one read may ask for (at least ``MIN_CHUNK_ROWS`` or all of them)."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, max_rows: int,
                 read: Callable[[int, int], torch.Tensor]):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.rows = self.shape[0] if self.shape else 1
        self.max_rows = max(1, min(self.rows, max_rows))
        self._read = read

    def read(self, start: int, stop: int) -> torch.Tensor:
        if not 0 <= start < stop <= self.rows or stop - start > self.max_rows:
            raise ValueError(f"rows [{start}, {stop}) of {self.rows} (at most {self.max_rows} at once)")
        return self._read(start, stop)

    def spans(self, multiple: int = 1) -> Iterator[tuple[int, int]]:
        """[start, stop) row ranges covering every row, each ``max_rows`` long at most
        and a multiple of ``multiple`` rows long except the last."""
        step = max(multiple, self.max_rows // multiple * multiple)
        for start in range(0, self.rows, step):
            yield start, min(self.rows, start + step)

    @classmethod
    def of(cls, tensor: torch.Tensor, dtype: torch.dtype | None = None) -> Rows:
        """Rows of a tensor already in memory (any device; read to the CPU, cast to ``dtype``)."""
        dtype = dtype or tensor.dtype
        flat = tensor.reshape(1, -1) if tensor.dim() == 0 else tensor
        per_row = max(1, flat[0].numel() * tensor.element_size())

        def read(start: int, stop: int) -> torch.Tensor:
            part = flat[start:stop].to("cpu", dtype).contiguous()
            return part if tensor.dim() else part.reshape(())

        return cls(tuple(tensor.shape), dtype, max(MIN_CHUNK_ROWS, CHUNK_BYTES // per_row), read)


def _file_rows(info: TensorInfo, fh, staging: torch.Tensor, dtype: torch.dtype) -> Rows:
    """Rows of ``info`` read from the open file ``fh`` through the ``staging`` byte buffer
    (``dtype`` = ``info.dtype`` reads them as stored, a view of the buffer)."""
    rows = info.shape[0] if info.shape else 1
    row_bytes = info.nbytes // rows if rows else 0
    tail = info.shape[1:]

    def read(start: int, stop: int) -> torch.Tensor:
        part = TensorInfo(info.name, info.file, info.dtype, (stop - start, *tail) if info.shape else (),
                          info.start + start * row_bytes, (stop - start) * row_bytes)
        chunk = _read_into(part, fh, staging)
        return chunk.to(dtype) if chunk.dtype != dtype else chunk

    return Rows(info.shape, dtype, staging.numel() // row_bytes if row_bytes else rows, read)


def _staging_bytes(infos: list[TensorInfo]) -> int:
    """A staging buffer of CHUNK_BYTES, or the smallest that holds the largest tensor
    (or, for a tensor with huge rows, MIN_CHUNK_ROWS of its rows)."""
    need = 0
    for info in infos:
        rows = info.shape[0] if info.shape else 1
        row_bytes = info.nbytes // rows if rows else 0
        need = max(need, min(info.nbytes, max(CHUNK_BYTES, MIN_CHUNK_ROWS * row_bytes)))
    return need


# A hook that may replace a Linear layer by a quantised module: called with
# (module name, the nn.Linear on the meta device, its weight as Rows in the load
# dtype, the device); returns the module to install, already on the device, or
# None to keep the plain layer. The module keeps a bias the layer already has; one
# still on the meta device is filled by the loader when the checkpoint reaches it.
QuantizeHook = Callable[[str, nn.Linear, Rows, torch.device], "nn.Module | None"]


def load_into(
    network: nn.Module,
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    quantize: QuantizeHook | None = None,
    rename: Callable[[str], str] | None = None,
) -> None:
    """Fill ``network`` (built on the meta device) from the checkpoint in ``folder``.

    Floating-point tensors are cast to ``dtype``; integer tensors keep theirs.
    ``rename`` maps checkpoint names to network names (identity by default).
    A tensor that is cast, moved off the CPU or quantised is read in row chunks
    of at most ``CHUNK_BYTES`` of the file into its target (or through the
    quantiser), so no whole-tensor copy in the file's dtype lives beside it;
    one kept as stored on the CPU is read straight into its own buffer.
    Raises ModelLoadError naming the first tensor whose name or shape does not
    match, or the first network tensor the checkpoint lacks.
    """
    expected = {name: tuple(t.shape) for name, t in _named_tensors(network)}
    kinds = {name: t.dtype for name, t in _named_tensors(network)}
    raw = checkpoint_tensors(Path(folder))
    tensors = {}
    for name, info in raw.items():
        target = rename(name) if rename else name
        if target not in expected:
            raise ModelLoadError(f"the checkpoint has a tensor {name} that this model does not have")
        if info.shape != expected[target]:
            raise ModelLoadError(
                f"tensor {name} has shape {list(info.shape)} in the checkpoint, "
                f"the config implies {list(expected[target])}"
            )
        if info.dtype.is_floating_point != kinds[target].is_floating_point:
            raise ModelLoadError(
                f"tensor {name} is stored as {str(info.dtype).removeprefix('torch.')}, where the model needs "
                + ("floating-point" if kinds[target].is_floating_point else "integer") + " values"
            )
        tensors[target] = info
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ModelLoadError(f"the checkpoint lacks tensor {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    renamed = {target: TensorInfo(target, i.file, i.dtype, i.shape, i.start, i.nbytes) for target, i in tensors.items()}

    def target_dtype(info: TensorInfo) -> torch.dtype:
        return dtype if info.dtype.is_floating_point else info.dtype

    chunked = {name for name, i in renamed.items()
               if target_dtype(i) != i.dtype or device.type != "cpu" or _may_quantize(network, name, quantize)}
    size = _staging_bytes([renamed[n] for n in chunked])
    staging = torch.empty(size, dtype=torch.uint8) if size else None
    by_file: dict[Path, list[TensorInfo]] = {}
    for info in renamed.values():
        by_file.setdefault(info.file, []).append(info)
    for file, infos in by_file.items():
        with open(file, "rb") as fh:
            for info in sorted(infos, key=lambda i: i.start):
                name = info.name
                owner_name, _, attr = name.rpartition(".")
                owner = network.get_submodule(owner_name)
                if name not in chunked or info.nbytes == 0:
                    value = (_read_into(info, fh, torch.empty(info.nbytes, dtype=torch.uint8)) if info.nbytes
                             else torch.empty(info.shape, dtype=target_dtype(info)))
                    _put(owner, attr, value.to(device))
                    continue
                rows = _file_rows(info, fh, staging, target_dtype(info))
                if _may_quantize(network, name, quantize):
                    replacement = quantize(owner_name, owner, rows, device)
                    if replacement is not None:
                        parent_name, _, child = owner_name.rpartition(".")
                        setattr(network.get_submodule(parent_name), child, replacement)
                        continue
                # read as stored: copy_ casts and moves in one pass, with no converted chunk between
                stored = _file_rows(info, fh, staging, info.dtype)
                value = torch.empty(info.shape, dtype=target_dtype(info), device=device)
                flat = value.view(stored.rows, -1)
                for start, stop in stored.spans():
                    flat[start:stop].copy_(stored.read(start, stop).view(stop - start, -1))
                _put(owner, attr, value)
                del value, flat
    left = [name for name, t in _named_tensors(network) if t.is_meta]
    if left:
        raise ModelLoadError(f"tensor {left[0]} was not filled by the checkpoint")


def _put(owner: nn.Module, attr: str, value: torch.Tensor) -> None:
    if attr in owner._parameters:
        owner._parameters[attr] = nn.Parameter(value, requires_grad=False)
    else:
        owner._buffers[attr] = value


def _may_quantize(network: nn.Module, name: str, quantize: QuantizeHook | None) -> bool:
    """Whether the hook may replace the layer owning tensor ``name`` (its ``keep``
    attribute, when it has one, names the layers it always leaves alone)."""
    if quantize is None or not name.endswith(".weight"):
        return False
    owner_name = name[: -len(".weight")]
    owner = network.get_submodule(owner_name)
    if not isinstance(owner, nn.Linear):
        return False
    keep = getattr(quantize, "keep", None)
    return not (keep is not None and keep(owner_name))


def _named_tensors(network: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from network.named_parameters()
    yield from network.named_buffers()


def refuse_pickle(path: Path) -> None:
    """Raise one clean ModelLoadError for a pickled checkpoint, without torch's warnings.

    A pickle is only ever opened with ``torch.load(weights_only=True)``, which
    refuses anything but tensors and plain containers; Lacuna then asks for
    safetensors weights rather than converting silently."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(path, map_location="meta", weights_only=True, mmap=False)
    except Exception as exc:  # noqa: BLE001 - torch raises several unpickling error types
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it names {found.group(1)})" if found else ""
        raise ModelLoadError(f"{path.name} is a pickle that holds more than tensors{what}, so it was refused: "
                             "use a model with safetensors weights") from None
    raise ModelLoadError(f"{path.name} is a pickled checkpoint; Lacuna loads safetensors weights only "
                         "(convert it to model.safetensors, or pick a model that has one)")
