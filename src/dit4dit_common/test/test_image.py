"""Image messages to numpy and back: channel orders, padding, and refusal of malformed images."""

from types import SimpleNamespace

import cv2
from dit4dit_common.image import (
    compressed_to_rgb, depth_to_rgb, ENCODINGS, image_to_array, image_to_depth_m, image_to_rgb,
    ImageFormatError, rgb_to_image_fields)
import numpy as np
import pytest


def _rgb(h=4, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _msg(**fields):
    return SimpleNamespace(**fields)


def _plane_msg(plane, encoding, bigendian=False, pad=0):
    """Image message of an (H, W) or (H, W, C) array, rows padded with ``pad`` bytes."""
    plane = np.asarray(plane)
    raw = plane.astype(plane.dtype.newbyteorder('>' if bigendian else '<'))
    rows = raw.reshape(plane.shape[0], -1).view(np.uint8)
    rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=0xAB)
    return _msg(height=plane.shape[0], width=plane.shape[1], encoding=encoding,
                is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes())


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
    ({'encoding': 'hsv8'}, 'unsupported image encoding'),
    ({'data': b'\x00' * 10}, r'rgb8 image 5x4: data holds 10 bytes, expected step\*height'),
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


def test_unsupported_encoding_lists_every_supported_one():
    with pytest.raises(ImageFormatError) as err:
        image_to_rgb(_msg(height=1, width=1, encoding='nv12', is_bigendian=0, step=1, data=b'x'))
    assert all(name in str(err.value) for name in ENCODINGS)
    assert {'yuv422_yuy2', 'uyvy', 'yuv422', 'bayer_grbg16', '16UC1', '32FC1'} <= set(ENCODINGS)


def _yuv422(rgb, layout):
    """Pack an RGB image made of flat 2x2 blocks as 4:2:2 bytes, ``layout`` naming Y0 U Y1 V."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()
    y = i420[:h * w].reshape(h, w)
    u, v = (np.repeat(i420[h * w * k // 4:h * w * (k + 1) // 4].reshape(h // 2, w // 2), 2, 0)
            for k in (4, 5))
    planes = {'Y0': y[:, 0::2], 'U': u, 'Y1': y[:, 1::2], 'V': v}
    return np.stack([planes[name] for name in layout.split()], axis=2).reshape(h, w, 2)


@pytest.mark.parametrize('encoding, layout', [
    ('yuv422_yuy2', 'Y0 U Y1 V'), ('uyvy', 'U Y0 V Y1'), ('yuv422', 'U Y0 V Y1')])
@pytest.mark.parametrize('pad', [0, 6])
def test_yuv422_round_trip(encoding, layout, pad):
    rgb = np.repeat(np.repeat(_rgb(4, 6, seed=3), 2, axis=0), 2, axis=1)  # flat 2x2 blocks
    out = image_to_rgb(_plane_msg(_yuv422(rgb, layout), encoding, pad=pad), expected_size=(12, 8))
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_yuv422_odd_width_and_short_step_are_refused():
    with pytest.raises(ImageFormatError, match='yuv422_yuy2 .* width must be even, got 3'):
        image_to_rgb(_msg(height=2, width=3, encoding='yuv422_yuy2', is_bigendian=0, step=6,
                          data=bytes(12)))
    with pytest.raises(ImageFormatError, match=r'step 7 .* uyvy row of width 4 \(8 bytes\)'):
        image_to_rgb(_msg(height=2, width=4, encoding='uyvy', is_bigendian=0, step=7,
                          data=bytes(14)))


_QUADRANTS = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [128, 128, 128]]], np.uint8)


def _mosaic(rgb, pattern):
    """Sample an RGB image through a Bayer filter named the ROS way (rggb: R G / G B)."""
    channel = np.array(['RGB'.index(c) for c in pattern.upper()]).reshape(2, 2)
    rows, cols = np.indices(rgb.shape[:2])
    return np.take_along_axis(rgb, channel[rows % 2, cols % 2][:, :, None], axis=2)[:, :, 0]


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('bits, bigendian', [(8, False), (16, False), (16, True)])
def test_bayer_patterns_demosaic_to_the_right_colours(pattern, bits, bigendian):
    rgb = np.repeat(np.repeat(_QUADRANTS, 16, axis=0), 16, axis=1)  # 32x32, four flat colours
    raw = _mosaic(rgb.astype(np.uint16) * 257 if bits == 16 else rgb, pattern)
    out = image_to_rgb(_plane_msg(raw, f'bayer_{pattern}{bits}', bigendian, pad=4))
    for qy, qx in np.ndindex(2, 2):
        interior = out[qy * 16 + 4:qy * 16 + 12, qx * 16 + 4:qx * 16 + 12].astype(int)
        assert np.abs(interior - _QUADRANTS[qy, qx]).max() <= 2, (qy, qx)


def test_bayer16_with_wrong_data_size_names_the_encoding():
    msg = _plane_msg(np.zeros((4, 4), np.uint16), 'bayer_rggb16')
    msg.data = msg.data[:-2]
    with pytest.raises(ImageFormatError, match=r'bayer_rggb16 image 4x4: data holds 30 bytes'):
        image_to_rgb(msg)


def test_16uc1_depth_in_millimetres():
    mm = np.array([[0, 100, 500, 2500], [4500, 9000, 1234, 65535]], np.uint16)
    msg = _plane_msg(mm, '16UC1', pad=2)
    metres = image_to_depth_m(msg)
    assert metres.dtype == np.float32 and np.isnan(metres[0, 0])
    assert np.allclose(metres.ravel()[1:], mm.ravel()[1:] / 1000.0)
    grey = depth_to_rgb(msg, range_m=(0.5, 4.5), expected_size=(4, 2))
    assert grey.shape == (2, 4, 3) and np.array_equal(grey[:, :, 0], grey[:, :, 2])
    # 0 = no reading -> black; near (and nearer) -> 1, far (and farther) -> 255, linear between.
    assert grey[:, :, 0].tolist() == [[0, 1, 1, 128], [255, 255, 48, 255]]


@pytest.mark.parametrize('bigendian', [False, True])
def test_32fc1_depth_in_metres(bigendian):
    m = np.array([[0.0, np.nan, np.inf, -1.0], [1.0, 2.0, 3.0, 0.25]], np.float32)
    msg = _plane_msg(m, '32FC1', bigendian)
    metres = image_to_depth_m(msg)
    assert np.isnan(metres[0]).all() and np.array_equal(metres[1], m[1])
    assert depth_to_rgb(msg, (1.0, 3.0))[:, :, 1].tolist() == [[0, 0, 0, 0], [1, 128, 255, 1]]


def test_depth_is_not_silently_turned_into_colour():
    for encoding, dtype in (('16UC1', np.uint16), ('32FC1', np.float32)):
        with pytest.raises(ImageFormatError, match='depth encoding.*depth_to_rgb.*depth_range_m'):
            image_to_rgb(_plane_msg(np.ones((2, 2), dtype), encoding))
    with pytest.raises(ImageFormatError, match='rgb8 is not a depth encoding; .*16UC1'):
        image_to_depth_m(_msg(**rgb_to_image_fields(_rgb())))
    with pytest.raises(ValueError, match='range_m'):
        depth_to_rgb(_plane_msg(np.ones((2, 2), np.uint16), '16UC1'), range_m=(2.0, 1.0))
    mono16 = _plane_msg(np.full((2, 2), 1500, np.uint16), 'mono16')
    assert image_to_rgb(mono16)[0, 0].tolist() == [5, 5, 5]  # 1500 >> 8, as before
    assert np.allclose(image_to_depth_m(mono16), 1.5)
