import numpy as np

from edgenet.tasks.classification import OutputSpec, predictions, scores_from_output, top_k


def test_dequantize_uint8_probabilities():
    spec = OutputSpec(4, "uint8", 1 / 256, 0, True)
    scores = scores_from_output(np.array([0, 128, 64, 255], np.uint8), spec)
    np.testing.assert_allclose(scores, [0, 0.5, 0.25, 255 / 256])


def test_logits_get_a_softmax():
    spec = OutputSpec(3, "float32", 0.0, 0, False)
    scores = scores_from_output(np.array([1.0, 2.0, 3.0], np.float32), spec)
    np.testing.assert_allclose(scores.sum(), 1.0, rtol=1e-6)
    assert scores.argmax() == 2 and abs(scores[2] - 0.66524) < 1e-4


def test_int8_logits_are_dequantized_before_softmax():
    spec = OutputSpec(2, "int8", 0.05, -27, False)
    scores = scores_from_output(np.array([127, 107], np.int8), spec)
    np.testing.assert_allclose(scores, np.exp([7.7, 6.7]) / np.exp([7.7, 6.7]).sum(), rtol=1e-5)


def test_ties_go_to_the_lower_index():
    assert [i for i, _ in top_k(np.array([0.1, 0.4, 0.4, 0.05, 0.4]), 4)] == [1, 2, 4, 0]


def test_threshold_and_k():
    assert top_k(np.array([0.6, 0.3, 0.1]), 5, threshold=0.2) == [(0, 0.6), (1, 0.3)]
    assert top_k(np.array([0.6, 0.3, 0.1]), 1) == [(0, 0.6)]


def test_classes_scoring_zero_never_pad_the_top_k():
    assert top_k(np.array([0.0, 0.9, 0.0, 0.1, 0.0]), 5) == [(1, 0.9), (3, 0.1)]
    assert top_k(np.zeros(4), 3) == []


def test_predictions_carry_labels():
    spec = OutputSpec(3, "uint8", 1 / 256, 0, True)
    top = predictions(np.array([10, 200, 40], np.uint8), spec, ["background", "cat", "dog"], k=2)
    assert [(p.index, p.label) for p in top] == [(1, "cat"), (2, "dog")]
    assert top[0].to_dict() == {"index": 1, "label": "cat", "score": 0.78125}
