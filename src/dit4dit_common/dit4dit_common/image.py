"""
Camera images between ROS messages and numpy, validated strictly.

ROS-free: functions take any object with the fields of ``sensor_msgs/Image`` (height, width,
encoding, is_bigendian, step, data) or ``sensor_msgs/CompressedImage`` (format, data), so rclpy
messages, rosbags messages and plain test doubles all work. A malformed image raises
``ImageFormatError`` with the reason; it is never silently reshaped into something else.
"""

from dataclasses import dataclass

import numpy as np


class ImageFormatError(ValueError):
    """An image message cannot be decoded as it claims to be."""


@dataclass(frozen=True)
class _Encoding:
    channels: int
    dtype: np.dtype
    order: str  # channel order of the raw data: 'rgb', 'bgr', 'rgba', 'bgra' or 'mono'


ENCODINGS = {
    'rgb8': _Encoding(3, np.dtype(np.uint8), 'rgb'),
    'bgr8': _Encoding(3, np.dtype(np.uint8), 'bgr'),
    'rgba8': _Encoding(4, np.dtype(np.uint8), 'rgba'),
    'bgra8': _Encoding(4, np.dtype(np.uint8), 'bgra'),
    'mono8': _Encoding(1, np.dtype(np.uint8), 'mono'),
    'mono16': _Encoding(1, np.dtype(np.uint16), 'mono'),
}


def image_to_array(msg) -> np.ndarray:
    """
    Return the pixels of a ``sensor_msgs/Image`` as an (H, W, C) array in its own channel order.

    Row padding (``step`` larger than a packed row) is removed. 16-bit data is returned in native
    byte order whatever ``is_bigendian`` says.
    """
    enc = ENCODINGS.get(msg.encoding)
    if enc is None:
        raise ImageFormatError(
            f'unsupported image encoding {msg.encoding!r}; supported: {", ".join(ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'empty image: {width}x{height}')
    row_bytes = width * enc.channels * enc.dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f'step {step} is smaller than one {msg.encoding} row of width {width} '
            f'({row_bytes} bytes)')
    data = msg.data
    size = len(data)
    if size != step * height:
        raise ImageFormatError(
            f'data holds {size} bytes, expected step*height = {step}*{height} = {step * height}')
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview))
                        else data, dtype=np.uint8)
    rows = buf.reshape(height, step)[:, :row_bytes]
    dtype = enc.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, enc.channels)
    return pixels.astype(enc.dtype, copy=False)


def image_to_rgb(msg, expected_size=None) -> np.ndarray:
    """
    Return a ``sensor_msgs/Image`` as an (H, W, 3) uint8 RGB array.

    ``expected_size`` (width, height), when given, is enforced: a camera that changed resolution
    must not feed a policy trained on another one.
    """
    enc = ENCODINGS.get(msg.encoding)
    pixels = image_to_array(msg)
    if expected_size is not None and (pixels.shape[1], pixels.shape[0]) != tuple(expected_size):
        raise ImageFormatError(
            f'image is {pixels.shape[1]}x{pixels.shape[0]}, expected '
            f'{expected_size[0]}x{expected_size[1]}')
    return _to_rgb8(pixels, enc.order)


def _to_rgb8(pixels: np.ndarray, order: str) -> np.ndarray:
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if order == 'mono':
        return np.repeat(pixels, 3, axis=2)
    if order.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def compressed_to_rgb(msg, expected_size=None) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) to an (H, W, 3) uint8 RGB array."""
    import cv2  # only needed for compressed transport

    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageFormatError('compressed image has no data')
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageFormatError(f'cannot decode compressed image (format {msg.format!r})')
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    if expected_size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(expected_size):
        raise ImageFormatError(
            f'image is {rgb.shape[1]}x{rgb.shape[0]}, '
            f'expected {expected_size[0]}x{expected_size[1]}')
    return rgb


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = 'rgb8') -> dict:
    """Return the ``sensor_msgs/Image`` fields (no header) of an (H, W, 3) uint8 RGB array."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageFormatError(f'expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}')
    if encoding == 'rgb8':
        pixels = rgb
    elif encoding == 'bgr8':
        pixels = rgb[:, :, ::-1]
    else:
        raise ImageFormatError(f'can only encode rgb8 or bgr8, not {encoding!r}')
    height, width = rgb.shape[:2]
    return {
        'height': height, 'width': width, 'encoding': encoding, 'is_bigendian': 0,
        'step': width * 3, 'data': np.ascontiguousarray(pixels).tobytes(),
    }
