"""A teacher's answers (jaxdigits/teacher.py): the mean over its seeds, never the complementary
label; a student trains on them through the trainer."""

import pathlib

import jax
import numpy as np
import pytest
from helpers_data import NEEDS_MNIST

from jaxdigits import data, defaults, models, saved_params, teacher, trainer
from jaxdigits.data import pipeline
from jaxdigits.report import runs
from jaxdigits.runtime import validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    cfg = defaults.from_file(ROOT / "configs" / "part3_complementary_cnn.py", "smoke")
    cfg.data.limit, cfg.data.test_limit = 300, 50
    workdir = tmp_path_factory.mktemp("teacher")
    trainer.train_and_evaluate(cfg, workdir)
    return workdir, data.build(cfg.data)


def test_answers_are_the_mean_over_seeds_never_the_wrong_label(teacher_run):
    workdir, ds = teacher_run
    images, wrong = ds.images[:40], ds.labels[:40]
    answers = teacher.labels(workdir, images, wrong)
    assert answers.shape == (40,) and answers.dtype == np.int32
    assert not np.any(answers == wrong)

    config = defaults.load_saved(workdir)
    model = models.build(config)
    last = saved_params.restore_latest(workdir)["train"]["params"]
    x = pipeline.preprocess(images, (28, 28), config.data.mean, config.data.std)
    probs = []
    for s in range(len(config.seeds)):
        one = jax.tree.map(lambda p, s=s: p[s], last)
        probs.append(jax.nn.softmax(jax.jit(model.apply)({"params": one}, x), -1))
    mean = np.mean(probs, 0)
    mean[np.arange(40), wrong] = -1
    np.testing.assert_array_equal(answers, mean.argmax(-1))
    # the padded last batch changes nothing
    np.testing.assert_allclose(
        teacher.mean_probabilities(workdir, images, batch_size=32),
        teacher.mean_probabilities(workdir, images, batch_size=40),
        rtol=1e-5,
        atol=1e-7,
    )


def test_a_student_trains_on_the_answers_and_is_reported_as_such(teacher_run, tmp_path):
    workdir, _ = teacher_run
    cfg = defaults.from_file(ROOT / "configs" / "part3_complementary_student.py", "smoke")
    cfg.teacher = str(workdir)
    cfg.data.limit, cfg.data.test_limit = 300, 50
    seen = {}
    real = teacher.labels

    def spy(*args):
        seen["labels"] = real(*args)
        return seen["labels"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(teacher, "labels", spy)
        summary = trainer.train_and_evaluate(cfg, tmp_path / "student")
    assert 0 <= summary["test_accuracy"] <= 1 and "test_accuracy_shifts" in summary
    wrong = data.build(cfg.data).labels
    assert len(seen["labels"]) == len(wrong) and not np.any(seen["labels"] == wrong)
    saved = defaults.load_saved(tmp_path / "student").to_dict()
    assert runs.group_of(saved) == "complementary"
    assert runs.loss_name(saved) == f"cross-entropy on {workdir.name}'s answers"


def test_a_teacher_needs_a_classifier_on_the_mislabeled_set_and_a_run(teacher_run, tmp_path):
    workdir, _ = teacher_run
    cfg = defaults.from_file(ROOT / "configs" / "part3_complementary_student.py")
    cfg.teacher = str(workdir)
    validate.check(cfg)
    cfg.task = "complementary"
    with pytest.raises(validate.ConfigError, match="teacher.*needs task 'classify'"):
        validate.check(cfg)
    cfg.task, cfg.teacher = "classify", str(tmp_path)
    with pytest.raises(validate.ConfigError, match="has no config.json"):
        validate.check(cfg)
