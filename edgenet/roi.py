"""A region of a frame, `x,y,w,h` in pixels or in fractions of the frame, and cropping it. Pure functions.

Four numbers all within 0..1 are fractions of the frame (`0.5,0,0.5,1` is the right half); otherwise they
are whole pixels (`640,200,320,240`). A region that runs past the frame's edge is cut at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenet.errors import InputError, UsageError


@dataclass(frozen=True)
class Region:
    x: float
    y: float
    width: float
    height: float
    fractions: bool  # True: of the frame's width and height; False: pixels

    def box(self, frame_width: int, frame_height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of this frame, cut at its edges. InputError if empty."""
        x, y, w, h = self.x, self.y, self.width, self.height
        if self.fractions:
            x, w = x * frame_width, w * frame_width
            y, h = y * frame_height, h * frame_height
        left, top = max(0, round(x)), max(0, round(y))
        right, bottom = min(frame_width, round(x + w)), min(frame_height, round(y + h))
        if right <= left or bottom <= top:
            raise InputError(
                f"the region {self.text()} lies outside the {frame_width}x{frame_height} frame; "
                "give it in pixels of this frame or as fractions (0..1)"
            )
        return left, top, right, bottom

    def crop(self, image: np.ndarray) -> np.ndarray:
        """HxWxC frame -> the region's pixels (a view, not a copy)."""
        left, top, right, bottom = self.box(image.shape[1], image.shape[0])
        return image[top:bottom, left:right]

    def text(self) -> str:
        return ",".join(f"{v:g}" for v in (self.x, self.y, self.width, self.height))


def parse_region(text: str, option: str = "--roi") -> Region:
    """`x,y,w,h` -> Region. UsageError with a one-line hint when it is not four usable numbers."""
    hint = f"{option} takes x,y,w,h in pixels (640,200,320,240) or fractions of the frame (0.5,0,0.5,1)"
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{hint}, not {text!r}") from None
    if len(values) != 4 or any(not np.isfinite(v) for v in values):
        raise UsageError(f"{hint}, not {text!r}")
    x, y, w, h = values
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise UsageError(f"{hint}: x and y must be 0 or more and w and h above 0, not {text!r}")
    fractions = all(v <= 1.0 for v in values)
    if fractions and (x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9):
        raise UsageError(f"{option} {text}: as fractions of the frame, x+w and y+h must be at most 1")
    if not fractions and any(v != int(v) for v in values):
        raise UsageError(f"{hint}: pixels are whole numbers, not {text!r}")
    return Region(x, y, w, h, fractions)
