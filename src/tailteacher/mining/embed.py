"""Embeddings for mining: query crops of labeled instances and whole pool images, one vector each,
L2-normalised (cosine = inner product), by one of two extractors (``mining.embedder``):

    backbone  the detector's pretrained trunk (``model.weights``), its deepest map averaged, as the
              prototypes' crops (``pipeline.prototypes``); the embedded benchmark's default;
    timm      a timm model from a local weights file (DINOv2 ``vit_*_patch14_dinov2`` in the
              paper, §4.1), its pooled output (``num_classes=0``). Never downloads; safetensors or
              a torch file read with ``weights_only=True`` (no code runs on load).

The pool is embedded in batches into shards on disk (``embed_pool``): a stopped run resumes at the
first shard not written, and the vectors are read back one memory-mapped shard at a time, so a pool
larger than memory works. Unreadable images are skipped and listed per shard.

Shapes:
    B  images in a batch     s  side of the resized image or crop     D  embedding dimension
    Q  query crops           N  pool images embedded
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import LvisDataset, Sample, Skipped
from ..data.images import to_rgb8
from ..data.lvis_json import LvisData
from ..errors import InputError
from ..io import atomic_write_bytes, atomic_write_json
from ..pipeline.instance_embedding import crop_instances
from ..progress import progress
from .pool import PoolImage

# images [B, 3, s, s] float in [0, 1] -> [B, D] float32, rows of unit length
EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Embedder:
    """A feature extractor for mining. ``key`` names it and its weights (the cache's key);
    ``size``: the side s every input is resized to."""

    key: str
    size: int
    fn: EmbedFn
    device: torch.device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, s, s] float in [0, 1] → [B, D] float32 on the CPU, L2-normalised."""
        out = self.fn(images.to(self.device)).float()
        return F.normalize(out, dim=1).cpu()


def _normalising(
    model: torch.nn.Module, mean: Sequence[float], std: Sequence[float], device: torch.device
) -> EmbedFn:
    m = torch.tensor(list(mean), device=device).view(1, 3, 1, 1)
    s = torch.tensor(list(std), device=device).view(1, 3, 1, 1)

    def fn(images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = model((images - m) / s)
        return out

    return fn


def backbone_embedder(config: Any, size: int, device: torch.device) -> Embedder:
    """The detector's trunk with ``model.weights`` (``config``: the run ``Config``), its crops'
    embedding (``DetectionBackbone.embed_crops``) — the prototypes' extractor."""
    from ..engine.seed import preserved_rng, seed_everything
    from ..pipeline.data import load_train_data
    from ..pipeline.detector import build_detector

    with preserved_rng():
        seed_everything(config.train.seed)
        backbone = build_detector(config, load_train_data(config)).backbone.to(device).eval()
    m = torch.tensor(backbone.image_mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(backbone.image_std, device=device).view(1, 3, 1, 1)

    def fn(images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = backbone.embed_crops((images - m) / s)
        return out

    weights = config.model.weights or "random-init"
    return Embedder(f"backbone:{config.model.backbone}:{weights}:{size}", size, fn, device)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A weights file as a flat state dict: safetensors, or a torch file loaded with
    ``weights_only=True`` (a ``state_dict`` / ``model`` entry is unwrapped).

    Raises:
        InputError: missing or unreadable file (named), or no tensors in it.
    """
    if not path.is_file():
        raise InputError(f"{path}: mining.timm_checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors' and pickle's errors are no OSError: name the file
        raise InputError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: holds no tensors (expected a state dict)")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def timm_embedder(name: str, checkpoint: str, size: int, device: torch.device) -> Embedder:
    """timm ``name`` (random init, ``pretrained=False``) with the weights of ``checkpoint``; its
    pooled features (``num_classes=0``), inputs normalised by the model's own mean and std.

    Raises:
        InputError: an unknown model name, an unreadable file, or weights that leave parts of the
            model unset (the first keys named).
    """
    import timm
    from timm.data.config import resolve_model_data_config

    try:
        try:
            model = timm.create_model(name, pretrained=False, num_classes=0, img_size=size)
        except TypeError:  # a convolutional model takes no img_size
            model = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as err:  # timm: "Unknown model"
        raise InputError(f"mining.timm_model: {err}") from None
    path = Path(checkpoint)
    state = read_state_dict(path)
    convert = getattr(__import__(type(model).__module__, fromlist=["_"]), "checkpoint_filter_fn", None)
    if convert is not None:
        state = convert(state, model)  # original key names; position embeddings resampled to size
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(("head.", "fc.", "classifier."))]
    if missing:
        shown = ", ".join(missing[:5])
        raise InputError(
            f"{path}: does not fit timm model {name}: {len(missing)} weights missing ({shown} …)"
        )
    model = model.to(device).eval()
    cfg = resolve_model_data_config(model)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Embedder(
        f"timm:{name}:{digest}:{size}", size, _normalising(model, cfg["mean"], cfg["std"], device), device
    )


# -- queries ---------------------------------------------------------------------------------------


def embed_queries(
    data: LvisData, category_ids: set[int], embedder: Embedder, batch_size: int
) -> tuple[np.ndarray, np.ndarray, list[Skipped], int]:
    """Every labeled instance of ``category_ids`` in ``data``: its crop (10 % context, resized to
    s², ``crop_instances``) embedded.

    Returns:
        (vectors [Q, D] float32 unit rows, category ids [Q] int64, images skipped, images read).
    """
    wanted = sorted(
        iid
        for iid, anns in data.anns_by_image.items()
        if any(int(a["category_id"]) in category_ids for a in anns)
    )
    dataset = LvisDataset(data, wanted)
    index = torch.tensor([cid in category_ids for cid in data.category_ids])
    vectors, labels, skipped = [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        skipped += [s for s in items if isinstance(s, Skipped)]
        samples = [s for s in items if isinstance(s, Sample)]
        keep = [index[s.labels] for s in samples]
        boxes = [s.boxes.as_subclass(torch.Tensor)[k] for s, k in zip(samples, keep, strict=True)]
        if not samples or sum(len(b) for b in boxes) == 0:
            continue
        images = [s.image.as_subclass(torch.Tensor).float() / 255.0 for s in samples]
        vectors.append(embedder(crop_instances(images, boxes, embedder.size)))
        cats = torch.tensor(data.category_ids)
        labels += [cats[s.labels[k]] for s, k in zip(samples, keep, strict=True)]
    if not vectors:
        raise InputError(f"{data.path}: no labeled instance of the query classes {sorted(category_ids)}")
    return torch.cat(vectors).numpy(), torch.cat(labels).numpy().astype(np.int64), skipped, len(dataset)


# -- the pool --------------------------------------------------------------------------------------


def decode(data: bytes, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Image bytes → ([3, size, size] float in [0, 1], upright (width, height)); the image is
    squashed to a square (bilinear, antialiased), read as ``data.images`` reads every file.

    Raises:
        OSError, ValueError: not an image Pillow reads, or a mode with no 8-bit reading.
    """
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        pixels = to_rgb8(ImageOps.exif_transpose(im)).copy()
    h, w = pixels.shape[:2]
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].clamp(0, 1), (w, h)


def _load(path: Path, size: int) -> tuple[torch.Tensor, str, tuple[int, int]] | str:
    """(pixels, SHA-256 of the file, (w, h)), or why the file could not be used."""
    from PIL import UnidentifiedImageError

    try:
        data = path.read_bytes()
        pixels, wh = decode(data, size)
    except UnidentifiedImageError:
        return "not an image file Pillow can read"
    except (OSError, ValueError, SyntaxError) as err:  # Pillow raises SyntaxError on some bad files
        return f"{type(err).__name__}: {err}"
    return pixels, hashlib.sha256(data).hexdigest(), wh


@dataclass
class PoolEmbeddings:
    """The pool's vectors, shard by shard, with what each row is.

    ``pool_index[r]``: the position in the pool list of vector row r (rows are concatenated over
    shards in order); ``sha256[r]``, ``sizes[r]`` (width, height) likewise; ``skipped``: every
    image that could not be read."""

    shards: list[Path]
    dim: int
    pool_index: np.ndarray  # [N] int64
    sha256: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.pool_index.size)

    def iter_shards(self) -> Iterator[np.ndarray]:
        """Each shard's vectors [n_i, D] float32, memory-mapped (read in turn, never all at once)."""
        for path in self.shards:
            yield np.load(path, mmap_mode="r")

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The vectors [len(rows), D] of the given global rows (read from their shards)."""
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        start = 0
        for vectors in self.iter_shards():
            stop = start + vectors.shape[0]
            hit = np.flatnonzero((rows >= start) & (rows < stop))
            if hit.size:
                out[hit] = vectors[rows[hit] - start]
            start = stop
        return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def embed_pool(
    pool: Sequence[PoolImage],
    image_root: Path,
    embedder: Embedder,
    cache: Path,
    batch_size: int,
    shard_size: int,
    workers: int = 2,
    show_progress: bool = True,
) -> PoolEmbeddings:
    """Embed the pool into ``cache/shard_NNNNN.{npy,json}`` (the json written last: a shard with its
    json is complete), skipping shards already there; then return them.

    The caller keys ``cache`` by the embedder and the pool's file list (``cache_key``), so a
    changed pool or extractor never reads stale vectors. Files are read in ``workers`` threads.
    """
    cache.mkdir(parents=True, exist_ok=True)
    n_shards = (len(pool) + shard_size - 1) // shard_size
    done = [s for s in range(n_shards) if (cache / f"shard_{s:05d}.json").is_file()]
    initial = sum(min(shard_size, len(pool) - s * shard_size) for s in done)
    bar = progress(total=len(pool), initial=initial, desc="embed pool", unit="img") if show_progress else None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as threads:
        for s in range(n_shards):
            if s in done:
                continue
            part = pool[s * shard_size : (s + 1) * shard_size]
            vectors, rows, hashes, sizes, skipped = [], [], [], [], []
            for start in range(0, len(part), batch_size):
                batch = part[start : start + batch_size]
                loaded = list(threads.map(lambda im: _load(image_root / im.file_name, embedder.size), batch))
                pixels = []
                for k, (image, got) in enumerate(zip(batch, loaded, strict=True)):
                    if isinstance(got, str):
                        skipped.append({"image_id": image.id, "file": image.file_name, "reason": got})
                        continue
                    pixels.append(got[0])
                    rows.append(s * shard_size + start + k)
                    hashes.append(got[1])
                    sizes.append(list(got[2]))
                if pixels:
                    vectors.append(embedder(torch.stack(pixels)).numpy())
                if bar is not None:
                    bar.update(len(batch))
            dim = vectors[0].shape[1] if vectors else 0
            array = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
            _save_npy(cache / f"shard_{s:05d}.npy", array.astype(np.float32))
            meta = {"rows": rows, "sha256": hashes, "sizes": sizes, "skipped": skipped}
            atomic_write_json(cache / f"shard_{s:05d}.json", meta)
    if bar is not None:
        bar.close()
    return load_pool_embeddings(cache, n_shards)


def load_pool_embeddings(cache: Path, n_shards: int) -> PoolEmbeddings:
    """The shards ``embed_pool`` wrote (their json files; vectors stay on disk)."""
    shards, index, hashes, sizes, skipped, dim = [], [], [], [], [], 0
    for s in range(n_shards):
        meta = json.loads((cache / f"shard_{s:05d}.json").read_text())
        path = cache / f"shard_{s:05d}.npy"
        header = np.load(path, mmap_mode="r")
        if header.shape[0]:
            dim = int(header.shape[1])
            shards.append(path)
        index += meta["rows"]
        hashes += meta["sha256"]
        sizes += [(int(w), int(h)) for w, h in meta["sizes"]]
        skipped += [Skipped(int(x["image_id"]), str(x["reason"]), str(x["file"])) for x in meta["skipped"]]
    return PoolEmbeddings(shards, dim, np.asarray(index, dtype=np.int64), hashes, sizes, skipped)


def cache_key(embedder: Embedder, pool: Sequence[PoolImage], shard_size: int) -> str:
    """SHA-256 (16 hex digits) of the extractor, the pool's files in order and the shard size."""
    h = hashlib.sha256(f"{embedder.key}\n{shard_size}\n".encode())
    for image in pool:
        h.update(f"{image.id}\t{image.file_name}\n".encode())
    return h.hexdigest()[:16]
