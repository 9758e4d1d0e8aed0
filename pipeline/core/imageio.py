"""Image and label-map reading: the one reader per format, shared by every stage.

    read_photo(path) -> (RGB uint8 array (H, W, 3), note or None)   raises BadFile
    read_label(path) -> uint8 array (H, W) of class ids 0..28        raises BadFile

Pillow reads each file's header (its stored mode: grey, CMYK, palette...); the common cases
(RGB photos, grey label maps) are decoded by OpenCV, which refuses truncated files; anything
else, and anything OpenCV refuses, is decoded by Pillow, which says what is wrong. Callers add
the file name (`BadFile` carries only the reason) or use `load_photo` / `load_label`, which
raise `DatasetError` naming the file.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .classes import NUM_CLASSES
from .errors import DatasetError

# every extension a listing recognises as an image; the ones each role accepts
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PHOTO_EXTS = (".jpg", ".jpeg", ".png")
LABEL_EXTS = (".png",)
SUBMISSION_SIZE = (512, 384)  # (width, height) of every image the organisers score


class BadFile(Exception):
    """A file that cannot be used; the message is the reason (the caller adds the file name)."""



def _open(path: Path, what: str) -> tuple[Image.Image, bytes]:
    """Read a file and parse its image header (no pixels yet): (lazy Pillow image, file bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadFile(f"{what} cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise BadFile(f"{what} is empty (0 bytes); re-download or re-export it")
    try:
        return Image.open(io.BytesIO(data)), data
    except Image.DecompressionBombError as exc:
        raise BadFile(f"{what} is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        # Pillow's own text names its in-memory buffer (<_io.BytesIO object at 0x...>), not the file
        raise BadFile(f"{what} does not decode (no image format Pillow knows starts with "
                      f"{data[:8]!r}); it is corrupt or not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadFile(f"{what} does not decode ({exc or type(exc).__name__}); "
                      "it is corrupt or not an image") from None


def _load(im: Image.Image, what: str) -> Image.Image:
    """Decode every pixel with Pillow; BadFile when it does not decode or is truncated."""
    try:
        im.load()
        return im
    except Image.DecompressionBombError as exc:
        raise BadFile(f"{what} is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, zlib.error, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            raise BadFile(f"{what} is truncated ({text}); re-download or re-export it") from None
        raise BadFile(f"{what} does not decode ({text}); it is corrupt or not an image") from None


# OpenCV >= 4.10 decodes straight to RGB (no channel swap afterwards).
_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


def _fast_decode(data: bytes, im: Image.Image, flags: int) -> np.ndarray | None:
    """OpenCV decode of the common case (about 1.5x faster than Pillow + numpy); None when
    OpenCV refuses the file (truncated, corrupt) or disagrees on its size: Pillow then decides."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None or arr.shape[:2] != (im.height, im.width) or arr.dtype != np.uint8:
        return None
    return arr


def read_photo(path: str | Path) -> tuple[np.ndarray, str | None]:
    """Decode a photo as RGB uint8 (H, W, 3); return (array, note) where note says what was
    converted (grey, CMYK, palette, alpha) or None. Raises BadFile."""
    im, data = _open(Path(path), "photo")
    if im.mode == "RGB":
        # EXIF orientation ignored: label maps are aligned with the stored pixels.
        arr = _fast_decode(data, im, _RGB_FLAG | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None and arr.ndim == 3:
            return (arr if _RGB_FLAG != cv2.IMREAD_COLOR else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)), None
    im = _load(im, "photo")
    note = None
    if im.mode != "RGB":
        kind = {"L": "grey", "LA": "grey", "I": "grey", "I;16": "grey", "F": "grey", "1": "black-and-white",
                "CMYK": "CMYK", "P": "palette", "RGBA": "RGBA", "YCbCr": "YCbCr"}.get(im.mode, im.mode)
        note = f"{kind} photo (mode {im.mode}) converted to RGB"
        if im.mode in ("I", "I;16", "F"):  # 16/32-bit grey: scale into 8 bits before converting
            a = np.asarray(im, np.float64)
            top = 65535.0 if a.max() > 255 else 255.0
            im = Image.fromarray(np.clip(a * 255.0 / top, 0, 255).astype(np.uint8))
        im = im.convert("RGB")
    arr = np.asarray(im)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise BadFile(f"photo decodes to an unusable shape {arr.shape}")
    return arr, note


def read_label(path: str | Path) -> np.ndarray:
    """Decode a label map as uint8 (H, W) class ids 0..28. Raises BadFile.

    Accepts grey PNGs, RGB/RGBA ones whose channels are all equal and palette ones whose used
    palette entries are grey (the grey level is the class id).
    """
    im, data = _open(Path(path), "label map")
    mode = im.mode
    if mode == "L":
        arr = _fast_decode(data, im, cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.ndim == 2:
            return _check_ids(arr)
    im = _load(im, "label map")
    if mode in ("L", "1"):
        arr = np.asarray(im).astype(np.uint8, copy=False)
    elif mode == "LA":
        arr = np.asarray(im)[..., 0]
    elif mode in ("I", "I;16", "I;16B", "I;16L"):
        arr = np.asarray(im)
    elif mode == "P":
        idx = np.asarray(im)
        pal = np.asarray(im.getpalette() or [], np.uint8).reshape(-1, 3)
        used = np.unique(idx)
        if used.max(initial=0) >= len(pal):
            raise BadFile("palette label map uses entries missing from its palette; save it as a grey PNG")
        colours = pal[used]
        if not (np.all(colours[:, 0] == colours[:, 1]) and np.all(colours[:, 1] == colours[:, 2])):
            raise BadFile("label map is a colour palette PNG (a colour-coded map?); save the class "
                          "ids 0..28 as a grey (mode L) PNG")
        arr = pal[:, 0][idx]
    elif mode in ("RGB", "RGBA"):
        rgb = np.asarray(im)[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            raise BadFile(f"label map is a colour {mode} PNG whose channels differ (a colour-coded "
                          "map?); save the class ids 0..28 as a grey (mode L) PNG")
        arr = rgb[..., 0]
    else:
        raise BadFile(f"label map has image mode {mode}; save the class ids 0..28 as a grey (mode L) PNG")
    if arr.ndim != 2 or arr.size == 0:
        raise BadFile(f"label map decodes to an unusable shape {arr.shape}")
    return _check_ids(arr)


def _check_ids(arr: np.ndarray) -> np.ndarray:
    """Return a label array as contiguous uint8, or BadFile when a value is not a class id."""
    top = int(arr.max())
    if top >= NUM_CLASSES:
        n = int(np.count_nonzero(arr >= NUM_CLASSES))
        raise BadFile(f"label value {top} > {NUM_CLASSES - 1} in {n} pixel(s); label maps hold class ids "
                      f"0..{NUM_CLASSES - 1} (is it a visualisation or a resized/antialiased map?)")
    return np.ascontiguousarray(arr, dtype=np.uint8)




def load_photo(path: str | Path) -> np.ndarray:
    """`read_photo` for callers that stop on a bad file: the RGB array, or DatasetError naming it."""
    try:
        return read_photo(path)[0]
    except BadFile as exc:
        raise DatasetError(f"{path}: {exc}") from None


def load_label(path: str | Path) -> np.ndarray:
    """`read_label` for callers that stop on a bad file: the class ids, or DatasetError naming it."""
    try:
        return read_label(path)
    except BadFile as exc:
        raise DatasetError(f"{path}: {exc}") from None


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 image at `quality` (OpenCV, 4:2:0)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()
