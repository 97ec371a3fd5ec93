"""Decode images and turn a frame into the input tensor a model asks for. Pure functions over numpy arrays.

Frames travel in OpenCV's BGR order (what its decoders and cameras give); the conversion to RGB happens
after the resize, on the small image, where it costs almost nothing.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import TYPE_CHECKING

import numpy as np

from edgenet.errors import InputError

if TYPE_CHECKING:
    from edgenet.tensors import InputSpec

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # libjpeg warnings are turned into error records instead

CROP_FRACTION = 0.875  # the reference ImageNet evaluation: shorter side to S / 0.875, centre S x S
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm")
MAX_DECODE_PIXELS = 64_000_000  # bigger JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself


def _cv2():
    import cv2

    return cv2


def decode_image(data: bytes, name: str = "image", min_short: int | None = None) -> np.ndarray:
    """Bytes of an image file -> HxWx3 uint8 BGR. Raises InputError with a one-line reason.

    `min_short` (fast decode): a JPEG whose shorter side is 2x, 4x or 8x that or more is decoded at 1/2, 1/4
    or 1/8 scale by libjpeg itself (DCT scaling), still no smaller than `min_short` on its shorter side."""
    if not data:
        raise InputError("cannot decode image: the file is empty (0 bytes)")
    cv2 = _cv2()
    flags = cv2.IMREAD_COLOR
    if data[:2] == b"\xff\xd8":
        if not _jpeg_is_complete(data):
            raise InputError(
                "cannot decode image: truncated JPEG (no end-of-image marker); copy the file again"
            )
        dims = jpeg_dimensions(data)
        if dims:
            factor = _reduction(dims[0], dims[1], min_short)
            if factor is None:
                raise InputError(
                    f"image too large to decode ({dims[0]}x{dims[1]}); resize it below 4 gigapixels"
                )
            flags = _REDUCED_FLAGS[factor](cv2)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise InputError(f"cannot decode image: {' '.join(str(exc).split())[:200]}") from None
    if image is None:
        raise InputError(
            "cannot decode image: not an image OpenCV can read (supported: jpg, png, bmp, webp, tiff, pnm)"
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8:  # IMREAD_COLOR already gives 8 bits; keep the contract if it ever does not
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return image


def read_image(path: str, min_short: int | None = None) -> np.ndarray:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path):
            raise InputError("cannot read image: not a regular file (a FIFO, socket or device)")
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise InputError("cannot read image: it is a folder") from None
    except OSError as exc:
        raise InputError(f"cannot read image: {exc.strerror or exc}") from None
    return decode_image(data, path, min_short)


_REDUCED_FLAGS = {
    1: lambda cv2: cv2.IMREAD_COLOR,
    2: lambda cv2: cv2.IMREAD_REDUCED_COLOR_2,
    4: lambda cv2: cv2.IMREAD_REDUCED_COLOR_4,
    8: lambda cv2: cv2.IMREAD_REDUCED_COLOR_8,
}


def _reduction(width: int, height: int, min_short: int | None) -> int | None:
    """The JPEG scale-down factor: at least what keeps memory under MAX_DECODE_PIXELS (None: even 1/8 is
    too big), and with `min_short` as much as keeps the shorter side at min_short or more."""
    needed = next((f for f in (1, 2, 4, 8) if width * height / (f * f) <= MAX_DECODE_PIXELS), None)
    if needed is None:
        return None
    fast = 1
    if min_short:
        fast = max(f for f in (1, 2, 4, 8) if min(width, height) / f >= min_short or f == 1)
    return max(needed, fast)


def _jpeg_is_complete(data: bytes) -> bool:
    # An EOI marker (FF D9) cannot occur inside entropy-coded data (FF is stuffed there), so a file that
    # was cut short has none near its end. Some cameras append a little data after EOI: allow 64 KiB.
    return data.rfind(b"\xff\xd9", max(2, len(data) - 65536)) != -1


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF marker, without decoding."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height)
        pos += 2 + length
    return None


def crop_box(height: int, width: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Shorter side to round(S / 0.875) keeping the aspect ratio: (resized_h, resized_w, top, left)."""
    short_target = round(min(out_h, out_w) / CROP_FRACTION)
    if height <= width:
        resized_h, resized_w = short_target, max(out_w, round(width * short_target / height))
    else:
        resized_h, resized_w = max(out_h, round(height * short_target / width)), short_target
    return resized_h, resized_w, (resized_h - out_h) // 2, (resized_w - out_w) // 2


def resize_frame(image_bgr: np.ndarray, spec: InputSpec, policy: str = "crop") -> np.ndarray:
    """HxWx3 BGR -> spec.height x spec.width x C, in RGB (or gray for 1-channel models). `policy` is an
    edgenet.choices.Resize (validated where the user gave it): "stretch" resizes the whole frame, "crop" the
    shorter side to S / 0.875 and takes the centre."""
    cv2 = _cv2()
    if policy == "stretch":
        resized = cv2.resize(image_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    else:
        resized_h, resized_w, top, left = crop_box(
            image_bgr.shape[0], image_bgr.shape[1], spec.height, spec.width
        )
        full = cv2.resize(image_bgr, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
        resized = full[top : top + spec.height, left : left + spec.width]
    if spec.channels == 1:
        return cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[..., None]
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def to_input_tensor(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HxWxC uint8 pixels -> [1, H, W, C] tensor in the model's number format.

    A quantized input's own quantization says how the model reads a raw pixel, so uint8 pixels go in as they
    are (int8: XOR 0x80, i.e. p - 128). A float input with metadata gets (p - mean) / std per channel; other
    float inputs, or an explicit --input-range, map 0..255 linearly to spec.value_range (quantized with the
    tensor's (scale, zero point) where there is one).
    """
    if spec.range_source != "override":
        if spec.dtype == "uint8":
            return pixels[None]
        if spec.dtype == "int8":
            return (pixels ^ np.uint8(0x80)).view(np.int8)[None]
    if spec.range_source == "metadata":  # NormalizationOptions: (pixel - mean) / std, per channel
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        return ((pixels.astype(np.float32) - mean) / std)[None]
    lo, hi = spec.value_range
    real = pixels.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
    if spec.dtype == "float32":
        return real[None]
    limits = (0, 255) if spec.dtype == "uint8" else (-128, 127)
    quantized = np.clip(np.rint(real / spec.scale + spec.zero_point), *limits)
    return quantized.astype(spec.dtype)[None]


def decode_target(spec: InputSpec, policy: str = "crop") -> int:
    """The smallest shorter side an image needs before resizing, for fast decode: what crop resizes to."""
    if policy == "crop":
        return round(min(spec.height, spec.width) / CROP_FRACTION)
    return max(spec.height, spec.width)


def prepare(image_bgr: np.ndarray, spec: InputSpec, policy: str = "crop") -> np.ndarray:
    return np.ascontiguousarray(to_input_tensor(resize_frame(image_bgr, spec, policy), spec))
