"""Frame-number-coded pictures: a frame carries its own index, readable back from a JPEG.

The index is written as ``bits`` black/white blocks in a band at the top of the picture, with
the complementary pattern in the band below it (a read is only accepted when every block and its
complement disagree, so a blurred or wrong read fails loudly instead of returning a wrong number).
Blocks are large (``width / bits`` by ``band`` pixels), so the code survives lossy video
coding, JPEG and moderate rescaling.
"""

from __future__ import annotations

import numpy as np

BITS = 16


class FrameCodeError(ValueError):
    """The picture does not carry a readable frame code."""


def draw_code(img: np.ndarray, index: int, band: int | None = None, bits: int = BITS) -> None:
    """Write ``index`` into the top ``2 * band`` rows of ``img`` (H, W, 3 uint8), in place."""
    h, w = img.shape[:2]
    band = band or max(8, h // 8)
    if not 0 <= index < 2**bits:
        raise ValueError(f"index {index} does not fit in {bits} bits")
    if 2 * band > h or w // bits < 4:
        raise ValueError(f"picture {w}x{h} too small for a {bits}-bit code")
    bw = w // bits
    for b in range(bits):
        bit = (index >> b) & 1
        img[:band, b * bw : (b + 1) * bw] = 255 * bit
        img[band : 2 * band, b * bw : (b + 1) * bw] = 255 * (1 - bit)


def read_code(img: np.ndarray, band: int | None = None, bits: int = BITS) -> int:
    """Read the index written by :func:`draw_code` (same ``band`` and ``bits``)."""
    img = np.asarray(img)
    if img.ndim == 3:
        img = img.mean(axis=2)
    h, w = img.shape[:2]
    band = band or max(8, h // 8)
    bw = w // bits
    mx, my = max(1, bw // 4), max(1, band // 4)
    value = 0
    for b in range(bits):
        x0, x1 = b * bw + mx, (b + 1) * bw - mx
        top = float(img[my : band - my, x0:x1].mean())
        bottom = float(img[band + my : 2 * band - my, x0:x1].mean())
        bit = top > 127.5
        if bit == (bottom > 127.5) or abs(top - bottom) < 96:
            raise FrameCodeError(
                f"bit {b}: block mean {top:.0f} and its complement {bottom:.0f} do not disagree"
            )
        value |= int(bit) << b
    return value
