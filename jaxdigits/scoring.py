"""The trained params scored: each seed's test accuracies (every decode, the extra test
sets), summary.json, the original's tables beside ours and the confusion matrices."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits import data, output, steps
from jaxdigits.data import pipeline
from jaxdigits.report import originals


def decodes(config) -> tuple[str, ...]:
    """How test predictions are read (config.decodes): argmax first, the run's headline; then
    e.g. argmin, for a network trained with cross-entropy on the mislabeled set (its least
    likely class is the true one)."""
    return tuple(config.decodes)


def evaluator(model, config, decode="argmax"):
    """`run(params, frozen, images, labels, idx, mean, std)` -> per-seed (mean loss [S],
    accuracy [S], predictions [S, n]). `decode` a tuple of decodes: accuracy and predictions
    are tuples, one per decode, from one pass."""
    several = isinstance(decode, tuple)
    evaluate = steps.make_evaluate(model, config, decode if several else (decode,))

    def run(params, frozen, images, labels, idx, mean, std):
        loss, preds = evaluate(params, frozen, images, labels, idx, mean, std)
        truth = np.asarray(labels)[idx]
        accs = tuple((p == truth).mean(axis=1) for p in preds)
        return (loss, accs, preds) if several else (loss, accs[0], preds[0])

    return run


def test_metrics(model, config, test, *param_sets, frozen=None, decode="argmax"):
    """[(accuracy [S], predictions [S, n])] on `test` (images, labels: the run's test split
    or another test set), one per set of params (`frozen`: the run's frozen params, shared by
    all); `decode` as for evaluator."""
    evaluate = evaluator(model, config, decode)
    images, labels = (jnp.asarray(a) for a in test)
    results = []
    for params in param_sets:
        n_seeds = jax.tree.leaves(params)[0].shape[0]
        idx = np.broadcast_to(np.arange(len(labels)), (n_seeds, len(labels)))
        _, acc, preds = evaluate(
            params, frozen or {}, images, labels, idx, config.data.test_mean, config.data.test_std
        )
        results.append((acc, preds))
    return results


def finish(config, workdir, model, ds, state, train_acc=None, command=None) -> dict:
    """Tests each seed's last and best params; writes summary, tables, figure.

    `test_accuracy` is the original's protocol: the params at the end of
    training (Lightning's trainer.test on the model in memory), with the
    last epoch's validation accuracy. `*_best` are the params of the lowest
    validation loss, kept in the best checkpoint. `train_acc` [S], if
    given, is the last params' eval-mode accuracy on each seed's whole
    training split (`train_accuracy`).
    """
    seeds = tuple(config.seeds)
    last, best_params = state["train"]["params"], state["best_params"]
    frozen, decode = state["frozen"], decodes(config)
    test = (ds.test_images, ds.test_labels)
    (last_accs, last_preds), (best_accs, best_preds) = test_metrics(
        model, config, test, last, best_params, frozen=frozen, decode=decode
    )
    last_acc, best_acc = last_accs[0], best_accs[0]  # argmax, then any others
    last_preds, best_preds = last_preds[0], best_preds[0]
    extra = {}
    for d, acc_last, acc_best in zip(decode[1:], last_accs[1:], best_accs[1:], strict=True):
        extra.update({f"test_accuracy_{d}": acc_last, f"test_accuracy_best_{d}": acc_best})
    extra.update(extra_test_accuracies(model, config, last, best_params, frozen))
    extra.update(digit_accuracies(model, config, last, best_params, frozen))
    history = output.read_metrics(workdir)
    per_seed = []
    for i in range(len(seeds)):
        best = int(state["best_epoch"][i])
        n_epochs = int(sum(r["active"][i] for r in history))
        per_seed.append(
            {
                "test_accuracy": float(last_acc[i]),
                "val_accuracy": float(history[n_epochs - 1]["val_accuracy"][i]),
                "epochs": n_epochs,
                "train_seconds": float(state["train_seconds"][i]),
                "test_accuracy_best": float(best_acc[i]),
                "val_accuracy_best": float(history[best - 1]["val_accuracy"][i]),
                "val_loss_best": float(state["best_val_loss"][i]),
                "best_epoch": best,
            }
        )
        per_seed[-1].update({k: float(v[i]) for k, v in extra.items()})
        if train_acc is not None:
            per_seed[-1]["train_accuracy"] = float(train_acc[i])
    summary = output.summary(seeds, per_seed)
    summary.update(device=output.device_name(), jax_version=jax.__version__)
    if command:
        summary["command"] = command
    output.write_json(workdir / output.SUMMARY, summary)
    plot_confusions(workdir, seeds, ds.test_labels, last_preds, best_preds)
    print(output.table(seeds, per_seed))
    if config.original:
        tables = originals.digitsum_tables(config.original, seeds, per_seed)
        output.write_text(workdir / output.TABLES, tables)
        print(tables)
    return summary


def extra_test_accuracies(model, config, last, best, frozen=None) -> dict:
    """Per-seed test accuracies [S] beyond the original's, keyed as in summary.json, of a
    digit-sum network on config.data.extra_tests (`test_accuracy_<spec>`, last params, and
    `test_accuracy_best_<spec>`). (A network trained with cross-entropy on the mislabeled
    set also gets `test_accuracy_argmin` and `test_accuracy_best_argmin`, decoded by argmin
    in finish's test pass.)
    """
    out = {}
    for spec, test in data.extra_tests(config.data).items():
        (acc_last, _), (acc_best, _) = test_metrics(model, config, test, last, best, frozen=frozen)
        out.update({f"test_accuracy_{spec}": acc_last, f"test_accuracy_best_{spec}": acc_best})
    return out


def digit_accuracies(model, config, last, best, frozen=None) -> dict:
    """Per-seed accuracy [S] of the single digits a digit-sum network reads (`digit_accuracy`,
    last params, and `digit_accuracy_best`), for networks with a `digits` method (digit
    logits [B, slots, 10], slots left to right) on generated canvases: scored against the
    digits the generator placed, which training never sees. {} for other runs."""
    cfg = config.data
    if not hasattr(model, "digits") or cfg.name != "digitsum" or cfg.path:
        return {}
    images, digits = data.digitsum_test_digits(cfg)
    size, image_size = config.eval_batch_size, tuple(cfg.image_size)

    @jax.jit
    def read(params, images):
        x = pipeline.preprocess(images, image_size, cfg.test_mean, cfg.test_std)
        full = {"params": steps.apply_params(params, frozen)}
        return jnp.argmax(model.apply(full, x, method="digits"), -1)

    out = {}
    for key, params in (("digit_accuracy", last), ("digit_accuracy_best", best)):
        accs = []
        for s in range(jax.tree.leaves(params)[0].shape[0]):
            one = jax.tree.map(lambda p, s=s: p[s], params)
            preds = [read(one, images[b : b + size]) for b in range(0, len(images), size)]
            accs.append(float((np.concatenate(preds) == digits).mean()))
        out[key] = np.asarray(accs)
    return out


def plot_confusions(workdir, seeds, labels, last_preds, best_preds):
    n = max(10, int(labels.max()) + 1)  # digits, or sums 0..36
    matrices, titles = [], []
    for which, preds in (("last epoch", last_preds), ("best val loss", best_preds)):
        matrices += [output.confusion(labels, p, n) for p in preds]
        titles += [f"seed {s}, {which}: test set" for s in seeds]
    output.plot_confusion(workdir / output.CONFUSION, matrices, titles, rows=2)
