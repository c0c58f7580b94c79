"""Damaged checkpoints and NaN losses: a run notices, keeps what is good, and recovers exactly.

What is injected, into copies of one finished 3-epoch run (2 seeds, 5 steps an epoch):

- the newest state checkpoint (checkpoints/3) truncated, one byte flipped, a file deleted, or
  its orbax metadata overwritten: resuming moves it to damaged/ and retrains epoch 3;
- both state checkpoints damaged: the run starts over;
- the best checkpoint damaged: evaluating names the file, resuming writes it again;
- the newest state's manifest deleted (a run killed after orbax committed the step): trusted;
- class weights of 1e38, whose weighted mean loss overflows float32 to inf / inf = NaN in
  every step (the evaluation loss is unweighted, so it stays finite): config.nonfinite "stop"
  raises and writes nothing, "skip" leaves every step undone.

The runs are in-process (trainer.train_and_evaluate); the suite's persistent compilation
cache (tests/conftest.py) lets each program compile once, not once per run, and a later
suite run read it back.
"""

import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from helpers_data import NEEDS_MNIST
from helpers_runs import assert_same_run, assert_same_tree

from jaxdigits import checkpoint, defaults, evaluate, models, output, saved_params, steps, trainer
from jaxdigits.runtime import interrupt

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


def load_config(**overrides):
    config = defaults.from_file(ROOT / "configs" / "part3_complementary_cnn.py", "smoke")
    config.num_epochs = 3
    # A runtime only (resumable) change: each epoch in one call (a lax.scan, not unrolled: a
    # fraction of the compile time).
    config.steps_per_call = -1
    # What the checkpoints hold matters here, not how well the network learns: 162 train
    # images, 5 steps of 32 an epoch (not 648 in 5 of 128), and 100 test images.
    config.batch_size, config.data.limit, config.data.test_limit = 32, 180, 100
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undamaged 3-epoch run; tests damage copies of it."""
    workdir = tmp_path_factory.mktemp("reference")
    trainer.train_and_evaluate(load_config(), workdir)
    return workdir


@pytest.fixture(scope="module")
def reference_eval(reference):
    return evaluate.evaluate(reference)


def copy_of(reference, tmp_path) -> pathlib.Path:
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    return workdir


def contents(directory: pathlib.Path) -> dict[str, bytes]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


def steps_on_disk(workdir, name=checkpoint.STATE_DIR):
    directory = workdir / name
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def largest_file(directory: pathlib.Path) -> pathlib.Path:
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate(step_dir: pathlib.Path) -> pathlib.Path:
    path = largest_file(step_dir)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path


def flip_byte(step_dir: pathlib.Path) -> pathlib.Path:
    path = largest_file(step_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def delete_file(step_dir: pathlib.Path) -> pathlib.Path:
    path = largest_file(step_dir / "default")
    path.unlink()
    return path


def garbage_metadata(step_dir: pathlib.Path) -> pathlib.Path:
    path = step_dir / "_CHECKPOINT_METADATA"
    path.write_bytes(b"\x00garbage{" * 8)
    return path


DAMAGE = {
    "truncated": truncate,
    "byte_flipped": flip_byte,
    "file_deleted": delete_file,
    "metadata_garbage": garbage_metadata,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_newest_state_is_moved_aside_and_its_epoch_retrained(
    reference, tmp_path, capsys, damage
):
    workdir = copy_of(reference, tmp_path)
    step_dir = workdir / checkpoint.STATE_DIR / "3"
    DAMAGE[damage](step_dir)
    damaged = contents(step_dir)
    capsys.readouterr()

    trainer.train_and_evaluate(load_config(), workdir)

    out = capsys.readouterr().out
    assert "damaged checkpoint, moved to" in out
    assert f"resuming {workdir} after epoch 2" in out
    (moved,) = (workdir / checkpoint.DAMAGED_DIR).iterdir()
    assert moved.name.startswith("checkpoints-3-") and str(moved) in out
    assert contents(moved) == damaged  # moved as it was: nothing deleted or rewritten
    assert steps_on_disk(workdir) == ["2", "3"]
    assert_same_run(reference, workdir)


def _rewrite_newest_state(workdir, change):
    """Saves the newest training state again as `change(state)` returns it (and its manifest):
    what an older jaxdigits wrote."""
    tree = saved_params.restore_latest(workdir)
    mgr = checkpoint.manager(workdir / checkpoint.STATE_DIR, keep=2)
    step = mgr.latest_step()
    shutil.rmtree(workdir / checkpoint.STATE_DIR / str(step))
    mgr.reload()
    mgr.save(step, args=ocp.args.StandardSave(change(tree)), force=True)
    mgr.wait_until_finished()
    mgr.close()
    checkpoint.write_manifest(workdir / checkpoint.STATE_DIR / str(step))


def test_state_saved_before_frozen_params_had_a_key_resumes(reference, tmp_path, capsys):
    """A state without "frozen" (checkpoints of earlier versions) resumes as it is; one that
    kept frozen params per seed stops with one line, its files untouched."""
    workdir = copy_of(reference, tmp_path)
    _rewrite_newest_state(workdir, lambda t: {k: v for k, v in t.items() if k != "frozen"})
    capsys.readouterr()
    trainer.train_and_evaluate(load_config(num_epochs=4), workdir)
    assert f"resuming {workdir} after epoch 3" in capsys.readouterr().out
    assert not (workdir / checkpoint.DAMAGED_DIR).exists()
    assert [r["epoch"] for r in output.read_metrics(workdir)] == [1, 2, 3, 4]

    workdir = copy_of(reference, tmp_path / "per_seed")

    def per_seed_features(tree):
        tree = {k: v for k, v in tree.items() if k != "frozen"}
        tree["train"]["params"]["features"] = np.zeros((2, 3), np.float32)
        return tree

    _rewrite_newest_state(workdir, per_seed_features)
    kept = (checkpoint.STATE_DIR, checkpoint.BEST_DIR)
    before = [contents(workdir / name) for name in kept] + [output.read_metrics(workdir)]
    with pytest.raises(checkpoint.OlderCheckpoint, match="features per seed.*new --workdir"):
        trainer.train_and_evaluate(load_config(num_epochs=4), workdir)
    after = [contents(workdir / name) for name in kept] + [output.read_metrics(workdir)]
    assert after == before and not (workdir / checkpoint.DAMAGED_DIR).exists()


def test_every_state_damaged_starts_over(reference, tmp_path, capsys):
    workdir = copy_of(reference, tmp_path)
    for step in ("2", "3"):
        flip_byte(workdir / checkpoint.STATE_DIR / step)
    capsys.readouterr()

    trainer.train_and_evaluate(load_config(), workdir)

    out = capsys.readouterr().out
    assert out.count("damaged checkpoint, moved to") == 2
    assert "resuming" not in out
    moved = sorted(p.name for p in (workdir / checkpoint.DAMAGED_DIR).iterdir())
    assert [name.rsplit("-", 1)[0] for name in moved] == ["checkpoints-2", "checkpoints-3"]
    assert [r["epoch"] for r in output.read_metrics(workdir)] == [1, 2, 3]
    assert_same_run(reference, workdir)


def test_damaged_best_is_named_then_rewritten_on_resume(
    reference, reference_eval, tmp_path, capsys
):
    workdir = copy_of(reference, tmp_path)
    (step,) = steps_on_disk(workdir, checkpoint.BEST_DIR)
    path = flip_byte(workdir / checkpoint.BEST_DIR / step)
    with pytest.raises(checkpoint.CheckpointError) as error:
        evaluate.evaluate(workdir)
    assert str(path) in str(error.value)
    capsys.readouterr()

    trainer.train_and_evaluate(load_config(), workdir)  # nothing left to train

    out = capsys.readouterr().out
    assert "damaged best checkpoint, moved to" in out
    (moved,) = (workdir / checkpoint.DAMAGED_DIR).iterdir()
    assert moved.name.startswith(f"best-{step}-")
    assert_same_tree(saved_params.restore_best(reference), saved_params.restore_best(workdir))
    assert evaluate.evaluate(workdir) == reference_eval
    assert_same_run(reference, workdir)


def test_evaluate_cli_names_the_damaged_file_in_one_line(reference, tmp_path):
    workdir = copy_of(reference, tmp_path)
    path = truncate(workdir / checkpoint.STATE_DIR / "3")
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdigits.evaluate", "--workdir", str(workdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(path) in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_step_without_manifest_is_trusted(reference, reference_eval, tmp_path):
    workdir = copy_of(reference, tmp_path)
    (workdir / checkpoint.STATE_DIR / "3" / checkpoint.MANIFEST).unlink()
    assert evaluate.evaluate(workdir) == reference_eval


def nan_config(**overrides):
    """Every training loss is NaN: the class-weighted mean is inf / inf in float32."""
    config = load_config(task="classify", **overrides)
    config.loss.update(selftrain_threshold=0.0, class_weights=(1e38,) * 10)
    return config


def test_nan_loss_stops_before_any_checkpoint(tmp_path):
    pattern = r"loss is nan at epoch 1, step 1 of 5 \(global step 1\), seed 0"
    with pytest.raises(interrupt.NonFiniteError, match=pattern):
        # 2 epochs: the program of the resumed "stop" run below (the cosine spans num_epochs)
        trainer.train_and_evaluate(nan_config(num_epochs=2), tmp_path)
    assert checkpoint.latest_epoch(tmp_path) is None
    assert steps_on_disk(tmp_path) == [] and steps_on_disk(tmp_path, checkpoint.BEST_DIR) == []


def test_nan_skip_then_stop_keeps_the_last_good_checkpoint(tmp_path):
    config = nan_config(nonfinite="skip", num_epochs=1)
    trainer.train_and_evaluate(config, tmp_path)
    (line,) = output.read_metrics(tmp_path)
    assert line["skipped"] == [5, 5]
    # every step undone: the params are still the initial ones (as trainer._init_params)
    model = models.build(config)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in config.seeds])
    initial = steps.init_seeds(model, keys, config.data.image_size)
    train = saved_params.restore_latest(tmp_path)["train"]
    assert_same_tree(jax.tree.map(np.asarray, initial), train["params"])
    leaves = jax.tree_util.tree_leaves_with_path(train["opt_state"])
    counts = [x for path, x in leaves if "count" in jax.tree_util.keystr(path)]
    assert counts and all(np.all(c == 0) for c in counts)  # nor did Adam take a step
    before = contents(tmp_path / checkpoint.STATE_DIR)

    pattern = r"loss is nan at epoch 2, step 1 of 5 \(global step 6\), seed 0"
    with pytest.raises(interrupt.NonFiniteError, match=pattern):
        trainer.train_and_evaluate(nan_config(nonfinite="stop", num_epochs=2), tmp_path)
    assert steps_on_disk(tmp_path) == ["1"]
    assert contents(tmp_path / checkpoint.STATE_DIR) == before
    assert len(output.read_metrics(tmp_path)) == 1


def test_a_restored_state_is_placed_as_the_fresh_one_and_lowers_to_the_same_program(tmp_path):
    """Arrays JAX placed itself (a fresh run's state) come back placed the same way, not pinned
    to a device: a pinned argument lowers to another program (sharding annotations), which a
    resumed run would compile again instead of reading the fresh run's from the cache."""
    fresh = {"train": {"params": jnp.arange(6.0).reshape(2, 3), "step": jnp.zeros(2, jnp.int32)}}
    ckpts = checkpoint.RunCheckpoints(tmp_path)
    ckpts.save(1, fresh, improved=False)
    epoch, restored = checkpoint.RunCheckpoints(tmp_path).restore_state(fresh)
    assert epoch == 1
    assert_same_tree(restored, fresh)
    assert not any(x.committed for x in jax.tree.leaves(restored))
    program = jax.jit(lambda state: jax.tree.map(lambda x: x + 1, state))
    assert program.lower(restored).as_text() == program.lower(fresh).as_text()
