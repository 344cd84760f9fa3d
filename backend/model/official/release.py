"""Reading a published release folder without executing anything from it.

A release (``ReeF2025/RS2-SAM2``, folders ``rrsisd/`` and ``refseg/``) is a Hugging Face
``save_pretrained`` folder of ``EvfSamModel`` (model_spec §8):

* ``config.json`` (``model_type`` ``"evf"``, ``hidden_size``, ``out_dim``,
  ``mm_extractor_scale``, token ids);
* the weights, one of (first found wins): ``model.safetensors``,
  ``model.safetensors.index.json`` + shards, ``pytorch_model.bin``,
  ``pytorch_model.bin.index.json`` + shards. ``.bin`` files are read with
  ``torch.load(weights_only=True)`` only, so a pickle that would run code is refused;
* the tokeniser: ``sentencepiece.bpe.model`` (plus ``tokenizer_config.json``,
  ``special_tokens_map.json``, ``added_tokens.json``, which are only cross-checked).

Shard names come from an index file and are accepted only as plain file names inside the folder.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = ["Release", "open_release"]

TOKENIZER_FILE = "sentencepiece.bpe.model"
_WEIGHT_LAYOUTS = (
    ("model.safetensors", "safetensors", False),
    ("model.safetensors.index.json", "safetensors", True),
    ("pytorch_model.bin", "bin", False),
    ("pytorch_model.bin.index.json", "bin", True),
)
_MAX_JSON_BYTES = 64 * 1024**2


def _read_json(path: Path) -> Any:
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise CheckpointError(
            f"{path} is larger than {_MAX_JSON_BYTES // 1024**2} MiB; not a release file"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path} is not readable JSON ({err}); download it again") from None


@dataclass
class Release:
    """An opened release folder.

    Attributes:
        root: The folder.
        config: Parsed ``config.json``.
        kind: ``"safetensors"`` or ``"bin"``.
        files: Weight files, in order (one, or the shards).
        shard_of: ``{key: file}`` from a shard index (empty for one file).
        tokenizer_model: Bytes of ``sentencepiece.bpe.model``.
        tokenizer_files: Other tokeniser files found (name → parsed JSON).
    """

    root: Path
    config: dict[str, Any]
    kind: str
    files: list[Path]
    shard_of: dict[str, Path] = field(default_factory=dict)
    tokenizer_model: bytes = b""
    tokenizer_files: dict[str, Any] = field(default_factory=dict)
    _bin_cache: dict[Path, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    _readers: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ index
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every tensor in the weight files.

        No tensor data is read where avoidable (safetensors headers; ``.bin`` zip archives are
        memory-mapped).

        Raises:
            CheckpointError: Unreadable file, a key stored twice, or a shard that does not hold
                the keys its index names.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        where: dict[str, Path] = {}
        for file in self.files:
            for key, shape in self._file_shapes(file):
                if key in shapes:
                    raise CheckpointError(
                        f"tensor {key!r} is stored twice ({where[key].name} and {file.name}); "
                        "the release folder is damaged"
                    )
                shapes[key] = shape
                where[key] = file
        if self.shard_of:
            listed = set(self.shard_of)
            wrong = sorted(k for k in listed if where.get(k) != self.shard_of[k])
            extra = sorted(set(shapes) - listed)
            if wrong or extra:
                sample = (wrong or extra)[:3]
                raise CheckpointError(
                    f"the shards do not match their index in {self.root} ({len(wrong)} tensors "
                    f"missing from the shard the index names, {len(extra)} not in the index, "
                    f"e.g. {sample}); download the folder again"
                )
        return shapes

    def _file_shapes(self, file: Path) -> Iterator[tuple[str, tuple[int, ...]]]:
        if self.kind == "safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(file), framework="pt", device="cpu") as f:
                    for key in f.keys():
                        yield key, tuple(int(n) for n in f.get_slice(key).get_shape())
            except (SafetensorError, OSError, ValueError, RuntimeError) as err:
                raise CheckpointError(
                    f"{file} is corrupt or not a .safetensors file ({err}); download it again"
                ) from None
        else:
            for key, tensor in self._bin(file).items():
                yield key, tuple(tensor.shape)

    def _bin(self, file: Path) -> dict[str, torch.Tensor]:
        """A ``.bin`` state dict via ``torch.load(weights_only=True)`` (memory-mapped if zip)."""
        if file not in self._bin_cache:
            self._bin_cache[file] = _load_bin(file)
        return self._bin_cache[file]

    # ------------------------------------------------------------------ data
    def tensors(self, keys: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(key, tensor)`` for ``keys``, one file at a time, in file order."""
        wanted = set(keys)
        for file in self.files:
            if self.kind == "safetensors":
                from safetensors import SafetensorError, safe_open

                try:
                    with safe_open(str(file), framework="pt", device="cpu") as f:
                        for key in f.keys():
                            if key in wanted:
                                yield key, f.get_tensor(key)
                except (SafetensorError, OSError, ValueError, RuntimeError) as err:
                    raise CheckpointError(
                        f"{file} is corrupt or not a .safetensors file ({err}); download it again"
                    ) from None
            else:
                for key, tensor in self._bin(file).items():
                    if key in wanted:
                        yield key, tensor
                self._bin_cache.pop(file, None)

    def _index(self) -> dict[str, Any]:
        """``{key: SafetensorsFile or .bin path}`` over every weight file."""
        if not self._readers:
            for file in self.files:
                if self.kind == "safetensors":
                    from .stream import SafetensorsFile

                    source = SafetensorsFile(file)
                    self._readers.update(dict.fromkeys(source.keys(), source))
                else:
                    self._readers.update(dict.fromkeys(self._bin(file), file))
        return self._readers

    def dtypes(self) -> dict[str, torch.dtype]:
        """The stored dtype of every tensor (no tensor data is read)."""
        return {
            key: self._bin(where)[key].dtype if isinstance(where, Path) else where.dtype(key)
            for key, where in self._index().items()
        }

    def read(self, key: str) -> torch.Tensor:
        """One tensor, read on its own (safetensors: plain reads at its offsets, no memory map).

        Raises:
            CheckpointError: The key is in no weight file, or the file is corrupt.
        """
        where = self._index().get(key)
        if where is None:
            raise CheckpointError(f"tensor {key!r} is in no weight file of {self.root}")
        if isinstance(where, Path):
            return self._bin(where)[key]
        return where.read(key)

    def forget(self, key: str) -> None:
        """Drop the pages of a memory-mapped ``.bin`` tensor from this process (Linux).

        ``.bin`` archives are memory-mapped (private, read-only use): pages a read touched stay
        in the process until the map is closed. Telling the kernel they are not needed
        (``MADV_DONTNEED``) keeps the import's resident memory near one tensor; a later access
        would read them from the file again. Safetensors tensors own their memory: nothing to do.
        """
        where = self._index().get(key)
        if isinstance(where, Path) and zipfile.is_zipfile(where):
            _drop_pages(self._bin(where)[key], where)

    @property
    def nbytes(self) -> int:
        """Bytes of the weight files on disk."""
        return sum(f.stat().st_size for f in self.files)


def _drop_pages(tensor: torch.Tensor, file: Path) -> None:
    """``madvise(MADV_DONTNEED)`` over the pages of a tensor mapped from ``file``.

    Only when ``/proc/self/maps`` shows the pages inside a mapping of ``file`` (so memory the
    process owns is never touched); a no-op elsewhere (other systems, copied tensors).
    """
    import ctypes
    import os

    storage = tensor.untyped_storage()
    page = os.sysconf("SC_PAGE_SIZE")
    start = storage.data_ptr() // page * page
    end = -(-(storage.data_ptr() + storage.nbytes()) // page) * page
    if not any(a <= start and end <= b for a, b in _mapped_ranges(file)):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


def _mapped_ranges(file: Path) -> list[tuple[int, int]]:
    """Address ranges where ``file`` is mapped into this process (Linux; empty elsewhere)."""
    target = str(file.resolve())
    ranges = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].strip() == target:
                    a, b = fields[0].split("-")
                    ranges.append((int(a, 16), int(b, 16)))
    except OSError:
        return []
    return ranges


def _load_bin(file: Path) -> dict[str, torch.Tensor]:
    is_zip = zipfile.is_zipfile(file)
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as err:  # torch raises pickle.UnpicklingError, RuntimeError, EOFError, ...
        if any(c.__name__ == "UnpicklingError" for c in type(err).__mro__):
            raise CheckpointError(
                f"{file} was refused: its pickle asks to run code or build objects that are not "
                f"plain tensors ({str(err).splitlines()[0][:200]}). Weights are read with "
                "torch.load(weights_only=True) only; use the release's model.safetensors if it "
                "has one"
            ) from None
        raise CheckpointError(
            f"{file} is corrupt or not a PyTorch file ({type(err).__name__}: {err})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{file} does not hold a state dict (name → tensor)")
    return state


def open_release(folder: str | Path) -> Release:
    """Find and check the files of a release folder (reads JSON and the tokeniser only).

    Raises:
        CheckpointError: Missing folder, ``config.json``, weights, shards or tokeniser; a
            config that is not an RS2-SAM 2 / EVF-SAM release; an unsafe shard name.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CheckpointError(
            f"{root} is not a folder; pass the downloaded release folder (e.g. RS2-SAM2/rrsisd)"
        )
    config_path = root / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{root} has no config.json; pass the folder that holds config.json and the weights "
            "(rrsisd/ or refseg/ of ReeF2025/RS2-SAM2)"
        )
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object")
    model_type = config.get("model_type")
    if model_type != "evf":
        raise CheckpointError(
            f"{config_path} says model_type {str(model_type)[:40]!r}, not 'evf': this is not an "
            "RS2-SAM 2 (EvfSamModel) release"
        )
    kind, files, shard_of = _find_weights(root)
    tok = root / TOKENIZER_FILE
    if not tok.is_file():
        raise CheckpointError(
            f"{root} has no {TOKENIZER_FILE} (the tokeniser); download the whole release folder"
        )
    if tok.stat().st_size > 64 * 1024**2:
        raise CheckpointError(f"{tok} is larger than 64 MiB; not a sentencepiece model")
    extras = {
        name: _read_json(root / name)
        for name in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
        if (root / name).is_file()
    }
    return Release(root, config, kind, files, shard_of, tok.read_bytes(), extras)


def _find_weights(root: Path) -> tuple[str, list[Path], dict[str, Path]]:
    for name, kind, sharded in _WEIGHT_LAYOUTS:
        path = root / name
        if not path.is_file():
            continue
        if not sharded:
            return kind, [path], {}
        index = _read_json(path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{path} has no weight_map; download it again")
        shard_of: dict[str, Path] = {}
        counts: dict[str, int] = {}
        for key, shard in weight_map.items():
            if (
                not isinstance(key, str)
                or not isinstance(shard, str)
                or Path(shard).name != shard
                or shard in ("", ".", "..")
            ):
                raise CheckpointError(
                    f"{path} names the shard {str(shard)[:80]!r}, which is not a plain file "
                    "name in the folder; refused"
                )
            shard_of[key] = root / shard
            counts[shard] = counts.get(shard, 0) + 1
        missing = [s for s in counts if not (root / s).is_file()]
        if missing:
            raise CheckpointError(
                f"shard {missing[0]} (named by {name} for {counts[missing[0]]} tensors) is "
                f"missing from {root}"
                + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
                + "; download the whole release folder"
            )
        files = sorted({root / s for s in counts})
        return kind, files, shard_of
    raise CheckpointError(
        f"{root} holds no weights: expected one of "
        f"{', '.join(n for n, _, _ in _WEIGHT_LAYOUTS)}"
    )


def describe_bytes(n: int) -> str:
    """``"3.72 GiB"`` style size."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = min(len(units) - 1, int(math.log(max(n, 1), 1024)))
    return f"{n / 1024**power:.2f} {units[power]}"
