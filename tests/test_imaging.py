import cv2
import numpy as np
import pytest

from edgenet.errors import InputError
from edgenet.imaging import (
    crop_box,
    decode_image,
    jpeg_dimensions,
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
