import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from edgenet.errors import InputError
from edgenet.imaging import (
    crop_box,
    decode_image,
    jpeg_dimensions,
    load_image,
    prepare,
    read_image,
    resize_frame,
    to_input_tensor,
)
from edgenet.tensors import InputSpec


def spec(dtype="uint8", scale=1 / 128, zero_point=128, value_range=None, source="quantization", size=224):
    if value_range is None:
        limits = (0, 255) if dtype == "uint8" else (-128, 127)
        value_range = tuple(scale * (q - zero_point) for q in limits)
    return InputSpec(size, size, 3, dtype, scale, zero_point, value_range, source)


@pytest.mark.parametrize(
    ("height", "width", "size", "expected"),
    [
        (341, 512, 224, (256, 384, 16, 80)),  # cat.bmp: shorter side to round(224 / 0.875) = 256
        (929, 512, 224, (464, 256, 120, 16)),  # parrot.jpg, portrait
        (1080, 1920, 128, (146, 260, 9, 66)),  # round(128 / 0.875) = 146
        (100, 100, 224, (256, 256, 16, 16)),  # upscaling a small square
    ],
)
def test_crop_box_is_shorter_side_then_centre(height, width, size, expected):
    assert crop_box(height, width, size, size) == expected


def test_crop_matches_resize_then_centre_crop_in_rgb(images):
    bgr = cv2.imread(str(images / "cat.bmp"))
    reference = cv2.resize(bgr, (384, 256), interpolation=cv2.INTER_LINEAR)[16:240, 80:304][:, :, ::-1]
    np.testing.assert_array_equal(resize_frame(bgr, spec(), "crop"), reference)


def test_stretch_is_whole_image_in_rgb(images):
    bgr = cv2.imread(str(images / "parrot.jpg"))
    reference = cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    np.testing.assert_array_equal(resize_frame(bgr, spec(), "stretch"), reference)


def test_uint8_input_takes_raw_pixels_whatever_the_quantization():
    pixels = np.arange(224 * 224 * 3, dtype=np.uint32).reshape(224, 224, 3).astype(np.uint8)
    for scale, zero_point in ((1 / 128, 128), (0.0115707, 123), (1 / 255, 0)):
        tensor = to_input_tensor(pixels, spec("uint8", scale, zero_point))
        assert tensor.dtype == np.uint8 and tensor.shape == (1, 224, 224, 3)
        np.testing.assert_array_equal(tensor[0], pixels)


def test_int8_input_is_pixel_xor_0x80():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    tensor = to_input_tensor(pixels, spec("int8", 1 / 128, 0))
    assert tensor.dtype == np.int8
    assert tensor[0].tolist() == [[[-128, 0, 127]]]


@pytest.mark.parametrize(
    ("value_range", "expected"), [((-1.0, 1.0), [-1.0, 0.0039216, 1.0]), ((0.0, 1.0), [0.0, 0.50196, 1.0])]
)
def test_float_input_maps_pixels_linearly_to_the_range(value_range, expected):
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    tensor = to_input_tensor(pixels, spec("float32", 0.0, 0, value_range, "default"))
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0, 0, 0], expected, atol=1e-5)


def test_input_range_override_requantizes_a_uint8_input():
    pixels = np.array([[[0, 255]]], dtype=np.uint8)
    # the model reads q as (q - 128) / 128 in [-1, 1); asking for [0, 1] puts pixel 0 at q = 128
    tensor = to_input_tensor(pixels, spec("uint8", 1 / 128, 128, (0.0, 1.0), "override"))
    assert tensor[0, 0, 0].tolist() == [128, 255]


def test_prepare_gives_a_contiguous_batch(images):
    tensor = prepare(read_image(str(images / "bird.bmp")), spec(size=160), "crop")
    assert tensor.shape == (1, 160, 160, 3) and tensor.flags["C_CONTIGUOUS"]


def test_jpeg_dimensions_read_from_the_header(images):
    assert jpeg_dimensions((images / "cat_1080p.jpg").read_bytes()) == (1920, 1080)
    assert jpeg_dimensions((images / "parrot.jpg").read_bytes()) == (512, 929)


def test_truncated_jpeg_is_an_input_error(images):
    data = (images / "cat_720p.jpg").read_bytes()
    with pytest.raises(InputError, match="truncated JPEG"):
        decode_image(data[: len(data) // 2])


def test_empty_and_garbage_are_input_errors():
    with pytest.raises(InputError, match="empty"):
        decode_image(b"")
    with pytest.raises(InputError, match="cannot decode"):
        decode_image(b"this is not an image, it is text\n" * 10)


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    import edgenet.imaging as imaging

    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", 100_000)  # a 640x480 photo is then "very large"
    big = np.full((480, 640, 3), 90, np.uint8)
    ok, encoded = cv2.imencode(".jpg", big)
    image = decode_image(encoded.tobytes())
    assert image.shape == (240, 320, 3)  # 307,200 px -> 1/2 scale = 76,800 px


def test_fast_decode_scales_big_jpegs_down_but_not_below_the_target(images):
    from edgenet.imaging import decode_target

    target = decode_target(spec(), "crop")
    assert target == 256 and decode_target(spec(), "stretch") == 224
    data = (images / "cat_1080p.jpg").read_bytes()
    assert decode_image(data).shape == (1080, 1920, 3)
    assert decode_image(data, min_short=target).shape == (270, 480, 3)  # 1/4: 270 >= 256, 1/8 would be 135
    assert decode_image((images / "cat_720p.jpg").read_bytes(), min_short=target).shape == (360, 640, 3)
    small = (images / "owl.jpg").read_bytes()  # 512x384: 1/2 would give 192 < 256
    assert decode_image(small, min_short=target).shape == (384, 512, 3)


# -- bad files: decompression bombs, lying headers, corrupt data ------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit RGB PNG of zeros, a few MB however large it says it is, built in milliseconds: one
    deflate block (closed by a full flush) repeated; the Adler-32 of N zero bytes is (N % 65521) << 16 | 1."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = width * 3 + 1  # a filter byte, then the pixels
    rows_per_block = max(1, (1 << 20) // row)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(row * rows_per_block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(height, rows_per_block)
    tail = deflate.compress(bytes(row * rest)) + deflate.flush()
    adler = ((row * height % 65521) << 16) | 1
    stream = b"\x78\xda" + block * blocks + tail + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 64x48 JPEG whose SOF header is rewritten to claim another size (the scan data stays small)."""
    ok, encoded = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_the_bomb_generator_makes_a_real_png():
    assert cv2.imdecode(np.frombuffer(png_bomb(300, 200), np.uint8), cv2.IMREAD_COLOR).shape == (200, 300, 3)


def test_png_bomb_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30000, 30000))  # 2.7 MB that would decode to 2.7 GB (5.2 GB peak, 20 s)
    assert bomb.stat().st_size < 4_000_000
    loaded = load_image(str(bomb))
    assert loaded.image is None and loaded.file_key == (bomb.stat().st_size, bomb.stat().st_mtime_ns)
    assert loaded.error == (
        "image too large: PNG of 30000x30000 = 900,000,000 pixels, past the cap of 200,000,000; "
        "--max-pixels raises it"
    )


@pytest.mark.parametrize("side", [20000, 60000])
def test_jpeg_header_claiming_a_huge_size_is_refused(side):
    with pytest.raises(InputError, match=f"JPEG of {side}x{side} = .* past the cap of 200,000,000"):
        decode_image(jpeg_claiming(side, side))


def test_the_pixel_cap_is_a_parameter(images):
    data = (images / "cat_720p.jpg").read_bytes()  # 1280 x 720 = 921,600 pixels
    with pytest.raises(InputError, match="1280x720 = 921,600 pixels, past the cap of 921,599"):
        decode_image(data, max_pixels=921_599)
    assert decode_image(data, max_pixels=921_600).shape == (720, 1280, 3)
    assert decode_image(png_bomb(40, 30), max_pixels=None).shape == (30, 40, 3)  # None: no cap


def test_an_image_whose_header_says_zero_pixels_is_an_error():
    with pytest.raises(InputError, match="says 0x0 pixels"):
        decode_image(png_bomb(1, 1).replace(struct.pack(">II", 1, 1), struct.pack(">II", 0, 0), 1))


def _encodable():
    formats = [".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".pbm", ".pam", ".pfm", ".sr", ".hdr"]
    formats += [".jp2", ".avif", ".gif"]
    return [ext for ext in formats if cv2.haveImageWriter("x" + ext)]


@pytest.mark.parametrize("ext", _encodable())
def test_header_size_matches_the_decoded_size_in_every_format(ext):
    from edgenet.image_headers import image_size

    pixels = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    if ext in (".pgm", ".pbm"):
        pixels = pixels[:, :, 0]
    if ext in (".hdr", ".pfm"):
        pixels = pixels.astype(np.float32) / 255
    ok, encoded = cv2.imencode(ext, pixels)
    assert ok
    found = image_size(encoded.tobytes())
    assert found is not None and found[1:] == (53, 37)
    with pytest.raises(InputError, match="53x37 = 1,961 pixels, past the cap of 1,960"):
        decode_image(encoded.tobytes(), max_pixels=1960)


def test_the_core_formats_are_all_checked():
    assert {".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm"} <= set(_encodable())


def test_bigtiff_big_endian_tiff_and_os2_bmp_headers():
    from edgenet.image_headers import image_size

    entries = struct.pack(">HHIHH", 256, 3, 1, 700, 0) + struct.pack(">HHII", 257, 4, 1, 500)
    big_endian = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + b"\x00" * 4
    assert image_size(big_endian) == ("TIFF", 700, 500)
    entry = struct.pack("<HHQQ", 256, 4, 1, 900) + struct.pack("<HHQQ", 257, 16, 1, 800)
    bigtiff = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", 2) + entry
    assert image_size(bigtiff) == ("TIFF", 900, 800)
    os2 = b"BM" + b"\x00" * 12 + struct.pack("<IHH", 12, 640, 480)
    assert image_size(os2) == ("BMP", 640, 480)


def _cut_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + data[middle + 100 :]


def test_corrupt_jpeg_data_is_an_error_and_never_reaches_stderr(images, capfd):
    data = _cut_middle((images / "cat_720p.jpg").read_bytes())  # still ends with its EOI marker
    with pytest.raises(InputError, match=r"corrupt image data \(Corrupt JPEG data: premature end of data"):
        decode_image(data)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", ["cat_1080p.jpg", "hot_dog.jpg", "kite_and_cold.jpg", "owl.jpg", "pets.jpg"])
def test_scan_data_damaged_in_the_middle_is_an_error(images, name, capfd):
    data = bytearray((images / name).read_bytes())
    middle = len(data) // 2
    data[middle:middle] = bytes(range(7, 57))  # 50 bytes inserted: the decoder loses step
    with pytest.raises(InputError, match="corrupt image data"):
        decode_image(bytes(data))
    assert "Corrupt" not in capfd.readouterr().err


def test_a_few_padding_bytes_after_a_complete_jpeg_are_accepted(images, capfd):
    data = (images / "owl.jpg").read_bytes()
    assert data.endswith(b"\xff\xd9")
    padded = data[:-2] + b"\x00\x00" + data[-2:]  # libjpeg: "2 extraneous bytes before marker 0xd9"
    np.testing.assert_array_equal(decode_image(padded), decode_image(data))
    assert capfd.readouterr().err == ""


def test_decoder_output_is_judged_line_by_line():
    from edgenet.imaging import judge_decoder_output

    text = (
        "libpng warning: iCCP: known incorrect sRGB profile\n"
        "progress 40%\n"
        "Corrupt JPEG data: bad Huffman code\n"
        "Corrupt JPEG data: premature end of data segment\n"
    )
    assert judge_decoder_output(text) == ("Corrupt JPEG data: bad Huffman code", "progress 40%\n")
    assert judge_decoder_output("Corrupt JPEG data: 1 extraneous bytes before marker 0xd9\n") == (None, "")
    corrupt, _ = judge_decoder_output("Corrupt JPEG data: 39 extraneous bytes before marker 0xd9\n")
    assert corrupt == "Corrupt JPEG data: 39 extraneous bytes before marker 0xd9"


def test_what_other_threads_print_during_a_decode_is_passed_on(images, capfd):
    import threading

    from edgenet.native_stderr import captured_stderr, pass_on

    with captured_stderr() as printed:
        writer = threading.Thread(target=lambda: os.write(2, b"a line from another thread\n"))
        writer.start()
        writer.join()
    pass_on(printed.text)
    assert capfd.readouterr().err == "a line from another thread\n"


def test_a_jpeg_cut_after_its_thumbnail_is_truncated(images):
    data = (images / "owl.jpg").read_bytes()
    half = data[: len(data) // 2]
    assert b"\xff\xd9" in half  # the EXIF thumbnails' end-of-image markers
    with pytest.raises(InputError, match="truncated JPEG"):
        decode_image(half)


def test_damaged_tiff_and_png_data_are_errors_too(capfd):
    pixels = (np.random.default_rng(0).random((100, 200, 3)) * 255).astype(np.uint8)
    lzw = [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_LZW]
    tiff = bytearray(cv2.imencode(".tif", pixels, lzw)[1].tobytes())
    tiff[1000] ^= 0xFF  # OpenCV still returns a 200x100 image, with libtiff's error logged
    with pytest.raises(InputError, match=r"corrupt image data \(Using code not yet in table\)"):
        decode_image(bytes(tiff))
    png = bytearray(cv2.imencode(".png", pixels)[1].tobytes())
    png[len(png) // 2] ^= 0xFF
    with pytest.raises(InputError, match=r"corrupt image data \(libpng error: IDAT: "):
        decode_image(bytes(png))
    assert capfd.readouterr().err == ""


def test_a_multi_line_opencv_message_is_one_reason():
    from edgenet.imaging import judge_decoder_output

    text = (
        "[ERROR:0@1.5] global grfmt_jpeg2000_openjpeg.cpp:340 readData OpenCV(5.0.0) tiles are not "
        "supported (expected: 'x'), where\n    '1' is 1\n> must be equal to\n    'y' is 194\nnext line\n"
    )
    corrupt, others = judge_decoder_output(text)
    assert corrupt.startswith("OpenCV(5.0.0) tiles are not supported") and others == "next line\n"
    imdecode_failed = "[ERROR:0@4.8] global loadsave.cpp:1355 imdecode_ imdecode_(''): can't read header: x\n"
    assert judge_decoder_output(imdecode_failed) == (None, "")
