"""Decode images and turn a frame into the input tensor a model asks for. Pure functions over numpy arrays.

Frames travel in OpenCV's BGR order (what its decoders and cameras give); the conversion to RGB happens
after the resize, on the small image, where it costs almost nothing.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgenet.errors import EdgenetError, InputError, one_line
from edgenet.image_headers import image_size, jpeg_dimensions, jpeg_scan_start
from edgenet.native_stderr import captured_stderr, pass_on

if TYPE_CHECKING:
    from edgenet.tensors import InputSpec

__all__ = ["jpeg_dimensions"]  # re-exported: it lived here

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # libjpeg warnings are turned into error records instead

CROP_FRACTION = 0.875  # the reference ImageNet evaluation: shorter side to S / 0.875, centre S x S
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".pgm",
    ".ppm",
    ".pnm",
    ".gif",  # OpenCV decodes the first frame (builds without a GIF reader give each one an error record)
)
MAX_DECODE_PIXELS = 64_000_000  # bigger JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself
# The largest image decoded at all (--max-pixels). 200 MP lets every camera photo through (200 MP phone
# sensors write 16320x12240 = 199.8 MP; 100-150 MP medium format) and refuses decompression bombs and
# headers that lie: a JPEG that big is decoded at reduced scale anyway, and other formats cost about 3 bytes
# a pixel (600 MB at the cap). OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30) is fixed when cv2 loads.
DEFAULT_MAX_PIXELS = 200_000_000
HEAD_BYTES = 65536  # read first: a header that says "too large" spares reading the rest of the file
# libjpeg says "Corrupt JPEG data: 2 extraneous bytes before marker 0xd9" for some encoders' padding after a
# complete image (all pixels decoded); corrupted scan data leaves more (14 to 622 in 109 corrupted photos)
PADDING_BYTES = 4
_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG file", "libpng error:")
_JPEG_PADDING = re.compile(r"Corrupt JPEG data: (\d+) extraneous bytes before marker 0xd9$")
_DECODER_NOISE = (  # warnings that say nothing about the pixels: dropped
    "Corrupt JPEG data: bad ICC marker",
    "Warning: unknown JFIF revision",
    "Warning: thumbnail image size",
    "Unknown Adobe color transform",
    "Inconsistent progression sequence",
    "Invalid SOS parameters",
    "Application transferred too many scanlines",
    "libpng warning:",
)
# OpenCV's own log lines: `[ERROR:0@4.8] global grfmt_tiff.cpp:152 TIFF_Error Using code not yet in table`
_OPENCV_LOG = re.compile(
    r"^\[\s*([A-Z]+)[^\]]*\]\s*global\s+\S*?(grfmt_\w+|loadsave|bitstrm)\.cpp\S*\s+(?:\(\d+\)\s+)?\S+\s+"
)


def _cv2():
    """OpenCV, imported once it is needed; a one-line error saying how to get it where it is missing. Its
    own and FFmpeg's log lines stay quiet (each failure is an error record or a one-line error already; set
    OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL yourself to see them)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        import cv2
    except ImportError as exc:
        from edgenet.errors import DeviceError
        from edgenet.host import is_32bit_arm

        hint = (
            "sudo apt install python3-opencv and create the venv with --system-site-packages (docs/boards.md)"
            if is_32bit_arm()
            else "pip install opencv-python-headless"
        )
        raise DeviceError(f"OpenCV cannot be imported ({one_line(exc, 120)}): {hint}") from None
    return cv2


opencv = _cv2  # for the other modules that need OpenCV: sources, cameras, the capture thread


@dataclass(frozen=True)
class LoadedImage:
    """An image file read and decoded, or why not; `file_key` is (size, mtime_ns) of the file as read."""

    image: np.ndarray | None
    error: str | None
    file_key: tuple[int, int] | None


def decode_image(
    data: bytes,
    name: str = "image",
    min_short: int | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Bytes of an image file -> HxWx3 uint8 BGR. Raises InputError with a one-line reason.

    The header's width x height is checked against `max_pixels` (None: no cap) before anything is decoded.
    `min_short` (fast decode): a JPEG whose shorter side is 2x, 4x or 8x that or more is decoded at 1/2, 1/4
    or 1/8 scale by libjpeg itself (DCT scaling), still no smaller than `min_short` on its shorter side.
    Data libjpeg reports as corrupt is an error, not an image."""
    if not data:
        raise InputError("cannot decode image: the file is empty (0 bytes)")
    cv2 = _cv2()
    flags = cv2.IMREAD_COLOR
    found = image_size(data)
    if found:
        check_size(*found, max_pixels)
    if data[:2] == b"\xff\xd8":
        if not _jpeg_is_complete(data):
            raise InputError(
                "cannot decode image: truncated JPEG (no end-of-image marker); copy the file again"
            )
        if found:
            factor = _reduction(found[1], found[2], min_short)
            if factor is None:
                raise InputError(
                    f"image too large to decode ({found[1]}x{found[2]}); resize it below 4 gigapixels"
                )
            flags = _REDUCED_FLAGS[factor](cv2)
    image = _imdecode(cv2, np.frombuffer(data, dtype=np.uint8), flags, found[0] if found else None)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8:  # IMREAD_COLOR already gives 8 bits; keep the contract if it ever does not
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return image


def check_size(kind: str, width: int, height: int, max_pixels: int | None) -> None:
    """InputError when a header's size is empty or past the cap."""
    if width <= 0 or height <= 0:
        raise InputError(f"cannot decode image: the {kind} header says {width}x{height} pixels")
    if max_pixels and width * height > max_pixels:
        raise InputError(
            f"image too large: {kind} of {width}x{height} = {width * height:,} pixels, past the cap of "
            f"{max_pixels:,}; --max-pixels raises it"
        )


def _imdecode(cv2, buffer: np.ndarray, flags: int, kind: str | None) -> np.ndarray:
    """cv2.imdecode with what the decoder prints on stderr captured and judged: corrupt data is an error."""
    with captured_stderr() as printed:
        try:
            image, failure = cv2.imdecode(buffer, flags), None
        except cv2.error as exc:
            image, failure = None, exc
    corrupt, others = judge_decoder_output(printed.text)
    pass_on(others)
    if corrupt:
        raise InputError(f"corrupt image data ({corrupt}): the pixels are damaged; copy the file again")
    if failure is not None:
        if "CV_IO_MAX_IMAGE" in str(failure):
            raise InputError(
                "image too large: past OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 pixels "
                "unless set before edgenet starts)"
            )
        raise InputError(f"cannot decode image: {one_line(failure, 200)}")
    if image is None:
        if kind:
            raise InputError(
                f"cannot decode image: damaged {kind} data, or a {kind} variant this OpenCV build cannot read"
            )
        raise InputError(
            "cannot decode image: not an image OpenCV can read (supported: jpg, png, bmp, webp, tiff, pnm, "
            "gif)"
        )
    return image


def judge_decoder_output(text: str) -> tuple[str | None, str]:
    """(the first line saying the data is corrupt or None, the lines that are not a decoder's).

    Corrupt: libjpeg's corrupt-data warnings, libpng's errors, and the errors OpenCV's image decoders
    log (a TIFF whose LZW data is damaged still comes back as an image). Dropped: decoder warnings and
    OpenCV's restatement that imdecode failed (the record says so). Anything else is passed on."""
    corrupt, others, logging = None, [], False
    for line in text.splitlines(keepends=True):
        message = line.strip()
        if logging and line[:1] in (" ", ">", "\t"):
            continue  # the rest of a multi-line OpenCV message
        logged = _OPENCV_LOG.match(message)
        logging = logged is not None
        padding = _JPEG_PADDING.match(message)
        if (
            not message
            or message.startswith(_DECODER_NOISE)
            or (padding and int(padding.group(1)) <= PADDING_BYTES)
        ):
            continue
        if logged:
            if logged.group(1) == "ERROR" and logged.group(2) != "loadsave":
                corrupt = corrupt or message[logged.end() :][:160]
        elif message.startswith(_CORRUPT):
            corrupt = corrupt or message[:160]
        else:
            others.append(line)
    return corrupt, "".join(others)


def read_image(path: str, min_short: int | None = None, *, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """An image file -> HxWx3 uint8 BGR; raises InputError with a one-line reason."""
    loaded = load_image(path, min_short, max_pixels=max_pixels)
    if loaded.error is not None:
        raise InputError(loaded.error)
    return loaded.image


def load_image(
    path: str, min_short: int | None = None, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Open, read and decode one file; never raises for a bad file (the reason is in `error`).

    The file is opened without blocking (a FIFO never hangs the run) and fstat'ed once open: `file_key` is
    the file as it was read. The first HEAD_BYTES are read first, so a header past the cap spares the rest."""
    key = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return LoadedImage(None, _open_error(path, exc), None)
    try:
        info = os.fstat(fd)
        key = (info.st_size, info.st_mtime_ns)
        if stat.S_ISDIR(info.st_mode):
            raise InputError("cannot read image: it is a folder")
        if not stat.S_ISREG(info.st_mode):
            raise InputError("cannot read image: not a regular file (a FIFO, socket or device)")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            found = image_size(handle.read(HEAD_BYTES))
            if found:
                check_size(*found, max_pixels)
            handle.seek(0)  # all of it in one buffer (head + rest would hold the file twice a moment)
            data = handle.read()
        key = (len(data), info.st_mtime_ns)  # what was read, should the file have changed meanwhile
        return LoadedImage(decode_image(data, path, min_short, max_pixels=max_pixels), None, key)
    except EdgenetError as exc:
        return LoadedImage(None, str(exc), key)
    except OSError as exc:
        return LoadedImage(None, f"cannot read image: {exc.strerror or exc}", key)
    except MemoryError:
        return LoadedImage(None, "cannot decode image: out of memory; resize it first", key)
    finally:
        os.close(fd)


def _open_error(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"cannot read image: a broken symbolic link (to {target}, which does not exist)"
    return f"cannot read image: {exc.strerror or exc}"


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
    # was cut short has none near its end. Some cameras append a little data after EOI: allow 64 KiB. The
    # EOI must come after the first scan starts: the EXIF thumbnail before it has its own.
    scan = jpeg_scan_start(data) or 2
    return data.rfind(b"\xff\xd9", max(scan, len(data) - 65536)) != -1


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
