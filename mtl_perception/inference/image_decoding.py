# Copyright 2026 The mtl_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Decode ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` pixels, without ROS.

One decoder for every reader of image messages: the nodes (rclpy messages) and the replay
scorer and plots (``rosbags`` messages) pass the fields in, so both accept exactly the same
images and reject the same malformed ones, with the same error.

Raw images: 8 bits per channel in the encodings of ``ENCODING_CHANNELS``, rows ``step`` bytes
apart (padding allowed), ``data`` exactly ``step * height`` bytes. Compressed images: JPEG or
PNG, detected from the bytes (the ``format`` string is only quoted in errors).

Both decoders take an optional pixel limit (``max_pixels``, width x height) checked before any
pixel is touched: a raw image's size comes from its ``width`` and ``height`` fields, a
compressed image's from its header (read lazily, before the pixels are decompressed). A camera
stream cannot make a reader allocate more than the limit allows, whatever a message claims.
"""

import io
import struct

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401 (registers the decoders)

__all__ = ['COMPRESSED_FORMATS', 'decode_compressed', 'decode_image', 'ENCODING_CHANNELS',
           'ImageDecodeError']

# Channels per pixel of each accepted raw encoding (all 8 bits per channel).
ENCODING_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
# PIL decoders tried for compressed data (what image_transport's compressed plugin emits).
COMPRESSED_FORMATS = ('JPEG', 'PNG')


class ImageDecodeError(ValueError):
    """
    An image message whose pixels cannot be decoded.

    ``reason`` is a short fixed key ('encoding', 'size', 'step', 'data_length', 'decode') so
    callers can count and throttle by kind of problem; the message names the details.
    """

    def __init__(self, reason: str, message: str) -> None:
        """Keep ``reason`` beside the message."""
        super().__init__(message)
        self.reason = reason


def _bytes_view(data) -> np.ndarray:
    """Return message data (bytes, array.array, memoryview, uint8 array) as a uint8 view."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 \
            else data.astype(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Raise ImageDecodeError('size') when ``width x height`` exceeds ``max_pixels``."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError('size', f'{what} of {width}x{height} = {width * height} pixels '
                               f'exceeds the limit of {max_pixels} pixels')


def decode_image(encoding: str, height: int, width: int, step: int, data, *,
                 keep_mono: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """
    Return the pixels of a raw image message.

    :param encoding, height, width, step, data: the message's fields.
    :param keep_mono: return mono8 images as ``[H, W]`` instead of RGB.
    :param max_pixels: most pixels (width x height) accepted, checked on the fields before
        ``data`` is read; None: no limit.
    :return: uint8 ``[H, W, 3]`` RGB (alpha dropped, BGR reordered), or ``[H, W]`` for
        mono8 with ``keep_mono``. For unpadded rgb8 (and mono8 kept mono) the result is a
        read-only view of the message buffer, not a copy.
    :raises ImageDecodeError: unknown encoding, zero width or height, more than
        ``max_pixels`` pixels, ``step`` shorter than a row, or ``data`` length different from
        ``step * height``.
    """
    encoding = str(encoding)
    channels = ENCODING_CHANNELS.get(encoding)
    if channels is None:
        raise ImageDecodeError('encoding', f'unsupported image encoding {encoding!r}; '
                               f'expected one of {sorted(ENCODING_CHANNELS)}')
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError('size', f'empty image: width={width}, height={height}')
    _check_pixels(width, height, max_pixels, f'{encoding} image')
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError('step', f'step {step} is smaller than width {width} x '
                               f'{channels} channels ({encoding}) = {row_bytes} bytes')
    buffer = _bytes_view(data)
    if buffer.size != step * height:
        raise ImageDecodeError('data_length', f'data holds {buffer.size} bytes but step '
                               f'{step} x height {height} = {step * height}')
    pixels = buffer.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if encoding == 'rgb8':
        return pixels
    if encoding == 'rgba8':
        return np.ascontiguousarray(pixels[..., :3])
    if encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(pixels[..., 2::-1])
    if keep_mono:
        return pixels[..., 0]
    return np.repeat(pixels, 3, axis=2)


def _open_header(raw: bytes, max_pixels: int | None) -> Image.Image:
    """
    Open JPEG/PNG data lazily: the header is parsed, no pixel is decompressed yet.

    With ``max_pixels`` the image size from the header is checked against it, and PIL's own
    process-wide limit (``Image.MAX_IMAGE_PIXELS``, which warns on stderr below twice its value)
    is bypassed so that the caller's limit alone decides. Without it, ``Image.open`` applies
    PIL's limit.
    """
    if max_pixels is None:
        return Image.open(io.BytesIO(raw), formats=COMPRESSED_FORMATS)
    for name in COMPRESSED_FORMATS:
        factory, accept = Image.OPEN[name]
        accepted = accept is None or accept(raw[:16])
        if not accepted or isinstance(accepted, str):
            continue
        try:
            image = factory(io.BytesIO(raw), '')
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # as Image.open does: not this format after all
        width, height = image.size
        try:
            _check_pixels(width, height, max_pixels, f'{name} image')
        except ImageDecodeError:
            image.close()
            raise
        return image
    raise Image.UnidentifiedImageError(f'not a {" or ".join(COMPRESSED_FORMATS)} image')


def decode_compressed(data, format_string: str = '', *, mode: str | None = 'RGB',
                      max_pixels: int | None = None) -> np.ndarray:
    """
    Decode compressed image data (JPEG or PNG).

    :param data: the message's ``data`` field.
    :param format_string: the message's ``format`` field, quoted in errors.
    :param mode: 'RGB' for uint8 ``[H, W, 3]``, 'L' for grey ``[H, W]``, None to keep grey
        images grey and make everything else RGB.
    :param max_pixels: most pixels (width x height) accepted, checked on the header before
        the pixels are decompressed; None: PIL's default limit only.
    :raises ImageDecodeError: the data is empty, larger than ``max_pixels`` (or PIL's own
        decompression-bomb limit; reason 'size'), or not a decodable JPEG/PNG image.
    """
    if mode not in (None, 'RGB', 'L'):
        raise ValueError(f"mode must be None, 'RGB' or 'L', got {mode!r}")
    raw = _bytes_view(data).tobytes()
    if not raw:
        raise ImageDecodeError('decode', f'empty compressed image (format {format_string!r})')
    try:
        with _open_header(raw, max_pixels) as decoded:
            if mode is None:
                mode = 'L' if decoded.mode in ('L', 'I;16', 'I', '1') else 'RGB'
            return np.asarray(decoded.convert(mode))
    except ImageDecodeError as error:
        raise ImageDecodeError(error.reason, f'compressed image (format {format_string!r}, '
                               f'{len(raw)} bytes): {error}') from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # The warning arrives as an exception where warnings are errors (python -W error).
        raise ImageDecodeError('size', f'compressed image (format {format_string!r}, '
                               f'{len(raw)} bytes): {error}') from error
    except (OSError, ValueError) as error:
        raise ImageDecodeError('decode', f'cannot decode compressed image (format '
                               f'{format_string!r}, {len(raw)} bytes): {error}') from error
