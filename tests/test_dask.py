"""fastact on Dask: the functions pickle and run block by block on a cluster of worker processes, with the
single call's bits; fastact.dask covers every op of the registry; row ops along a chunked axis rechunk it or
say why they cannot."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="pip install .[test] installs dask")
distributed = pytest.importorskip("distributed", reason="pip install .[test] installs distributed")

import dask  # noqa: E402

import fastact  # noqa: E402
import fastact.dask as fd  # noqa: E402
from fastact import _core  # noqa: E402

RNG = np.random.default_rng(7)
X = RNG.standard_normal((96, 64)).astype(np.float32)


def chunked(a, chunks=(25, 16)):
    return da.from_array(a, chunks=chunks)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_functions_and_layers_pickle_by_reference():
    for f in (fastact.gelu, fastact.softmax_backward, fastact.cross_entropy, fastact.mse_loss, fd.gelu, fd.softmax):
        assert pickle.loads(pickle.dumps(f)) is f
    layer = pickle.loads(pickle.dumps(fastact.nn.LeakyReLU(0.2)))
    assert layer.params == {"negative_slope": 0.2}


def test_map_blocks_on_worker_processes(client):
    pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids
    x = chunked(X)
    got = client.compute(x.map_blocks(fastact.gelu, approximate="tanh")).result()
    assert np.array_equal(got, fastact.gelu(X, approximate="tanh"))
    got = client.compute(fd.softmax(x, axis=1)).result()
    assert np.array_equal(got, fastact.softmax(X, axis=1))
    y = fd.silu(x)
    g = client.compute(fd.silu_backward(da.ones_like(x), x)).result()
    assert np.array_equal(g, fastact.silu_backward(np.ones_like(X), X))
    assert np.array_equal(client.compute(y).result(), fastact.silu(X))
    loss = client.compute(fd.mse_loss(x, x * 0.5, reduction="sum")).result()
    assert abs(float(loss) - float(fastact.mse_loss(X, X * 0.5, reduction="sum"))) <= 1e-6 * float(loss)


@pytest.fixture()
def sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def _registry_names():
    names = set()
    for o in _core.ops():
        if o["kind"] == "broadcast" and o["activation"]:
            names |= {"bias_act", "bias_act_backward"}
        else:
            names |= {o["name"], o["name"] + "_backward"}
    return names


def test_every_registry_op_is_in_fastact_dask():
    assert _registry_names() <= set(fd.__all__)
    for n in _registry_names():
        assert getattr(fd, n).__module__ == "fastact.dask" and f"fastact.{n}" in getattr(fd, n).__doc__


@pytest.mark.parametrize("op", [o for o in _core.ops() if o["kind"] == "elementwise"], ids=lambda o: o["name"])
def test_elementwise_ops_give_the_single_calls_bits(op, sync):
    kw = {p["name"]: 0.75 for p in op["params"] if p["required"]}
    name = op["name"]
    x = chunked(X)
    assert np.array_equal(getattr(fd, name)(x, **kw).compute(), getattr(fastact, name)(X, **kw), equal_nan=True)
    g = np.full_like(X, 0.5)
    want = getattr(fastact, name + "_backward")(g, X, **kw)
    assert np.array_equal(getattr(fd, name + "_backward")(chunked(g), x, **kw).compute(), want, equal_nan=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_row_ops_rechunk_the_axis_or_refuse(name, axis, sync):
    x = chunked(X)
    y = getattr(fd, name)(x, axis=axis)
    assert np.array_equal(y.compute(), getattr(fastact, name)(X, axis=axis))
    g = RNG.standard_normal(X.shape).astype(np.float32)
    got = getattr(fd, name + "_backward")(chunked(g), y=y, axis=axis).compute()
    assert np.array_equal(got, getattr(fastact, name + "_backward")(g, y=getattr(fastact, name)(X, axis=axis),
                                                                     axis=axis))
    with pytest.raises(ValueError, match=r"chunked along axis \d .*rechunk=True"):
        getattr(fd, name)(x, axis=axis, rechunk=False)
    whole = da.from_array(X, chunks=(25, 64) if axis != 0 else (96, 16))
    assert getattr(fd, name)(whole, axis=axis, rechunk=False).chunks == whole.chunks


@pytest.mark.parametrize("op", [o for o in _core.ops() if o["kind"] == "gated"], ids=lambda o: o["name"])
def test_gated_ops_both_forms(op, sync):
    name, x = op["name"], chunked(X)
    assert np.array_equal(getattr(fd, name)(x).compute(), getattr(fastact, name)(X))
    g = RNG.standard_normal((96, 32)).astype(np.float32)
    assert np.array_equal(getattr(fd, name + "_backward")(chunked(g, (20, 8)), x).compute(),
                          getattr(fastact, name + "_backward")(g, X))
    up = X[::-1].copy()
    assert np.array_equal(getattr(fd, name)(x, chunked(up, (30, 64))).compute(), getattr(fastact, name)(X, up))
    got = getattr(fd, name + "_backward")(x, x, chunked(up))
    want = getattr(fastact, name + "_backward")(X, X, up)
    assert all(np.array_equal(a.compute(), b) for a, b in zip(got, want))


def test_prelu_and_bias_act_with_their_parameter_gradients(sync):
    x = chunked(X)
    w = np.linspace(0.05, 0.5, 64).astype(np.float32)
    assert np.array_equal(fd.prelu(x, w, -1).compute(), fastact.prelu(X, w, -1))
    dx, dw = fd.prelu_backward(x, x, w, -1)
    DX, DW = fastact.prelu_backward(X, X, w, -1)
    assert np.array_equal(dx.compute(), DX) and dw.shape == DW.shape
    np.testing.assert_allclose(dw.compute(), DW, rtol=1e-5, atol=1e-5)  # the blocks' sums added in block order
    x4 = da.from_array(RNG.standard_normal((4, 3, 8, 8)).astype(np.float32), chunks=(2, 1, 4, 8))
    w3 = np.array([0.1, 0.2, 0.3], np.float32)
    assert np.array_equal(fd.prelu(x4, w3).compute(), fastact.prelu(x4.compute(), w3))
    b = np.linspace(-1, 1, 64).astype(np.float32)
    assert np.array_equal(fd.bias_act(x, b, "gelu", approximate="tanh").compute(),
                          fastact.bias_act(X, b, "gelu", approximate="tanh"))
    dx, db = fd.bias_act_backward(x, x, b, "relu")
    DX, DB = fastact.bias_act_backward(X, X, b, "relu")
    assert np.array_equal(dx.compute(), DX)
    np.testing.assert_allclose(db.compute(), DB, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", [o for o in _core.ops() if o["kind"] == "loss"], ids=lambda o: o["name"])
def test_elementwise_losses(op, sync):
    name, x = op["name"], chunked(X)
    t = (X > 0.3).astype(np.float32)
    assert np.array_equal(getattr(fd, name)(x, chunked(t, (40, 32)), reduction="none").compute(),
                          getattr(fastact, name)(X, t, reduction="none"))
    for reduction in ("sum", "mean"):
        got = float(getattr(fd, name)(x, chunked(t), reduction=reduction).compute())
        want = float(getattr(fastact, name)(X, t, reduction=reduction))
        assert abs(got - want) <= 2e-6 * abs(want), reduction
        # the backward gives every block the single call's scale: the same bits
        assert np.array_equal(getattr(fd, name + "_backward")(3.0, x, chunked(t), reduction=reduction).compute(),
                              getattr(fastact, name + "_backward")(3.0, X, t, reduction=reduction))


def test_bad_arguments(sync):
    with pytest.raises(TypeError, match="dask.array.Array"):
        fd.gelu(X)
    with pytest.raises(ValueError, match="shape"):
        fd.gelu_backward(chunked(X), chunked(X[:10]))
    with pytest.raises(ValueError, match="odd length"):
        fd.swiglu(chunked(X[:, :63], (25, 63)))
    with pytest.raises(ValueError, match="out of range"):
        fd.softmax(chunked(X), axis=2)


def test_arguments_bind_as_in_the_single_call(sync):
    x, t = chunked(X), chunked(X * 0.5)
    for args in [(0.1,), (0.1, "sum"), (2.0, "none")]:
        got = np.asarray(fd.huber_loss(x, t, *args).compute(), np.float64)
        want = np.asarray(fastact.huber_loss(X, X * 0.5, *args), np.float64)
        np.testing.assert_allclose(got, want, rtol=2e-6, err_msg=str(args))
    assert abs(float(fd.mse_loss(x, t, "sum").compute()) - float(fastact.mse_loss(X, X * 0.5, "sum"))) < 1e-2
    w, pw = np.full(64, 0.5, np.float32), np.float32(2.0)
    tb = (X > 0).astype(np.float32)
    got = float(fd.binary_cross_entropy_with_logits(x, chunked(tb), w, pw, "sum").compute())
    want = float(fastact.binary_cross_entropy_with_logits(X, tb, w, pw, "sum"))
    assert abs(got - want) <= 2e-6 * abs(want)
    assert np.array_equal(fd.huber_loss_backward(2.0, x, t, 0.1).compute(), fastact.huber_loss_backward(2.0, X, X * 0.5, 0.1))
    with pytest.raises(TypeError, match="fastact.dask.mse_loss"):
        fd.mse_loss(x, t, "sum", 3)
    with pytest.raises(TypeError, match="approximat"):
        fd.gelu(x, approximat="tanh")
    assert list(__import__("inspect").signature(fd.gelu).parameters) == ["x", "approximate"]
    assert "rechunk" in __import__("inspect").signature(fd.softmax).parameters
    assert fd.swish is fd.silu


def test_parameters_and_dtypes_are_checked_when_the_graph_is_built(sync):
    x = chunked(X)
    with pytest.raises(ValueError, match="alpha"):
        fd.celu(x, alpha=-1.0)
    with pytest.raises(TypeError):
        fd.relu(da.ones((4, 4), dtype=np.int32, chunks=2))
    with pytest.raises(ValueError, match="activation"):
        fd.bias_act(x, np.zeros(64, np.float32), "nope")
    with pytest.raises(TypeError, match="cap"):
        fd.softcap(x)
    with pytest.raises(TypeError, match="weight"):
        fd.binary_cross_entropy_with_logits(x, x, np.ones(64))  # float64 weight for float32 logits


def test_a_dask_parameter_in_several_chunks_reaches_each_block_whole(sync):
    x = chunked(X)
    b = np.linspace(-1, 1, 64).astype(np.float32)
    bd = da.from_array(b, chunks=8)
    assert np.array_equal(fd.bias_act(x, bd, "relu").compute(), fastact.bias_act(X, b, "relu"))
    dx, db = fd.bias_act_backward(x, x, bd, "relu")
    DX, DB = fastact.bias_act_backward(X, X, b, "relu")
    assert np.array_equal(dx.compute(), DX)
    np.testing.assert_allclose(db.compute(), DB, rtol=1e-5, atol=1e-5)
    x4 = RNG.standard_normal((4, 6, 5, 5)).astype(np.float32)
    w = np.linspace(0.1, 0.6, 6).astype(np.float32)
    xd, wd = da.from_array(x4, chunks=(1, 2, 5, 3)), da.from_array(w, chunks=2)
    assert np.array_equal(fd.prelu(xd, wd).compute(), fastact.prelu(x4, w))
    dx, dw = fd.prelu_backward(xd, xd, wd)
    DX, DW = fastact.prelu_backward(x4, x4, w)
    assert np.array_equal(dx.compute(), DX)
    np.testing.assert_allclose(dw.compute(), DW, rtol=1e-5, atol=1e-5)


def test_unknown_chunk_sizes_and_empty_arrays(sync):
    x = chunked(X)
    masked = x[x[:, 0] > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fd.mse_loss(masked, masked)
    m = masked.compute_chunk_sizes()
    assert float(fd.mse_loss(m, m).compute()) == 0.0
    e = da.zeros((0, 4), dtype=np.float32, chunks=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(float(fd.mse_loss(e, e).compute()))
