"""The instruction check: scenes are grouped right and a choice is scored against the others."""

from dit4dit_train.evaluate_instruction import choice_accuracy, group_scenes
import numpy as np


def _frame(level):
    return np.full((8, 8, 3), level, np.uint8)


def test_scenes_are_consecutive_episodes_with_one_first_frame_and_distinct_instructions():
    frames = [_frame(v) for v in (10, 12, 9, 60, 61, 100, 100, 100, 140)]
    texts = ['red', 'green', 'blue', 'red', 'green', 'red', 'red', 'blue', 'red']
    # 60/61 is a new scene (far from 10); the repeated 'red' at 100 starts another; 140 is alone.
    assert group_scenes(frames, texts, tolerance=6.0) == [[0, 1, 2], [3, 4], [6, 7]]
    assert group_scenes(frames[:3], texts[:3], tolerance=1.0) == []


def test_choice_is_right_only_when_nearest_to_its_own_demonstration():
    demo = np.stack([np.full((4, 2), v) for v in (-1.0, 0.0, 1.0)])
    right, spread = choice_accuracy(demo + 0.1, demo)
    assert right == 3 and abs(spread - 1.0) < 1e-9
    blind = np.stack([demo[0]] * 3)          # the same chunk whatever the instruction
    right, spread = choice_accuracy(blind, demo)
    assert right == 1 and spread == 0.0
    swapped = demo[[1, 0, 2]]
    assert choice_accuracy(swapped, demo)[0] == 1
