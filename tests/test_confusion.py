"""The networks' side of the analysis (jaxdigits/report/confusion.py): confusion entries from
fake predictions, and which run directories it takes."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxdigits import defaults
from jaxdigits.report import analysis_markdown, confusion


def test_confusion_part_with_fake_predictions(tmp_path):
    labels = np.arange(200) % 10
    naive = confusion.confusion_entries(
        labels, "naive", {"argmax": (labels + 1) % 10, "argmin": np.where(labels < 9, labels, 0)}
    )
    comp = confusion.confusion_entries(labels, "complementary", {"argmax": labels})
    assert [e["decode"] for e in naive] == ["argmax", "argmin"]
    assert naive[0]["accuracy"] == 0.0 and naive[0]["not_the_class"] == 1.0
    assert naive[0]["matrix"][3, 4] == 20 and np.trace(naive[0]["matrix"]) == 0
    assert naive[1]["accuracy"] == pytest.approx(0.9)
    assert naive[1]["matrix"][9, 0] == 20
    np.testing.assert_array_equal(comp[0]["matrix"], np.diag(np.full(10, 20)))
    runs = {"naive": ("ckpts/part3", "generated, label seed 0", 0)}
    runs["complementary"] = ("ckpts/part3_complementary", "generated, label seed 0", 0)
    text = "\n".join(analysis_markdown.confusion_section(naive, comp, runs))
    assert (
        "| naive | `ckpts/part3` | generated, label seed 0 | 0 | 200 | argmin | 90.00 % |" in text
    )
    assert "| complementary | `ckpts/part3_complementary` |" in text
    assert "100.00 % of the test images are predicted as a class they are not" in text
    confusion.plot_entries(tmp_path / "c.png", naive)
    with Image.open(tmp_path / "c.png") as img:
        assert img.format == "PNG"
    assert analysis_markdown.confusion_section([], [], {}) == []


def test_a_student_of_a_complementary_run_counts_as_complementary(tmp_path):
    configs = pathlib.Path(__file__).resolve().parents[1] / "configs"
    for name in ("part3_complementary_student", "part3"):
        (tmp_path / name).mkdir()
        config = defaults.from_file(configs / f"{name}.py")
        (tmp_path / name / "config.json").write_text(config.to_json())
    assert confusion.run_config(tmp_path / "part3_complementary_student", "complementary").teacher
    with pytest.raises(ValueError, match="not 'complementary'"):  # no teacher: a naive run
        confusion.run_config(tmp_path / "part3", "complementary")
