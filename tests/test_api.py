"""The typed API: the generated functions and stubs are current, their docstrings' examples hold, the
stubs say what the runtime does, type checkers accept ordinary use, and tracebacks point at a real file."""
from __future__ import annotations

import ast
import doctest
import inspect
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

import fastact
from fastact import _core, _ops, nn

ROOT = Path(__file__).resolve().parent.parent
PKG = Path(fastact.__file__).resolve().parent
EXAMPLE = ROOT / "examples" / "typed_usage.py"


def test_generated_api_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_api.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_registry_digest_matches_so_no_functions_are_made_at_import():
    assert _ops.REGISTRY_DIGEST == fastact._generate.digest(_core.ops())
    assert Path(inspect.getsourcefile(fastact.relu)).resolve() == PKG / "_ops.py"


def test_every_function_of_the_registry_is_public_typed_and_documented():
    names = set(_ops.__all__)
    for o in _core.ops():
        name = "bias_act" if o["kind"] == "broadcast" and o["activation"] else o["name"]
        for n in (name, name + "_backward"):
            assert n in names and n in fastact.__all__
            f = getattr(fastact, n)
            assert f.__module__ == "fastact._ops"
            assert "Any" in str(inspect.signature(f).return_annotation)
        assert "Example::" in getattr(fastact, name).__doc__, name
        assert "Backward:" in getattr(fastact, name).__doc__, name


def test_every_activation_states_its_range_and_derivative():
    """Each unary and row op's functor carries `range` and `derivative` (csrc/math/ops.h): its docstring says
    them. An op added without them fails here."""
    for o in _core.ops():
        if o["kind"] in ("elementwise", "row"):
            assert o["range"] and o["derivative"], f"{o['name']}: add range and derivative to its functor (ops.h)"
            doc = getattr(fastact, o["name"]).__doc__
            assert f"Range: {o['range']}." in doc and f"Derivative: {o['derivative']}." in doc


def test_docstring_examples_hold():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(_ops, "fastact._ops") if t.examples]
    assert len(tests) >= len({o["name"] for o in _core.ops()}) - 1
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} failed doctest examples (run python -m doctest -v)"


@pytest.mark.parametrize("module", ["fastact.losses", "fastact.init"])
def test_the_hand_written_functions_examples_hold(module):
    import importlib

    mod = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in doctest.DocTestFinder().find(mod, module) if t.examples]
    for name in mod.__all__:
        assert any(t.name.endswith("." + name) for t in tests), f"{module}.{name} has no example"
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_a_docstring_example_that_is_wrong_fails():
    t = doctest.DocTestParser().get_doctest(">>> import numpy as np, fastact\n>>> fastact.relu(np.array([-1.0, 2.0]))"
                                            ".tolist()\n[0.0, 3.0]\n", {}, "wrong", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(t, out=lambda s: None)
    assert runner.failures == 1


@pytest.mark.parametrize("call", [
    lambda: fastact.relu_backward(np.ones(3)),
    lambda: fastact.gelu(np.ones(3), approximate="bad"),
    lambda: fastact.softmax_backward(np.ones(3)),
])
def test_tracebacks_point_at_a_real_file(call):
    with pytest.raises(ValueError) as e:
        call()
    frame = traceback.extract_tb(e.value.__traceback__)[-1]
    assert Path(frame.filename).is_file(), frame.filename
    assert frame.line, "the traceback shows the source line"


def _stub_classes(path):
    tree = ast.parse(path.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _stub_params(fn: ast.FunctionDef):
    a = fn.args
    out = [(p.arg, "positional") for p in a.posonlyargs + a.args][1:]  # without self
    out += [(p.arg, "keyword") for p in a.kwonlyargs]
    return out


def _runtime_params(sig: inspect.Signature):
    kinds = {inspect.Parameter.POSITIONAL_ONLY: "positional", inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
             inspect.Parameter.KEYWORD_ONLY: "keyword"}
    return [(p.name, kinds[p.kind]) for p in sig.parameters.values() if p.kind in kinds]


def test_nn_stub_matches_the_runtime_layers():
    classes = _stub_classes(PKG / "nn.pyi")
    for name in nn.__all__:
        cls = getattr(nn, name)
        assert name in classes, f"nn.pyi lacks {name}"
        stub = classes[name]
        base = stub.bases[0].id if stub.bases else None
        assert base is None or base == cls.__bases__[0].__name__, name
        init = next((f for f in stub.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if init is not None:
            assert _stub_params(init) == _runtime_params(inspect.signature(cls)), name
            rt = inspect.signature(cls).parameters
            for arg, default in zip(reversed(init.args.args), reversed(init.args.defaults)):
                assert ast.literal_eval(default) == rt[arg.arg].default or isinstance(default, ast.Attribute), (
                    name, arg.arg)
        methods = {f.name for c in [stub] + [classes.get(b.__name__) for b in cls.__mro__[1:]] if c is not None
                   for f in c.body if isinstance(f, ast.FunctionDef)}
        for m in ("forward", "backward", "train", "eval") if cls is not nn.Module else ("train", "eval"):
            assert m in methods and callable(getattr(cls, m)), (name, m)


def test_dask_stub_declares_every_function_with_its_signature():
    import inspect

    fd = pytest.importorskip("fastact.dask")
    tree = ast.parse((PKG / "dask.pyi").read_text())
    stubs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(stubs) == set(fd.__all__)
    for name in fd.__all__:
        assert [a.arg for a in stubs[name].args.posonlyargs + stubs[name].args.args + stubs[name].args.kwonlyargs] == [
            p.name for p in inspect.signature(getattr(fd, name)).parameters.values() if p.kind != p.VAR_KEYWORD], name


def test_core_stub_declares_what_the_extension_has():
    tree = ast.parse((PKG / "_core.pyi").read_text())
    declared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    declared |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert declared == {n for n in dir(_core) if not n.startswith("__")}


def test_package_is_marked_typed():
    assert (PKG / "py.typed").is_file()


def test_layer_signatures_are_visible():
    assert list(inspect.signature(nn.LeakyReLU).parameters) == ["negative_slope"]
    assert list(inspect.signature(nn.HuberLoss).parameters) == ["delta", "reduction"]
    assert list(inspect.signature(nn.BCEWithLogitsLoss).parameters) == ["weight", "pos_weight", "reduction"]


def test_the_typed_example_runs():
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "loss" in r.stdout


def _clean_env():
    """The environment for a type checker: static analysis, so without a sanitizer's LD_PRELOAD (the
    ASan run of this suite) that node or mypy's compiled modules have no use for."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def _checker(name):
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install .[test] installs it)")
    return exe


def test_mypy_strict_accepts_ordinary_use_and_the_generated_files():
    exe = _checker("mypy")
    # the repository's copies (test_generated_api_is_current: the installed ones are the same): a file given
    # from site-packages would make mypy take site-packages for a source folder
    src = ROOT / "python" / "fastact"
    r = subprocess.run([exe, "--strict", "--follow-imports=silent", "--no-incremental", str(EXAMPLE),
                        str(src / "_ops.py"), str(src / "nn.pyi"), str(src / "_core.pyi"), str(src / "dask.pyi")],
                       capture_output=True, text=True, cwd=ROOT / "examples", env=_clean_env())
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_rejects_a_misuse():
    exe = _checker("mypy")
    bad = ROOT / "examples" / "_misuse_check.py"
    try:
        bad.write_text("import numpy as np\nimport fastact\nfrom fastact import nn\n"
                       "x = np.zeros(3, np.float32)\nfastact.gelu(x, approximate='exact')\nnn.GELU(approximat='tanh')\n"
                       "fastact.prelu(x, 0.25, channel_axis='last')\nimport fastact.dask as fd\n"
                       "fd.softmax(x, axis=1, rechunk='yes')\n"
                       "fastact.leaky_relu(x, negative_slope=np.float32(0.1))  # fine: a NumPy scalar\n")
        r = subprocess.run([exe, "--strict", "--no-incremental", str(bad)], capture_output=True, text=True,
                           cwd=ROOT / "examples", env=_clean_env())
    finally:
        bad.unlink()
    assert r.returncode == 1
    assert r.stdout.count("error:") == 4, r.stdout


def test_pyright_accepts_ordinary_use():
    exe = _checker("pyright")
    r = subprocess.run([exe, str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT, env=_clean_env())
    assert r.returncode == 0 and "0 errors" in r.stdout, r.stdout + r.stderr


def test_a_stale_ops_file_warns_and_the_functions_are_made_at_import(tmp_path):
    """An op added to the core without rerunning tools/gen_api.py: fastact still has every op."""
    shutil.copytree(PKG, tmp_path / "fastact", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "fastact" / "_ops.py").write_text("REGISTRY_DIGEST = 'stale'\n__all__: list = []\n")
    code = ("import warnings, pickle, numpy as np\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastact\n"
            "assert any('tools/gen_api.py' in str(m.message) for m in w), [str(m.message) for m in w]\n"
            "assert fastact.relu(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]\n"
            "assert pickle.loads(pickle.dumps(fastact.gelu)) is fastact.gelu\n"
            "assert fastact.nn.GELU()(np.zeros(2)).tolist() == [0.0, 0.0]\n"
            "print(len(fastact._ops.__all__))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(_ops.__all__)
