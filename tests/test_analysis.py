"""The mislabeled-set analysis: transition matrix, uniformity, pixel matching, the command.

No network is trained here; the networks' part is in test_confusion.py.
"""

import numpy as np
import pytest
from helpers_data import mnist_dir
from PIL import Image

from jaxdigits.data import image_folder, mislabeled, mnist
from jaxdigits.report import analysis, analysis_markdown

N_MNIST = 50  # MNIST train images in the generated folder, plus one of noise


def test_transition_matrix_counts_pairs_and_skips_unknown_classes():
    true = np.array([0, 0, 0, 1, 1, 2, -1, 2])
    folder = np.array([1, 1, 2, 0, 1, 2, 0, 0])
    m = analysis.transition_matrix(true, folder, k=3)
    np.testing.assert_array_equal(m, [[0, 2, 1], [1, 1, 0], [1, 0, 1]])
    np.testing.assert_allclose(analysis.row_shares(m)[0], [0, 2 / 3, 1 / 3])


def test_uniformity_of_uniform_and_biased_rows():
    uniform = np.full((10, 10), 90) - np.diag(np.full(10, 90))  # 90 per wrong class
    for r in analysis.uniformity(uniform):
        assert r["images"] == 810 and r["right"] == 0
        assert r["min_share"] == r["max_share"] == pytest.approx(1 / 9)
        assert r["chi2"] == 0.0
        assert r["p"] == pytest.approx(1.0)
    biased = uniform.copy()
    biased[3, 4] += 300  # class 3 labelled 4 far too often
    biased[5, 5] = 7  # seven labels of class 5 are right
    rows = analysis.uniformity(biased)
    assert rows[3]["max_share"] == pytest.approx(390 / 1110)
    assert rows[3]["min_share"] == pytest.approx(90 / 1110)
    expected = 1110 / 9
    chi2 = ((390 - expected) ** 2 + 8 * (90 - expected) ** 2) / expected
    assert rows[3]["chi2"] == pytest.approx(chi2)
    assert rows[3]["p"] < 1e-6
    assert rows[5]["right"] == 7 and rows[5]["chi2"] == 0.0  # the diagonal is not in the test
    assert rows[5]["max_share"] == pytest.approx(90 / 817)
    empty = analysis.uniformity(np.zeros((10, 10), np.int64))[0]
    assert empty["images"] == 0 and np.isnan(empty["chi2"]) and empty["p"] is None


def test_match_pixels_on_a_synthetic_reference():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    reference[4] = reference[0]  # a duplicate with another label: ambiguous
    reference[5] = reference[1]  # a duplicate with the same label: still matched
    ref_labels = np.array([3, 7, 2, 9, 5, 7])
    noise = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    images = np.stack([reference[1], reference[2], reference[0], noise, reference[2]])
    true, stats = analysis.match_pixels(images, reference, ref_labels)
    np.testing.assert_array_equal(true, [7, 2, -1, -1, 2])
    assert stats == {
        "images": 5,
        "matched": 3,
        "unmatched": 1,
        "ambiguous": 1,
        "distinct_sources": 2,  # reference[2] appears twice
    }
    # images of another size (re-encoded, resized) cannot match: reported, not guessed
    true, stats = analysis.match_pixels(np.zeros((2, 5, 5), np.uint8), reference, ref_labels)
    np.testing.assert_array_equal(true, [-1, -1])
    assert stats["unmatched"] == 2 and stats["matched"] == 0


def test_pick_samples_per_folder():
    folders = np.array([0, 1, 1, 1, 2, 0, 1])
    picks = analysis.pick_samples(folders, 2, k=4)
    assert picks.shape == (4, 2)
    assert set(picks[0]) == {0, 5}
    assert set(picks[1]) <= {1, 2, 3, 6} and len(set(picks[1])) == 2
    np.testing.assert_array_equal(picks[2], [4, -1])
    np.testing.assert_array_equal(picks[3], [-1, -1])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A mnistTask3-like folder: 50 MNIST train images in complementary folders, plus noise.

    Returns (folder, the true classes in load_original's order, -1 for the noise).
    """
    images, labels = mnist.load("train", str(mnist_dir()))
    images, labels = images[:N_MNIST], labels[:N_MNIST]
    folders = mislabeled.complementary_labels(labels, seed=0)
    assert set(folders.tolist()) == set(range(10))  # load_original needs every folder
    noise = np.random.default_rng(1).integers(0, 256, (1, 28, 28), dtype=np.uint8)
    images = np.concatenate([images, noise])
    folders = np.append(folders, 3)
    true = np.append(labels, -1)
    names = [f"{i:05d}" for i in range(len(images))]
    path = tmp_path_factory.mktemp("analysis") / "mnistTask3"
    image_folder.write(path, images, [str(k) for k in folders], names)
    order = sorted(range(len(images)), key=lambda i: (folders[i], i))  # the reader's order
    return path, true[order], folders[order]


def test_match_pixels_recovers_mnist_labels_of_a_folder(generated):
    path, expected, expected_folders = generated
    images, folders = mislabeled.load_original(str(path))
    np.testing.assert_array_equal(folders, expected_folders)
    reference, ref_labels = mnist.load("train", str(mnist_dir()))
    true, stats = analysis.match_pixels(images, reference, ref_labels)
    np.testing.assert_array_equal(true, expected)
    assert stats == {
        "images": N_MNIST + 1,
        "matched": N_MNIST,
        "unmatched": 1,
        "ambiguous": 0,
        "distinct_sources": N_MNIST,
    }
    m = analysis.transition_matrix(true, folders)
    assert m.sum() == N_MNIST and np.trace(m) == 0


def test_command_on_a_folder_writes_the_report(generated, tmp_path, capsys):
    path, expected, folders = generated
    out = tmp_path / "report"
    analysis.main(["--data", str(path), "--out", str(out), "--samples", "2"])
    assert f"wrote {out / analysis.MARKDOWN}" in capsys.readouterr().out
    for name in (analysis.TRANSITION_PNG, analysis.SAMPLES_PNG):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 100
    assert not (out / analysis.NAIVE_PNG).exists()  # no run directories given
    text = (out / analysis.MARKDOWN).read_text()
    assert str(path) in text
    assert "- matched no MNIST train image: 1" in text
    assert f"- matched one MNIST train image (or identical ones of one label): {N_MNIST}" in text
    assert f"]({analysis.TRANSITION_PNG})" in text and f"]({analysis.SAMPLES_PNG})" in text
    m = analysis.transition_matrix(expected, folders)
    for lines in analysis_markdown.matrix_table(m):
        assert lines in text
    assert "| true \\ folder | 0 | 1 |" in text
    assert "argmin" in text  # the explanation


def test_command_with_a_bad_path_exits_with_one_line(tmp_path):
    missing = tmp_path / "no_such_set.zip"
    with pytest.raises(SystemExit) as info:
        analysis.main(["--data", str(missing), "--out", str(tmp_path / "out")])
    message = str(info.value.code)
    assert message.startswith("error: ") and str(missing) in message and "\n" not in message
    with pytest.raises(SystemExit) as info:  # not a run directory: refused before any work
        analysis.main(["--naive", str(tmp_path), "--out", str(tmp_path / "out")])
    message = str(info.value.code)
    assert str(tmp_path) in message and "config.json" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
