"""Image messages to numpy and back: channel orders, padding, and refusal of malformed images."""

from types import SimpleNamespace

import cv2
from dit4dit_common.image import (
    compressed_to_rgb, image_to_array, image_to_rgb, ImageFormatError, rgb_to_image_fields)
import numpy as np
import pytest


def _rgb(h=4, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _msg(**fields):
    return SimpleNamespace(**fields)


def test_rgb8_round_trip():
    rgb = _rgb()
    assert np.array_equal(image_to_rgb(_msg(**rgb_to_image_fields(rgb))), rgb)


def test_bgr8_is_swapped_to_rgb():
    rgb = _rgb()
    fields = rgb_to_image_fields(rgb, encoding='bgr8')
    assert np.array_equal(image_to_array(_msg(**fields)), rgb[:, :, ::-1])
    assert np.array_equal(image_to_rgb(_msg(**fields)), rgb)


def test_row_padding_is_removed():
    rgb = _rgb(3, 2)
    padded = np.zeros((3, 2 * 3 + 4), np.uint8)
    padded[:, :6] = rgb.reshape(3, 6)
    msg = _msg(height=3, width=2, encoding='rgb8', is_bigendian=0, step=10, data=padded.tobytes())
    assert np.array_equal(image_to_rgb(msg), rgb)


def test_mono8_and_bigendian_mono16():
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = _msg(height=3, width=4, encoding='mono8', is_bigendian=0, step=4, data=mono.tobytes())
    out = image_to_rgb(msg)
    assert out.shape == (3, 4, 3) and np.array_equal(out[:, :, 1], mono)
    deep = (np.arange(12, dtype=np.uint16) * 1000).reshape(3, 4)
    msg16 = _msg(height=3, width=4, encoding='mono16', is_bigendian=1, step=8,
                 data=deep.astype('>u2').tobytes())
    assert np.array_equal(image_to_array(msg16)[:, :, 0], deep)


@pytest.mark.parametrize('change, reason', [
    ({'encoding': '32FC1'}, 'unsupported image encoding'),
    ({'data': b'\x00' * 10}, r'expected step\*height'),
    ({'step': 3}, 'smaller than one rgb8 row'),
    ({'height': 0}, 'empty image'),
])
def test_malformed_images_are_refused_with_a_reason(change, reason):
    fields = rgb_to_image_fields(_rgb())
    fields.update(change)
    with pytest.raises(ImageFormatError, match=reason):
        image_to_rgb(_msg(**fields))


def test_unexpected_resolution_is_refused():
    with pytest.raises(ImageFormatError, match='expected 640x480'):
        image_to_rgb(_msg(**rgb_to_image_fields(_rgb())), expected_size=(640, 480))


def test_compressed_png_and_garbage():
    rgb = _rgb(8, 6)
    ok, png = cv2.imencode('.png', rgb[:, :, ::-1])
    assert ok
    assert np.array_equal(compressed_to_rgb(_msg(format='png', data=png.tobytes())), rgb)
    with pytest.raises(ImageFormatError, match='cannot decode'):
        compressed_to_rgb(_msg(format='jpeg', data=b'not an image'))
    with pytest.raises(ImageFormatError, match='no data'):
        compressed_to_rgb(_msg(format='jpeg', data=b''))


def test_real_sensor_msgs_image():
    image_cls = pytest.importorskip('sensor_msgs.msg').Image
    rgb = _rgb(6, 7)
    msg = image_cls(**rgb_to_image_fields(rgb))
    assert np.array_equal(image_to_rgb(msg), rgb)
