"""python -m jaxdigits.predict on the originals' file formats: a run's predictions on its own
test split, written out as a user's files, score exactly the test accuracy it reported."""

import csv
import pathlib

import jax
import numpy as np
import pytest
from helpers_data import NEEDS_MNIST

from jaxdigits import data, defaults, predict, saved_params, trainer
from jaxdigits.data import digitsum, image_folder
from jaxdigits.runtime import compile_cache

pytestmark = [pytest.mark.slow, NEEDS_MNIST]
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(tmp_path_factory, name, seeds=(0,), decodes=None):
    cfg = defaults.from_file(ROOT / "configs" / f"{name}.py", "smoke")
    cfg.seeds, cfg.steps_per_call = seeds, 1
    cfg.decodes = decodes or cfg.decodes
    cfg.data.limit, cfg.data.test_limit = 200, 90
    workdir = tmp_path_factory.mktemp(name)
    return workdir, trainer.train_and_evaluate(cfg, workdir)


@pytest.fixture(scope="module")
def digitsum_run(tmp_path_factory):
    return _train(tmp_path_factory, "digitsum_regressor", seeds=(0, 10))


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    return _train(tmp_path_factory, "part3")


@pytest.fixture(scope="module")
def complementary_run(tmp_path_factory):
    return _train(tmp_path_factory, "part3_complementary_cnn", decodes=("argmax", "shifts"))


def _test_split(workdir):
    built = data.build(defaults.load_saved(workdir).data)
    return built.test_images, built.test_labels


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _per_seed(summary, i):
    return summary["per_seed"][i] if "per_seed" in summary else summary


def test_digit_sums_in_file_order_score_the_reported_test_accuracy(digitsum_run, tmp_path, capsys):
    workdir, summary = digitsum_run
    images, sums = _test_split(workdir)
    digitsum.save_original(tmp_path / "files", images, sums)  # data0..2 of 30 each
    for i, seed in enumerate((0, 10)):
        out = tmp_path / f"seed{seed}.csv"
        args = ["--run", str(workdir), "--data", str(tmp_path / "files"), "--out", str(out)]
        predict.main(args + ([] if i == 0 else ["--seed", str(seed)]))  # default: seed 0
        rows = _csv(out)
        assert rows[0] == ["file", "index", "prediction", "label"]
        assert [r[0] for r in rows[1:]] == ["data0.npy"] * 30 + ["data1.npy"] * 30 + [
            "data2.npy"
        ] * 30
        assert [int(r[1]) for r in rows[1:31]] == list(range(30))
        assert [int(r[3]) for r in rows[1:]] == sums.tolist()
        accuracy = np.mean([r[2] == r[3] for r in rows[1:]])
        assert accuracy == pytest.approx(_per_seed(summary, i)["test_accuracy"])
        assert f"accuracy against the lab files: {100 * accuracy:.2f} %" in capsys.readouterr().out

    for i in range(3):  # without the labels: the predictions alone
        (tmp_path / "files" / f"lab{i}.npy").unlink()
    header, rows, accuracy = predict.predict(workdir, tmp_path / "files")
    assert header == ["file", "index", "prediction"] and accuracy is None
    assert [str(r[2]) for r in rows] == [r[2] for r in _csv(tmp_path / "seed0.csv")[1:]]


def _as_folder(images, labels, path):
    names = [f"img_{i}" for i in range(len(labels))]
    image_folder.write(path, images, [str(k) for k in labels], names)
    return {f"{k}/{n}.png": int(k) for k, n in zip(labels, names, strict=True)}


def test_the_command_writes_its_programs_to_the_compilation_cache(digitsum_run, tmp_path):
    """As train and evaluate: a second prediction on the same run reads its programs back."""
    workdir, _ = digitsum_run
    images, sums = _test_split(workdir)
    digitsum.save_original(tmp_path / "files", images, sums)
    cache = tmp_path / "cache"
    args = ["--run", str(workdir), "--data", str(tmp_path / "files"), "--out", str(tmp_path / "p")]
    previous = jax.config.jax_compilation_cache_dir
    try:
        jax.clear_caches()  # earlier tests' programs in memory: compile again, into the cache
        predict.main([*args, "--compilation_cache", str(cache)])
    finally:
        compile_cache.setup(previous or "off")
    assert list(cache.glob("*-cache")), "no program written to --compilation_cache"


def test_a_naive_run_gives_argmax_and_argmin_on_an_mnist_task3_zip(naive_run, tmp_path):
    workdir, summary = naive_run
    images, labels = _test_split(workdir)
    truth = _as_folder(images, labels, tmp_path / "mnistTask3.zip")  # with a top folder
    header, rows, _ = predict.predict(workdir, tmp_path / "mnistTask3.zip")
    assert header == ["file", "prediction_argmax", "prediction_argmin"]
    assert sorted(r[0] for r in rows) == sorted(truth)
    argmax = np.mean([r[1] == truth[r[0]] for r in rows])
    argmin = np.mean([r[2] == truth[r[0]] for r in rows])
    assert argmax == pytest.approx(summary["test_accuracy"])
    assert argmin == pytest.approx(summary["test_accuracy_argmin"])
    best = predict.predict(workdir, tmp_path / "mnistTask3.zip", which="best")[1]
    assert np.mean([r[1] == truth[r[0]] for r in best]) == pytest.approx(
        summary["test_accuracy_best"]
    )


def test_a_complementary_run_gives_the_true_class_of_a_flat_folder(complementary_run, tmp_path):
    workdir, summary = complementary_run
    images, labels = _test_split(workdir)
    truth = _as_folder(images, labels, tmp_path / "byclass")
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in truth:  # the same images, no class folders: names alone
        (flat / name.replace("/", "_")).write_bytes((tmp_path / "byclass" / name).read_bytes())
    header, rows, _ = predict.predict(workdir, flat)
    assert header == ["file", "prediction_argmax", "prediction_shifts"]
    for column, key in ((1, "test_accuracy"), (2, "test_accuracy_shifts")):
        got = {r[0].replace("_", "/", 1): r[column] for r in rows}
        assert np.mean([got[n] == k for n, k in truth.items()]) == pytest.approx(
            _per_seed(summary, 0)[key]
        )


def test_bad_input_is_one_line_and_no_file(naive_run, digitsum_run, tmp_path):
    workdir, _ = naive_run
    out = tmp_path / "out.csv"
    (tmp_path / "big").mkdir()
    image_folder.write(tmp_path / "big", np.zeros((1, 30, 30), np.uint8), ["3"], ["a"])
    kept = tmp_path / "kept"  # a run's small files without its params, as report --keep
    kept.mkdir()
    (kept / "config.json").write_bytes((workdir / "config.json").read_bytes())
    cases = [
        (["--run", str(workdir), "--data", str(tmp_path / "nothing")], "no such folder or zip"),
        (["--run", str(tmp_path), "--data", str(tmp_path / "big")], "config.json: missing"),
        (["--run", str(workdir), "--data", str(tmp_path / "big")], "3/a.png: image is 30x30"),
        (["--run", str(workdir), "--data", str(tmp_path / "big"), "--seed", "5"], "not 5"),
        (["--run", str(workdir), "--data", str(tmp_path / "none.npy")], "no such folder"),
        (["--run", str(kept), "--data", str(tmp_path / "big")], "kept with --params"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as e:
            predict.main([*args, "--out", str(out)])
        assert str(e.value).startswith("error: ") and message in str(e.value), e.value
        assert "\n" not in str(e.value) and not out.exists()
    digitsum_dir = tmp_path / "sums"
    digitsum.save_original(digitsum_dir, np.zeros((3, 40, 168), np.uint8), np.zeros(3, np.int32))
    (digitsum_dir / "data1.npy").unlink()
    with pytest.raises(SystemExit, match="data1.npy"):
        predict.main(
            ["--run", str(digitsum_run[0]), "--data", str(digitsum_dir), "--out", str(out)]
        )
    assert not out.exists()


def test_a_kept_run_with_its_params_predicts_on_a_fresh_clone(naive_run, tmp_path, monkeypatch):
    """report --keep RUN --params: the small files and the params alone predict the same."""
    from jaxdigits import checkpoint
    from jaxdigits.report import build

    workdir, _ = naive_run
    images, labels = _test_split(workdir)
    _as_folder(images, labels, tmp_path / "task3")
    args = ["--kept", str(tmp_path / "kept"), "--runs", str(tmp_path / "none")]
    args += ["--out", str(tmp_path / "REPORT.md"), "--readme", ""]
    build.main([*args, "--keep", str(workdir), "--params"])
    kept = tmp_path / "kept" / workdir.name
    assert (kept / saved_params.PARAMS_DIR).is_dir() and not (kept / checkpoint.STATE_DIR).exists()
    for which in ("last", "best"):
        expected = predict.predict(workdir, tmp_path / "task3", which=which)
        assert predict.predict(kept, tmp_path / "task3", which=which) == expected

    monkeypatch.setattr(saved_params, "MAX_KEPT_PARAMS_BYTES", 1000)
    with pytest.raises(SystemExit, match="MiB a kept run may hold"):
        build.main([*args, "--keep", str(workdir), "--params"])
    assert (kept / saved_params.PARAMS_DIR).is_dir()  # the older copy is left as it was


def test_add_tests_scores_a_kept_run_as_its_own_run(digitsum_run, tmp_path, monkeypatch):
    """evaluate --add_tests on a kept run (params only) adds what the run's own params score on
    the new test set, per seed, and leaves the rest of summary.json as it was."""
    import json

    from jaxdigits import evaluate, models, scoring
    from jaxdigits.report import build

    workdir, summary = digitsum_run
    monkeypatch.setattr(saved_params, "MAX_KEPT_PARAMS_BYTES", 1 << 30)  # the regressor: 106 MiB
    args = ["--kept", str(tmp_path / "kept"), "--runs", str(tmp_path / "none")]
    args += ["--out", str(tmp_path / "REPORT.md"), "--readme", ""]
    build.main([*args, "--keep", str(workdir), "--params"])
    kept = tmp_path / "kept" / workdir.name

    added = evaluate.add_tests(kept, ["touching-4", "anywhere-3"])
    config = defaults.load_saved(workdir)
    config.data.extra_tests = ("touching-4", "anywhere-3")
    last, best, frozen = saved_params.run_params(workdir)
    expected = scoring.extra_test_accuracies(models.build(config), config, last, best, frozen)
    for i, record in enumerate(added["per_seed"]):
        assert record["test_accuracy"] == summary["per_seed"][i]["test_accuracy"]
        for key, accs in expected.items():
            assert record[key] == pytest.approx(float(accs[i]))
    assert added["test_accuracy_touching-4"] == pytest.approx(
        np.mean(expected["test_accuracy_touching-4"])
    )
    assert json.loads((kept / "summary.json").read_text()) == added
    saved = json.loads((kept / "config.json").read_text())
    assert saved["data"]["extra_tests"] == ["touching-4", "anywhere-3"]

    before = (kept / "summary.json").read_text()
    with pytest.raises(ValueError, match="'diagonal-4' is not PLACEMENT-K"):
        evaluate.add_tests(kept, ["diagonal-4"])
    with pytest.raises(ValueError, match="sum_cnn reads no single digits"):
        evaluate.add_tests(kept, ["digits"])
    assert (kept / "summary.json").read_text() == before

    # a kept run initialises another: each seed from its own params, or refused
    own = saved_params.source_params(kept, (10,))
    np.testing.assert_array_equal(jax.tree.leaves(own)[0][0], jax.tree.leaves(best)[0][1])
    with pytest.raises(ValueError, match="has 2 seeds; cannot initialise 3"):
        saved_params.source_params(kept, (1, 2, 3))


def test_a_run_starts_from_the_last_or_the_best_params_of_a_kept_run(tmp_path):
    """config.init_params: "last" takes a kept run's last params, "best" its best ones, each
    seed its own row; any other name is refused."""
    import orbax.checkpoint as ocp

    from jaxdigits import output

    kept = tmp_path / "kept"
    kept.mkdir()
    config = defaults.from_file(ROOT / "configs" / "part3_complementary_cnn.py", "smoke")
    config.seeds = (0, 10)
    (kept / output.CONFIG).write_text(config.to_json())
    rows = np.array([[1.0], [2.0]]) * np.ones((2, 3))
    tree = {"last": {"w": rows}, "best": {"w": -rows}}
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save((kept / saved_params.PARAMS_DIR).resolve(), tree)
    np.testing.assert_array_equal(saved_params.source_params(kept, (10,), "last")["w"], [[2.0] * 3])
    np.testing.assert_array_equal(saved_params.source_params(kept, (10, 0))["w"], -rows[::-1])
    with pytest.raises(ValueError, match="which='middle': use best or last"):
        saved_params.source_params(kept, (10,), "middle")
