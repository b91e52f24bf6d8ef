"""``config.model.kind = "xlstm"``: its schema, the model (embedding, xLSTM stack,
read-out) and the xlstm_char config trained for a few steps."""

import json

import jax
import numpy as np
import pytest

from rnnjax import configs
from rnnjax.configs import base
from rnnjax.train import experiment, schema, xlstm_model
from rnnjax.train import metrics as metrics_lib
from tests.train._configs import bad, tiny

# Tiny MQAR data for the tiny model (seq_len 16 of tiny()).
MQAR = [("data.num_kv_pairs", "3"), ("data.vocab_size", "16")]


@pytest.mark.parametrize(
    "spec, want",
    [
        ("", ()),
        ("all", (0, 1, 2, 3)),
        ("1", (1,)),
        (" 2,0 ", (0, 2)),
        ("1,1", (1,)),
        ("1:1", (1, 3)),
        ("3:1", (3,)),
        ("0:1", (0, 1, 2, 3)),
    ],
)
def test_slstm_at(spec, want):
    assert xlstm_model.slstm_indices(spec, 4) == want


@pytest.mark.parametrize(
    "key, value, error, match",
    [
        ("model.kind", "transformer", ValueError, r"config\.model\.kind: expected one"),
        ("model.xlstm.slstm_at", "3", ValueError, r"slstm_at: expected '', 'all', a"),
        ("model.xlstm.slstm_at", "a", ValueError, r"slstm_at: expected '', 'all', a"),
        ("model.xlstm.slstm_at", "1:0", ValueError, r"slstm_at: expected '', 'all'"),
        ("model.xlstm.num_heads", 0, ValueError, r"num_heads: expected a positive"),
        ("model.xlstm.dropout", 1.0, ValueError, r"xlstm\.dropout: expected a rate"),
        ("model.xlstm.embedding_dim", 8.0, TypeError, r"embedding_dim: expected a int"),
        ("model.impl", "fast", ValueError, r"config\.model\.impl: expected one of"),
        ("model.cell", "lstm", ValueError, r"config\.model\.cell: unknown key"),
        ("model.xlstm.width", 3, ValueError, r"config\.model\.xlstm\.width: unknown"),
    ],
)
def test_the_xlstm_model_group_is_checked(key, value, error, match):
    with pytest.raises(error, match=match):
        schema.check_config(bad(tiny("mqar_xlstm", extra=MQAR), key, value))


def test_a_missing_key_of_the_xlstm_group():
    tree = tiny("mqar_xlstm", extra=MQAR).to_dict()
    del tree["model"]["xlstm"]["conv_kernel_size"]
    with pytest.raises(ValueError, match=r"model\.xlstm\.conv_kernel_size: missing"):
        schema.check_config(configs.from_json(json.dumps(tree)))


# One mLSTM block where the point is the plumbing around the stack (compiles fast).
ONE_BLOCK = [("model.xlstm.num_blocks", "1"), ("model.xlstm.slstm_at", "")]


def test_embedding_stack_read_out():
    config = tiny("mqar_xlstm", extra=[*MQAR, *ONE_BLOCK])
    m = experiment.build(config).model
    assert isinstance(m, xlstm_model.XLSTMModel) and m.one_hot
    params = jax.jit(m.init)(jax.random.key(0))
    assert params["embed"]["table"].shape == (16, 16)
    assert params["out"]["w"].shape == (16, 16)
    ids = jax.random.randint(jax.random.key(1), (2, 5), 0, 16)

    @jax.jit
    def both(params, ids):
        _, out = m.apply(params, ids)
        _, ys = m.stack.apply(params["xlstm"], params["embed"]["table"][ids])
        return out, ys

    out, ys = both(params, ids)
    want = np.asarray(ys) @ params["out"]["w"] + params["out"]["b"][None, None, :]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert out.shape == (2, 5, 16)


def test_float_inputs_are_projected():
    config = tiny("adding_lstm")
    config.model = base.xlstm_model()
    more = [("model.xlstm.embedding_dim", "8"), ("model.xlstm.num_heads", "1")]
    config = configs.override(config, more + ONE_BLOCK)
    exp = experiment.build(config)
    assert not exp.model.one_hot
    # Shapes only (build's dry run has traced the loss already): no compile.
    params = jax.eval_shape(exp.model.init, jax.random.key(0))
    assert params["embed"]["w"].shape == (2, 8) and params["out"]["w"].shape == (8, 1)
    batch = exp.data.train_batch(0)
    out = jax.eval_shape(exp.apply_fn, params, batch, None)
    assert out.shape == batch.targets.shape


def test_xlstm_char_trains_and_samples(tmp_path, text_file):
    # The shipped config, shrunk; one sLSTM block keeps the compiles short (the
    # mLSTM block is compiled by test_embedding_stack_read_out).
    extra = [("steps", "12"), ("optimizer.learning_rate", "1e-2")]
    extra += [("model.xlstm.num_blocks", "1"), ("model.xlstm.slstm_at", "0")]
    config = tiny("xlstm_char", text_file, extra)
    workdir = tmp_path / "run"
    results = experiment.train_and_evaluate(config, workdir, progress=False)
    records = metrics_lib.read(workdir / "metrics.jsonl")
    train = [r["loss"] for r in records if r["split"] == "train"]
    assert len(train) == 6 and train[-1] < train[0] - 0.5  # the loss falls
    assert np.isfinite(results["test"]["bpc"])
    assert all(s.startswith("def ") and len(s) == 14 for s in results["samples"])
    exp, _, step = experiment.load_run(workdir)
    assert step == 12 and isinstance(exp.model, xlstm_model.XLSTMModel)


def test_the_model_runs_under_shard_map():
    # `rnnjax train` splits the batch over the devices with shard_map: the stack's
    # zero initial carry must vary over the mesh axis like the inputs (one device
    # suffices for the type check).
    config = tiny("mqar_xlstm", extra=[*MQAR, *ONE_BLOCK])
    m = experiment.build(config).model
    params = jax.jit(m.init)(jax.random.key(0))
    ids = jax.random.randint(jax.random.key(1), (2, 5), 0, 16)
    auto = (jax.sharding.AxisType.Auto,)
    mesh = jax.make_mesh((1,), ("data",), axis_types=auto, devices=jax.devices()[:1])
    spec = jax.sharding.PartitionSpec
    run = jax.shard_map(
        lambda p, i: m.apply(p, i)[1],
        mesh=mesh,
        in_specs=(spec(), spec("data")),
        out_specs=spec("data"),
    )
    np.testing.assert_allclose(
        jax.jit(run)(params, ids),
        jax.jit(lambda p, i: m.apply(p, i)[1])(params, ids),
        rtol=1e-6,
    )
