"""The pieces behind the configs that go beyond the originals: placement-free digit-sum
network and test data, random shifts, and smoke runs of the new configs."""

import functools
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_data import REPO_ROOT, mnist_dir

from jaxdigits import data as jdata
from jaxdigits import defaults, models, trainer
from jaxdigits.data import digitsum, pipeline
from jaxdigits.models import sum_centres, sum_columns

# --- the sum of independent column values ----------------------------------------------------


def _brute_force_sum(p, num_sums):
    """P(sum) of independent values with distributions p [C, V], by enumeration."""
    dist = np.zeros(1)
    dist[0] = 1.0
    for col in p:
        dist = np.convolve(dist, col)
    out = np.pad(dist, (0, max(0, num_sums - len(dist))))[:num_sums]
    out[-1] += dist[num_sums:].sum()  # the last entry collects larger sums
    return out


@pytest.mark.slow
@pytest.mark.parametrize("num_sums", [5, 12, 40])
def test_sum_log_probs_is_the_convolution_of_the_columns(num_sums):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(2, 5))  # 2 examples, 5 columns, values 0..3
    got = np.exp(sum_columns.sum_log_probs(jnp.log(jnp.asarray(p, jnp.float32)), num_sums))
    for b in range(2):
        np.testing.assert_allclose(got[b], _brute_force_sum(p[b], num_sums), atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_sum_log_probs_gradient_is_finite_for_certain_columns():
    log_p = jnp.log(jnp.asarray([[[1.0, 0, 0], [0, 0, 1.0]]]) + 1e-38)
    grad = jax.grad(lambda lp: sum_columns.sum_log_probs(lp, 6)[0, 2])(log_p)
    assert np.all(np.isfinite(grad))


@functools.cache
def _canvas_model():
    """(apply, params) of sum_columns; apply jitted (op by op it takes seconds a call)."""
    model = models.get("sum_columns", num_classes=46)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 40, 168, 1)))["params"]
    return jax.jit(model.apply), params


@pytest.mark.slow
def test_sum_columns_reads_a_canvas_the_same_wherever_its_content_sits():
    """Moving the content across by a multiple of the stride (8 px) moves the features by
    whole columns: the sum's distribution is unchanged (up to the order of float additions).
    Down, the 40 px canvas is about one receptive field high, so a shift changes what the
    border rows see: there the network relies on having seen every offset in training."""
    apply, params = _canvas_model()
    rng = np.random.default_rng(1)
    x = np.zeros((1, 40, 168, 1), np.float32)
    x[0, 4:24, 40:100, 0] = rng.random((20, 60))
    out = apply({"params": params}, jnp.asarray(x))
    for shift in (24, -16, 8):
        moved = jnp.asarray(np.roll(x, shift, axis=2))
        np.testing.assert_allclose(apply({"params": params}, moved), out, atol=1e-4)


@pytest.mark.slow
def test_sum_columns_outputs_a_distribution_over_sums():
    apply, params = _canvas_model()
    x = jax.random.uniform(jax.random.PRNGKey(2), (3, 40, 168, 1))
    out = apply({"params": params}, x)
    assert out.shape == (3, 46)
    np.testing.assert_allclose(jnp.exp(out).sum(-1), 1.0, rtol=1e-5)
    # it starts near the sums of the data (expected ~18), not at 21 columns of uniform digits
    expected = (jnp.exp(out) * jnp.arange(46)).sum(-1)
    assert np.all((expected > 5) & (expected < 35))


@pytest.mark.slow
def test_sum_slots_reads_each_quarter_on_its_own_into_a_distribution_over_sums():
    model = models.get("sum_slots", num_classes=46)
    x = jax.random.uniform(jax.random.PRNGKey(3), (2, 40, 168, 1))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    digits = jax.jit(functools.partial(model.apply, method="digits"))
    out = jax.jit(model.apply)({"params": params}, x)
    assert out.shape == (2, 46)
    np.testing.assert_allclose(jnp.exp(out).sum(-1), 1.0, rtol=1e-5)
    # four digits of 0..9: no mass on sums above 36
    assert float(jnp.exp(out[:, 37:]).max()) < 1e-6
    before = digits({"params": params}, x)
    assert before.shape == (2, 4, 10)
    # new content in the third quarter changes that slot's reading and no other
    after = digits({"params": params}, x.at[:, :, 84:126].set(0.0))
    changed = np.abs(np.asarray(after - before)).max(axis=(0, 2)) > 1e-6
    np.testing.assert_array_equal(changed, [False, False, True, False])
    with pytest.raises(ValueError, match="width 170 is not a multiple of slots=4"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((1, 40, 170, 1)))


def test_the_test_sets_digits_add_up_to_its_sums():
    """The per-digit truth behind digit_accuracy is the test set build() makes, digit by
    digit: same canvases, and the digits of each add up to its label."""
    cfg = defaults.from_file(REPO_ROOT / "configs" / "digitsum_slots.py", "smoke").data
    cfg.mnist_dir, cfg.test_size, cfg.test_limit = str(mnist_dir()), 60, 40
    images, digits = jdata.digitsum_test_digits(cfg)
    built = jdata.build(cfg)
    np.testing.assert_array_equal(images, built.test_images)
    assert digits.shape == (40, 4) and digits.min() >= 0 and digits.max() <= 9
    np.testing.assert_array_equal(digits.sum(1), built.test_labels)


def _brute_force_centres(score, p, max_digits, num_sums, spacing):
    """(count, sum) weights of centre sets at least `spacing` apart, by enumeration."""
    n_cols = len(score)
    out = np.zeros((max_digits + 1, num_sums))
    for n in range(max_digits + 1):
        for cols in itertools.combinations(range(n_cols), n):
            if any(b - a < spacing for a, b in itertools.pairwise(cols)):
                continue
            dist = np.ones(1)
            for t in cols:
                dist = np.convolve(dist, p[t])
            out[n, : len(dist)] += np.exp(score[list(cols)].sum()) * dist
    return out


@pytest.mark.parametrize("spacing", [1, 2, 3])
def test_centre_sums_adds_up_every_set_of_centres(spacing):
    rng = np.random.default_rng(spacing)
    score, p = rng.normal(size=(2, 7)), rng.dirichlet(np.ones(3), size=(2, 7))  # digits 0..2
    got = centre_sums_jit(jnp.asarray(score, jnp.float32), jnp.log(jnp.asarray(p, jnp.float32)))
    for b in range(2):
        want = _brute_force_centres(score[b], p[b], 3, 7, spacing)
        np.testing.assert_allclose(np.exp(got[spacing - 1][b]), want, rtol=2e-5, atol=1e-9)
    with pytest.raises(ValueError, match="7 sums cannot hold 4 digits"):
        sum_centres.centre_sums(jnp.zeros((1, 7)), jnp.zeros((1, 7, 3)), 4, 7, 1)


def centre_sums_jit(score, log_p):
    """centre_sums at spacings 1, 2, 3, three digits at most, sums 0..6."""
    run = jax.jit(sum_centres.centre_sums, static_argnums=(2, 3, 4))
    return [run(score, log_p, 3, 7, s) for s in (1, 2, 3)]


@pytest.mark.slow
def test_sum_centres_reads_a_distribution_over_sums_and_trains_on_sum_and_count():
    model = models.get("sum_centres", num_classes=47)
    rng = np.random.default_rng(4)
    x = np.zeros((1, 40, 168, 1), np.float32)
    x[0, 6:30, 30:110, 0] = rng.random((24, 80))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(x))["params"]
    apply = jax.jit(model.apply, static_argnames="train")
    out = apply({"params": params}, jnp.asarray(x))
    assert out.shape == (1, 47)
    np.testing.assert_allclose(jnp.exp(out).sum(-1), 1.0, rtol=1e-5)
    assert float(jnp.exp(out[0, -1])) == 0.0  # "another count" is for training only
    train = apply(
        {"params": params}, jnp.asarray(x), train=True, rngs={"dropout": jax.random.PRNGKey(1)}
    )
    np.testing.assert_allclose(jnp.exp(train).sum(-1), 1.0, rtol=1e-5)
    # four digits sum to 36 at most: with the count of four, no mass above
    assert float(jnp.exp(train[0, 37:46]).max()) < 1e-6 < float(jnp.exp(train[0, -1]))


@pytest.mark.parametrize("spacing", [1, 3])
def test_best_centres_is_the_heaviest_set_of_spaced_columns(spacing):
    weights = np.random.default_rng(spacing).normal(size=(5, 12)).astype(np.float32)
    got = np.asarray(sum_centres.best_centres(jnp.asarray(weights), 3, spacing))
    for w, cols in zip(weights, got, strict=True):
        sets = [c for c in itertools.combinations(range(12), 3) if min(np.diff(c)) >= spacing]
        assert tuple(cols) == max(sets, key=lambda c, w=w: w[list(c)].sum())
    with pytest.raises(ValueError, match="do not fit"):
        sum_centres.best_centres(jnp.zeros((1, 5)), 3, 3)


@pytest.mark.slow
def test_sum_centres_reads_the_digits_at_its_most_likely_centres():
    model = models.get("sum_centres", num_classes=47)
    x = jnp.asarray(np.random.default_rng(5).random((2, 40, 168, 1)), jnp.float32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
    digits = jax.jit(functools.partial(model.apply, method="digits"))({"params": params}, x)
    centre, logits = jax.jit(functools.partial(model.apply, method="readings"))(
        {"params": params}, x
    )
    assert digits.shape == (2, 4, 10)
    weights = centre + jax.nn.log_softmax(logits).max(-1)
    cols = sum_centres.best_centres(weights, 4, 3)
    np.testing.assert_array_equal(digits, np.take_along_axis(logits, cols[..., None], 1))


# --- test data with digits anywhere, and 3 or 5 of them -----------------------------------------


def _boxes(canvas_digits, canvas):
    """Checks each digit's pixels appear somewhere in the canvas; returns nothing."""
    for digit in canvas_digits:
        h, w = digit.shape
        found = any(
            np.array_equal(
                np.maximum(canvas[y : y + h, x : x + w], digit), canvas[y : y + h, x : x + w]
            )
            and np.array_equal(canvas[y : y + h, x : x + w][digit > 0], digit[digit > 0])
            for y in range(canvas.shape[0] - h + 1)
            for x in range(canvas.shape[1] - w + 1)
        )
        assert found


@pytest.mark.parametrize("k", [3, 4, 5])
def test_compose_anywhere_places_digits_whole_and_apart(k):
    rng = np.random.default_rng(k)
    n = 200
    digits = np.full((n, k, 28, 28), 255, np.uint8)  # solid boxes show each placement
    canvas = digitsum.compose_anywhere(digits, rng)
    assert canvas.shape == (n, 40, 168) and canvas.dtype == np.uint8
    # never overlapping: exactly k * 28 * 28 pixels lit
    np.testing.assert_array_equal((canvas > 0).sum((1, 2)), k * 28 * 28)
    starts = [np.flatnonzero(np.diff(np.r_[0, c.any(0).astype(int)]) == 1) for c in canvas]
    # positions vary well beyond the quarters: first digits start anywhere in the free width
    first = np.array([s[0] for s in starts])
    assert first.min() == 0 and first.max() > 168 - k * 28 - 20
    tops = [(c[:, x] > 0).argmax() for c, xs in zip(canvas, starts, strict=True) for x in xs]
    assert min(tops) == 0 and max(tops) == 40 - 28


def test_generate_anywhere_keeps_the_digits_and_sums_of_the_quarters_set():
    images_q, sums_q, src_q = digitsum.generate(20, 5, "test", str(mnist_dir()))
    images_a, sums_a, src_a = digitsum.generate(
        20, 5, "test", str(mnist_dir()), placement="anywhere"
    )
    np.testing.assert_array_equal(src_q, src_a)
    np.testing.assert_array_equal(sums_q, sums_a)
    assert not np.array_equal(images_q, images_a)
    digits_img, _ = jdata.mnist.load("test", str(mnist_dir()))
    _boxes(digits_img[src_a[0]], images_a[0])


def test_five_digits_and_bad_requests():
    images, sums, src = digitsum.generate(
        10, 0, "test", str(mnist_dir()), num_digits=5, placement="anywhere"
    )
    labels = jdata.mnist.load("test", str(mnist_dir()))[1]
    assert src.shape == (10, 5)
    np.testing.assert_array_equal(sums, labels[src].sum(1))
    with pytest.raises(ValueError, match="placement"):
        digitsum.generate(2, 0, "test", str(mnist_dir()), placement="diagonal")
    with pytest.raises(ValueError, match="do not fit"):
        digitsum.compose_anywhere(np.zeros((1, 7, 28, 28), np.uint8), np.random.default_rng())


@pytest.mark.slow
def test_extra_tests_from_the_config():
    cfg = defaults.from_file(REPO_ROOT / "configs" / "digitsum_columns.py", "smoke").data
    cfg.test_size, cfg.test_limit = 100, 50  # generated, then cut (not 10,000 of each)
    sets = jdata.extra_tests(cfg)
    assert list(sets) == ["anywhere-4", "anywhere-3", "anywhere-5", "touching-4", "overlap-4"]
    for spec, (images, sums) in sets.items():
        assert images.shape == (cfg.test_limit, 40, 168)
        assert sums.max() <= 9 * int(spec[-1])
    cfg.extra_tests = ("sideways-4",)
    with pytest.raises(ValueError, match="sideways-4"):
        jdata.extra_tests(cfg)


# --- random shifts ---------------------------------------------------------------------------


@pytest.mark.slow
def test_random_shift_moves_whole_images_by_at_most_the_limit():
    images = np.zeros((16, 12, 12), np.uint8)
    images[:, 4:8, 4:8] = np.arange(1, 17, dtype=np.uint8)[:, None, None]
    out = np.asarray(pipeline.random_shift(jax.random.PRNGKey(0), jnp.asarray(images), 2))
    moves = set()
    for im, o in zip(images, out, strict=True):
        ys, xs = np.nonzero(o)
        assert len(ys) == 16 and set(o[o > 0]) == set(im[im > 0])  # the square, whole
        moves.add((ys.min() - 4, xs.min() - 4))
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in moves) and len(moves) > 4


def _ink_columns(canvas):
    """Indices of the columns of a canvas [40, 168] holding ink."""
    return np.flatnonzero(canvas.any(0))


@pytest.mark.parametrize("placement, low, high", [("touching", 0, 0), ("overlap", 1, 3)])
def test_close_placements_put_ink_against_ink(placement, low, high):
    """Digits whose ink is a solid bar of known width: touching leaves no blank column between
    neighbours, overlap puts 1..3 columns of ink over the last digit's."""
    rng = np.random.default_rng(1)
    n, k = 300, 4
    widths = rng.integers(4, 21, size=(n, k))  # ink 4..20 px wide inside a 28 px box
    lefts = rng.integers(0, 28 - widths + 1)
    digits = np.zeros((n, k, 28, 28), np.uint8)
    for i, j in itertools.product(range(n), range(k)):
        digits[i, j, 6:20, lefts[i, j] : lefts[i, j] + widths[i, j]] = 200
    canvas = digitsum.PLACE[placement](digits, np.random.default_rng(2))
    assert canvas.shape == (n, 40, 168) and canvas.dtype == np.uint8
    spans = []
    for c, w in zip(canvas, widths, strict=True):
        cols = _ink_columns(c)
        assert np.all(np.diff(cols) == 1)  # one run of ink: no gap between neighbours
        overlap = w.sum() - len(cols)
        assert (k - 1) * low <= overlap <= (k - 1) * high
        spans.append((cols[0], cols[-1]))
    first, last = np.array(spans).T
    assert first.min() < 10 and last.max() > 158  # the group lies anywhere on the width


def test_close_placements_keep_the_digits_and_refuse_what_does_not_fit():
    _, sums_q, src_q = digitsum.generate(20, 5, "test", str(mnist_dir()))
    images, sums, src = digitsum.generate(20, 5, "test", str(mnist_dir()), placement="touching")
    np.testing.assert_array_equal(src, src_q)
    np.testing.assert_array_equal(sums, sums_q)
    mnist_images, _ = jdata.mnist.load("test", str(mnist_dir()))
    # touching, never over each other: every digit's ink is all there
    ink = (mnist_images[src] > 0).sum((1, 2, 3))
    np.testing.assert_array_equal((images > 0).sum((1, 2)), ink)
    with pytest.raises(ValueError, match="do not fit"):
        digitsum.compose_close(np.full((1, 7, 28, 28), 9, np.uint8), np.random.default_rng())


def test_squeeze_columns_closes_up_without_losing_ink():
    """Blank columns go, each image's ink columns stay whole and in order: a sum still holds."""
    images, _, _ = digitsum.generate(64, 3, "test", str(mnist_dir()))
    out = np.asarray(pipeline.squeeze_columns(jax.random.PRNGKey(0), jnp.asarray(images)))
    assert out.shape == images.shape and out.dtype == np.uint8
    gaps_before, gaps_after = [], []
    for im, o in zip(images, out, strict=True):
        cols, kept = _ink_columns(im), _ink_columns(o)
        np.testing.assert_array_equal(o[:, kept], im[:, cols])
        gaps_before.append(cols[-1] - cols[0] + 1 - len(cols))
        gaps_after.append(kept[-1] - kept[0] + 1 - len(kept))
    gaps_before, gaps_after = np.array(gaps_before), np.array(gaps_after)
    assert np.all(gaps_after <= gaps_before) and gaps_after.mean() < 0.8 * gaps_before.mean()
    assert gaps_after.min() < 0.2 * gaps_before.mean()  # some close up almost to touching


# --- the new configs end to end (smoke size) -------------------------------------------------


# What these runs test is the way from a config to summary.json: each trains on fewer images
# than :smoke, an epoch of 2 steps in one call, and tests on 100 images (canvases).
SMALL = {"steps_per_call": -1, "data": {"test_limit": 100}}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("part3_complementary_cnn", {"data": {"limit": 300}}),  # 270 train images, batch 128
        ("part3_complementary", {"loss": {"complementary": "ga"}, "data": {"limit": 80}}),  # 72
        ("digitsum_columns", {"data": {"size": 160, "test_size": 100}}),  # 128, batch 64
        ("digitsum_slots", {"data": {"size": 160, "test_size": 100}}),
        ("digitsum_centres", {"data": {"size": 160, "test_size": 100}}),
        # from the centre reader kept in results/runs, closing up its canvases
        ("digitsum_centres_close", {"data": {"size": 160, "test_size": 100}}),
    ],
)
def test_new_configs_train_and_report_their_extra_numbers(name, overrides, tmp_path):
    cfg = defaults.from_file(REPO_ROOT / "configs" / f"{name}.py", "smoke")
    cfg.seeds = (0,)
    cfg.update(SMALL)
    cfg.update(overrides)
    summary = trainer.train_and_evaluate(cfg, tmp_path, command="python -m jaxdigits.train ...")
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["command"] == "python -m jaxdigits.train ..."
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    if name.startswith("digitsum"):
        for spec in ("anywhere-4", "anywhere-3", "anywhere-5", "touching-4", "overlap-4"):
            assert 0.0 <= stored[f"test_accuracy_{spec}"] <= 1.0
    # per-digit accuracy only from a network that reads single digits
    reads_digits = name in ("digitsum_slots", "digitsum_centres", "digitsum_centres_close")
    assert ("digit_accuracy" in stored) == reads_digits
    if reads_digits:
        assert 0.0 <= stored["digit_accuracy_best"] <= 1.0
    assert "test_accuracy_argmin" not in stored


@pytest.mark.slow
def test_a_naive_mislabeled_run_reports_argmin_decoding(tmp_path):
    cfg = defaults.from_file(REPO_ROOT / "configs" / "part3.py", "smoke")
    cfg.seeds = (0,)
    # 180 train images, 5 steps in one call, 100 test images: test_trainer.py's programs
    cfg.data.limit, cfg.data.test_limit, cfg.steps_per_call = 200, 100, 5
    trainer.train_and_evaluate(cfg, tmp_path)
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert 0.0 <= stored["test_accuracy_argmin"] <= 1.0
    assert 0.0 <= stored["test_accuracy_best_argmin"] <= 1.0
