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
    channels: int  # values per pixel in the raw data (2 for packed 4:2:2: one Y and U or V)
    dtype: np.dtype
    # 'rgb', 'bgr', 'rgba', 'bgra', 'mono', 'yuv422', 'bayer' or 'depth' (refused by image_to_rgb)
    order: str
    cv2_code: str = ''  # name of the cv2.COLOR_* conversion to RGB for 'yuv422' and 'bayer'
    units_per_m: float = 0.0  # non-zero for encodings image_to_depth_m accepts


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
# ROS names a Bayer pattern by its top-left 2x2 block (rggb: R G R G..., G B G B...), OpenCV by
# the second and third pixels of the second row, so the names differ; test_image.py checks this.
_BAYER_CV2 = {'rggb': 'BG', 'bggr': 'RG', 'gbrg': 'GR', 'grbg': 'GB'}

ENCODINGS = {
    'rgb8': _Encoding(3, _U8, 'rgb'),
    'bgr8': _Encoding(3, _U8, 'bgr'),
    'rgba8': _Encoding(4, _U8, 'rgba'),
    'bgra8': _Encoding(4, _U8, 'bgra'),
    'mono8': _Encoding(1, _U8, 'mono'),
    'mono16': _Encoding(1, _U16, 'mono', units_per_m=1000.0),  # also read as depth in mm
    'yuv422_yuy2': _Encoding(2, _U8, 'yuv422', 'COLOR_YUV2RGB_YUY2'),  # Y0 U Y1 V
    'uyvy': _Encoding(2, _U8, 'yuv422', 'COLOR_YUV2RGB_UYVY'),  # U Y0 V Y1
    'yuv422': _Encoding(2, _U8, 'yuv422', 'COLOR_YUV2RGB_UYVY'),  # ROS alias of uyvy
    **{f'bayer_{ros}{bits}': _Encoding(1, dtype, 'bayer', f'COLOR_Bayer{cv}2RGB')
       for bits, dtype in ((8, _U8), (16, _U16)) for ros, cv in _BAYER_CV2.items()},
    '16UC1': _Encoding(1, _U16, 'depth', units_per_m=1000.0),  # depth in millimetres
    '32FC1': _Encoding(1, np.dtype(np.float32), 'depth', units_per_m=1.0),  # depth in metres
}
"""Every encoding these functions accept; errors about an unsupported one list them all."""


def _encoding(name) -> _Encoding:
    enc = ENCODINGS.get(name)
    if enc is None:
        raise ImageFormatError(
            f'unsupported image encoding {name!r}; supported: {", ".join(ENCODINGS)}')
    return enc


def _check_size(shape, expected_size) -> None:
    if expected_size is not None and (shape[1], shape[0]) != tuple(expected_size):
        raise ImageFormatError(
            f'image is {shape[1]}x{shape[0]}, expected {expected_size[0]}x{expected_size[1]}')


def image_to_array(msg) -> np.ndarray:
    """
    Return the pixels of a ``sensor_msgs/Image`` as an (H, W, C) array in its own channel order.

    Row padding (``step`` larger than a packed row) is removed. Multi-byte data is returned in
    native byte order whatever ``is_bigendian`` says. Packed 4:2:2 YUV comes back as (H, W, 2),
    Bayer and depth as (H, W, 1), all still undecoded.
    """
    enc = _encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'empty image: {width}x{height}')
    if enc.order == 'yuv422' and width % 2:
        raise ImageFormatError(
            f'{msg.encoding} packs pixel pairs (4:2:2), so the width must be even, got {width}')
    row_bytes = width * enc.channels * enc.dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f'step {step} is smaller than one {msg.encoding} row of width {width} '
            f'({row_bytes} bytes)')
    data = msg.data
    size = len(data)
    if size != step * height:
        raise ImageFormatError(
            f'{msg.encoding} image {width}x{height}: data holds {size} bytes, '
            f'expected step*height = {step}*{height} = {step * height}')
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
    must not feed a policy trained on another one. Depth encodings are refused: they need a
    depth range, see ``depth_to_rgb``.
    """
    enc = _encoding(msg.encoding)
    if enc.order == 'depth':
        raise ImageFormatError(
            f'{msg.encoding} is a depth encoding, not a colour image: convert it with '
            'depth_to_rgb(msg, range_m) (feature-map key depth_range_m)')
    pixels = image_to_array(msg)
    _check_size(pixels.shape, expected_size)
    return _to_rgb8(pixels, enc)


def _to_rgb8(pixels: np.ndarray, enc: _Encoding) -> np.ndarray:
    if enc.cv2_code:
        import cv2  # only needed for YUV and Bayer cameras

        # Bayer: demosaic first, at full depth, and reduce 16 bits to 8 (>> 8) afterwards.
        pixels = cv2.cvtColor(pixels if enc.order == 'yuv422' else pixels[:, :, 0],
                              getattr(cv2, enc.cv2_code))
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if enc.order == 'mono':
        return np.repeat(pixels, 3, axis=2)
    if enc.order.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_depth_m(msg) -> np.ndarray:
    """
    Return a depth image as a float32 (H, W) array in metres.

    16UC1 and mono16 hold millimetres, 32FC1 metres. Pixels without a reading (0, negative or
    non-finite) are NaN.
    """
    enc = _encoding(msg.encoding)
    if not enc.units_per_m:
        depth = [name for name, e in ENCODINGS.items() if e.units_per_m]
        raise ImageFormatError(
            f'{msg.encoding} is not a depth encoding; depth encodings: {", ".join(depth)}')
    depth = image_to_array(msg)[:, :, 0].astype(np.float32) / np.float32(enc.units_per_m)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def depth_to_rgb(msg, range_m, expected_size=None) -> np.ndarray:
    """
    Return a depth image as an (H, W, 3) uint8 grey image, linear in depth over ``range_m``.

    ``range_m`` = (near, far) in metres. Depths are clipped to it; near maps to grey 1 and far
    to 255, so that 0 (black) only ever means no reading (0, NaN or inf in the message).
    """
    near, far = (float(v) for v in range_m)
    if not 0.0 <= near < far < np.inf:
        raise ValueError(f'range_m must be (near, far) in metres with 0 <= near < far, '
                         f'got {tuple(range_m)}')
    depth = image_to_depth_m(msg)
    _check_size(depth.shape, expected_size)
    grey = np.zeros(depth.shape, np.uint8)
    valid = ~np.isnan(depth)
    grey[valid] = 1 + np.rint((np.clip(depth[valid], near, far) - near) * (254 / (far - near)))
    return np.repeat(grey[:, :, None], 3, axis=2)


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
    _check_size(rgb.shape, expected_size)
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
