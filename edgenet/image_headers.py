"""An image's width and height from its file header, without decoding it.

Covers every format OpenCV's imgcodecs decodes (JPEG, PNG, GIF, BMP, WebP, TIFF and BigTIFF, JPEG 2000,
AVIF, Radiance HDR, Sun raster, PBM/PGM/PPM/PAM, PFM), so that a file whose header promises more pixels
than the cap is refused before a decoder allocates anything. Pure functions over bytes; a header that
cannot be read gives None (the decoder then has the last word, with OpenCV's own limit behind it).
"""

from __future__ import annotations

import re
import struct


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header, or None when the format or its header is not known."""
    for magic, name, reader in _READERS:
        if data.startswith(magic):
            try:
                size = reader(data)
            except (struct.error, ValueError, IndexError):
                return None
            return (name, size[0], size[1]) if size else None
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"mif1", b"msf1", b"heic"):
        size = _iso_bmff_size(data)
        return ("AVIF", *size) if size else None
    return None


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF marker (APPn segments, e.g. an EXIF thumbnail, are skipped)."""
    for marker, pos in _jpeg_markers(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height)
    return None


def jpeg_scan_start(data: bytes) -> int | None:
    """Where the first scan (SOS) starts: an end-of-image marker before it is a thumbnail's, not the image."""
    return next((pos for marker, pos in _jpeg_markers(data) if marker == 0xDA), None)


def _jpeg_markers(data: bytes):
    """(marker, offset) of each header segment, up to and including the first SOS."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        yield marker, pos
        if marker == 0xDA:
            return
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _gif(data: bytes) -> tuple[int, int]:
    return struct.unpack("<HH", data[6:10])  # the logical screen every frame is drawn on


def _bmp(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended (animation, alpha): the canvas size, 24 bits each, minus one
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


def _tiff(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) from the first IFD: the page OpenCV decodes."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    if big:
        (offset,) = struct.unpack(order + "Q", data[8:16])
        (count,) = struct.unpack(order + "Q", data[offset : offset + 8])
        entries, entry_size, inline = offset + 8, 20, 8
    else:
        (offset,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        entries, entry_size, inline = offset + 2, 12, 4
    found: dict[int, int] = {}
    for index in range(min(count, 4096)):
        at = entries + index * entry_size
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257) and kind in _TIFF_TYPES:
            code, size = _TIFF_TYPES[kind]
            value_at = at + 4 + inline
            (found[tag],) = struct.unpack(order + code, data[value_at : value_at + size])
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _sun_raster(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[4:12])


def _netpbm(data: bytes) -> tuple[int, int] | None:
    """P1-P6 and PFM: width and height are the first two numbers after the magic (comments: # to EOL)."""
    text = data[2:1024].decode("latin-1")
    numbers = re.findall(r"\d+", re.sub(r"#[^\n]*", " ", text))
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def _pam(data: bytes) -> tuple[int, int] | None:
    text = data[:4096].decode("latin-1").split("ENDHDR")[0]
    width, height = re.search(r"\bWIDTH\s+(\d+)", text), re.search(r"\bHEIGHT\s+(\d+)", text)
    return (int(width.group(1)), int(height.group(1))) if width and height else None


def _radiance(data: bytes) -> tuple[int, int] | None:
    """Header lines, an empty line, then the resolution: `-Y 480 +X 640` (or `+X 640 -Y 480`, rotated)."""
    match = re.search(rb"\n\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", data[:65536])
    if not match:
        return None
    first, second = int(match.group(3)), int(match.group(6))
    return (second, first) if match.group(2) == b"Y" else (first, second)


def _jp2(data: bytes) -> tuple[int, int] | None:
    """A JP2 file: the `ihdr` box (height, width) inside the `jp2h` superbox."""
    box = _find_box(data, 0, len(data), (b"jp2h", b"ihdr"))
    if box is None:
        return None
    height, width = struct.unpack(">II", data[box[0] : box[0] + 8])
    return width, height


def _j2k(data: bytes) -> tuple[int, int] | None:
    """A raw JPEG 2000 codestream: the SIZ marker right after SOC, image size minus its offset."""
    if data[2:4] != b"\xff\x51":
        return None
    xsiz, ysiz, x_offset, y_offset = struct.unpack(">IIII", data[8:24])
    return xsiz - x_offset, ysiz - y_offset


def _iso_bmff_size(data: bytes) -> tuple[int, int] | None:
    """AVIF (HEIF): the largest `ispe` property in meta/iprp/ipco (a grid's, not one tile's)."""
    meta = _find_box(data, 0, len(data), (b"meta",))
    if meta is None:
        return None
    ipco = _find_box(data, meta[0] + 4, meta[1], (b"iprp", b"ipco"))  # meta is a full box: skip version
    if ipco is None:
        return None
    sizes = []
    for payload, kind, end in _boxes(data, *ipco):
        if kind == b"ispe" and end - payload >= 12:
            sizes.append(struct.unpack(">II", data[payload + 4 : payload + 12]))
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _boxes(data: bytes, start: int, end: int):
    """(payload offset, type, box end) of each ISO box between start and end."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield pos + header, kind, min(pos + size, end)
        pos += size


def _find_box(data: bytes, start: int, end: int, path: tuple[bytes, ...]) -> tuple[int, int] | None:
    """(payload offset, end) of the box at `path` (each name a child of the one before), or None."""
    for payload, kind, box_end in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return payload, box_end
            return _find_box(data, payload, box_end, path[1:])
    return None


_READERS = (
    (b"\xff\xd8", "JPEG", jpeg_dimensions),
    (b"\x89PNG\r\n\x1a\n", "PNG", _png),
    (b"GIF87a", "GIF", _gif),
    (b"GIF89a", "GIF", _gif),
    (b"BM", "BMP", _bmp),
    (b"RIFF", "WebP", _webp),
    (b"II*\x00", "TIFF", _tiff),
    (b"MM\x00*", "TIFF", _tiff),
    (b"II+\x00", "TIFF", _tiff),
    (b"MM\x00+", "TIFF", _tiff),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", _jp2),
    (b"\xff\x4f\xff\x51", "JPEG 2000", _j2k),
    (b"#?RADIANCE", "HDR", _radiance),
    (b"#?RGBE", "HDR", _radiance),
    (b"\x59\xa6\x6a\x95", "Sun raster", _sun_raster),
    (b"P7", "PAM", _pam),
    (b"PF", "PFM", _netpbm),
    (b"Pf", "PFM", _netpbm),
    *((f"P{n}".encode(), "PNM", _netpbm) for n in range(1, 7)),
)
