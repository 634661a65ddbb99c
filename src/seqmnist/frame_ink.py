"""Ink that comes from the photo's frame, not the digit: a dark border, the desk's edge, the
wedges a rotation leaves at the corners. ``preprocess._find_digit`` paints such ink over with
paper and looks for the digit again; where frame-like ink cannot be told from the digit (it joins
the strokes, or is all the ink there is) it stays, with a warning.

Ink masks are (H, W) bool at the working size, light ink on dark; connected parts are found with
SciPy's ``ndimage``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FRAME_HUG = 0.4  # ink along the edge, unbroken over 40% of a side (a rotation leaves ~50%) ...
FRAME_HUG_SHARE = 0.9  # ... and over 90% of its own extent along it ...
FRAME_BAND = 0.3  # ... as a band at most 30% deep, is frame-like; junk if no part goes deeper
FRAME_GAP = 0.1  # ... and 10% of the longer side away from any other ink
FRAME_RIM = 0.005  # junk is painted over with a rim of 0.5% of the longer side (at least 2 px)


def frame_junk(ink: np.ndarray) -> tuple[np.ndarray, bool]:
    """(frame junk (H, W) bool, whether frame-like ink that is not junk was seen).

    A part of the ink (8-connected) is frame-like when it lies along a side of the image as a
    band (``_lies_along_frame``): a dark border, the desk's edge and the wedges that a rotation
    leaves at the corners always do; a pen stroke seldom runs exactly along the edge for long.
    It is junk when all of it stays within FRAME_BAND of the shorter side from the edge and no
    other ink comes within FRAME_GAP of it. One that reaches deeper (a digit running into a
    border), or lies close to the rest (the detached base of a "1" cropped close), may be the
    digit's: only a warning can say so.
    """
    junk = np.zeros(ink.shape, bool)
    edges = (ink[0], ink[-1], ink[:, 0], ink[:, -1])
    if all(_longest_run(edge)[1] < FRAME_HUG * edge.size for edge in edges):
        return junk, False  # nearly always: a margin of paper, or strokes cut by a tight crop
    labels, _ = ndimage.label(ink, structure=np.ones((3, 3)))
    boxes = ndimage.find_objects(labels)
    shallow, doubtful = _frame_like_parts(labels, boxes)
    rest = ink & ~np.isin(labels, shallow)  # (H, W): the digit, if it is ink yet
    gap = max(1, round(FRAME_GAP * max(ink.shape)))
    for label in shallow:
        box = tuple(slice(max(0, s.start - gap), s.stop + gap) for s in boxes[label - 1])
        near = ndimage.maximum_filter(labels[box] == label, size=2 * gap + 1)
        if (near & rest[box]).any():
            doubtful = True  # beside the digit's strokes: perhaps one of them
        else:
            junk |= labels == label
    return junk, doubtful


def _frame_like_parts(labels: np.ndarray, boxes: list) -> tuple[list[int], bool]:
    """(labels of the frame-like parts that stay within FRAME_BAND of the edge, whether a
    frame-like part reaches deeper)."""
    h, w = labels.shape
    shallow, deep = [], False
    for label in np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])):
        if label == 0 or not _lies_along_frame(labels, label, boxes[label - 1]):
            continue
        box = boxes[label - 1]
        ys, xs = np.nonzero(labels[box] == label)
        ys, xs = ys + box[0].start, xs + box[1].start
        depth = np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs)).max()
        if depth <= FRAME_BAND * min(h, w):
            shallow.append(int(label))
        else:
            deep = True
    return shallow, deep


def _lies_along_frame(labels: np.ndarray, label: int, box: tuple[slice, slice]) -> bool:
    """Does part ``label`` (with bounding ``box``) lie along one side of the image as a band?

    Along that side it touches the edge without a break over at least FRAME_HUG of the side and
    over nearly all (FRAME_HUG_SHARE) of its own extent along it, and there it reaches inwards
    at most FRAME_BAND of the image (median): a thin "1" cropped close fills the width, no band.
    """
    views = (  # each side as row 0 of a view, with the part's extent along that side
        (labels, box[1]),
        (labels[::-1], box[1]),
        (labels.T, box[0]),
        (labels.T[::-1], box[0]),
    )
    for view, extent in views:
        start, run = _longest_run(view[0] == label)
        if run < FRAME_HUG * view.shape[1] or run < FRAME_HUG_SHARE * (extent.stop - extent.start):
            continue
        limit = int(FRAME_BAND * view.shape[0])
        strip = view[: limit + 1, start : start + run] == label  # (limit + 1, run)
        inward = np.where(strip.all(axis=0), limit + 1, strip.argmin(axis=0))  # (run,)
        if np.median(inward) <= limit:
            return True
    return False


def _longest_run(line: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a 1-D bool array; (0, 0) if none."""
    if not line.any():
        return 0, 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(np.int8), [0]])))
    starts, lengths = edges[::2], edges[1::2] - edges[::2]
    longest = int(lengths.argmax())
    return int(starts[longest]), int(lengths[longest])


def with_rim(junk: np.ndarray) -> np.ndarray:
    """``junk`` (H, W) bool grown by a rim (its soft edge, JPEG ringing) of FRAME_RIM."""
    rim = max(2, round(FRAME_RIM * max(junk.shape)))
    return ndimage.binary_dilation(junk, structure=np.ones((3, 3)), iterations=rim)


def paper_over(
    grey: np.ndarray, flat: np.ndarray, paper: float, painted: np.ndarray, light_paper: bool
) -> np.ndarray:
    """``grey`` (H, W) with the ``painted`` pixels replaced by the paper that the fitted surface
    puts there."""
    excess = np.where(painted, flat - paper, 0.0)  # how far above the paper, in light-ink terms
    return (grey + excess if light_paper else grey - excess).astype(np.float32)


def mostly_beside(ink: np.ndarray, painted: np.ndarray) -> bool:
    """Does most of ``ink`` (H, W) lie within FRAME_GAP of the ``painted`` pixels?"""
    gap = max(1, round(FRAME_GAP * max(ink.shape)))
    beside = ndimage.maximum_filter(painted, size=2 * gap + 1)  # (H, W)
    return int((ink & beside).sum()) > 0.5 * int(ink.sum())
