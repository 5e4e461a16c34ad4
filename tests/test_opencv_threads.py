"""OpenCV's process-wide thread count: set once for overlapping users, restored by the last."""

from __future__ import annotations

import cv2

from pixpack.opencv_threads import single_threaded_opencv


def test_overlapping_users_restore_only_at_the_end() -> None:
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        packing = single_threaded_opencv()
        loading = single_threaded_opencv()
        packing.__enter__()
        loading.__enter__()
        assert cv2.getNumThreads() == 1
        packing.__exit__(None, None, None)  # the pack finishes while the loader runs
        assert cv2.getNumThreads() == 1
        loading.__exit__(None, None, None)
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_restored_after_an_exception() -> None:
    before = cv2.getNumThreads()
    try:
        with single_threaded_opencv():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert cv2.getNumThreads() == before
