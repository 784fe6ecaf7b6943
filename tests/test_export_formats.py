"""ONNX (in onnxruntime) and TorchScript exports match PyTorch at any batch size; the export command and its bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genas.export.cli import main as export_main
from genas.export.formats import check_export, export_onnx, export_torchscript, random_inputs
from genas.cli import run_cli
from genas.spaces import create_space
from tests.test_export_networks import DARTS_V2, NB201, tiny

onnx_ready = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="onnx / onnxruntime / onnxscript are not installed (pip install -e '.[export]')",
)


def reference(net, x):
    with torch.no_grad():
        return net.eval()(x)


@onnx_ready
@pytest.mark.parametrize("name, exporter", [("nb201", "legacy"), ("darts", "legacy"), ("darts_imagenet", "legacy")])
def test_onnx_matches_pytorch_in_onnxruntime_with_a_dynamic_batch(name, exporter, tmp_path):
    import onnx
    import onnxruntime as ort

    net, size = tiny(name, **({"auxiliary": True} if name != "nb201" else {}))
    path = export_onnx(net, tmp_path / "m.onnx", size, exporter=exporter)
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    for x in random_inputs(3, size, batch_sizes=(1, 5), seed=1):  # the export traced batch 2
        got = session.run(None, {"images": x.numpy()})[0]
        np.testing.assert_allclose(got, reference(net, x).numpy(), rtol=0, atol=1e-4)
    assert check_export("onnx", path, net, random_inputs(3, size))["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("name", ["nb201", "darts", "darts_imagenet"])
def test_torchscript_matches_pytorch_with_a_dynamic_batch(name, tmp_path):
    net, size = tiny(name)
    path = export_torchscript(net, tmp_path / "m.ts", size)
    with pytest.warns(FutureWarning):  # torch.jit is deprecated, yet still the portable C++ format
        module = torch.jit.load(str(path))
    for x in random_inputs(3, size, batch_sizes=(1, 4), seed=2):
        assert torch.allclose(module(x), reference(net, x), rtol=0, atol=1e-4)


def test_export_command_from_a_supernet_run(tiny_run, tmp_path, capsys):
    arch = create_space("nb201").sample(np.random.default_rng(0))
    out = tmp_path / "net.pt"
    assert run_cli(export_main, ["--arch", str(arch), "--inherit", str(tiny_run), "--format", "pt", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters" in printed and "MFLOPs at 1x8x8" in printed and out.is_file()
    code = run_cli(export_main, ["--checkpoint", str(out), "--format", "torchscript", "--run.seed", "3"])
    assert code == 0 and out.with_suffix(".ts").is_file()
    assert "max |diff| = 0 (atol 0.0001) ok" in capsys.readouterr().out


@onnx_ready
def test_export_command_writes_checked_onnx_with_the_default_exporter(tmp_path, capsys):
    import onnx

    out = tmp_path / "sub" / "m.onnx"
    args = ["--arch", DARTS_V2, "--model.options.channels", "4", "--model.options.layers", "5", "--model.options.auxiliary", "true",
            "--image-size", "16", "--out", str(out)]  # fmt: skip
    assert run_cli(export_main, args) == 0  # dynamo (torch's default exporter), checked on batches 1 and 3
    assert "max |diff|" in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic (dynamic) batch dimension


BAD = [
    (["--arch", NB201, "--model.network", "darts"], "looks like an NB201 string, not a DARTS architecture"),
    (["--arch", DARTS_V2.replace("('dil_conv_3x3', 2)], normal_concat", "], normal_concat")],
     "normal cell: a Genotype lists 8 (op, input) pairs, got 7"),
    (["--arch", "[" + ", ".join(["4"] * 28) + "]"], "normal cell / node 3: 3 non-none inputs"),
    (["--arch", DARTS_V2, "--inherit", "TINY_RUN"], "is a 'nb201' supernet; network 'darts' builds 'darts' architectures"),
    (["--arch", NB201, "--inherit", "TINY_RUN", "--model.options.channels", "16"], "has channels 4 but the network asks for channels 16"),
    (["--arch", NB201, "--out", "FILE/m.onnx"], "is not a directory"),
    (["--arch", NB201, "--out", "TMP/new/"], "is a directory; give a file name"),
    (["--arch", NB201, "--inherit", "TMP"], "holds no supernet run (no config.yaml)"),
    (["--format", "onnx"], "nothing to export: give --arch"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", BAD, ids=["wrong-space", "genotype-7-pairs", "genes-3-inputs", "inherit-space",
                                                      "inherit-channels", "unwritable-out", "out-dir", "inherit-not-a-run",
                                                      "no-arch"])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_nothing_written(args, message, tiny_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory is needed")
    args = [a.replace("TINY_RUN", str(tiny_run)).replace("FILE", str(blocker)).replace("TMP", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out" / "m.onnx")]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert run_cli(export_main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_write_that_fails_late_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import genas.io

    def read_only(*args, **kwargs):  # what os.access cannot foresee: a read-only mount, a full disk
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(genas.io.tempfile, "mkstemp", read_only)
    for fmt in ("torchscript", "pt"):
        out = tmp_path / f"m.{fmt}"
        args = ["--arch", NB201, "--model.options.channels", "4", "--model.options.layers", "1", "--format", fmt, "--out", str(out)]
        assert run_cli(export_main, args) == 2
        err = capsys.readouterr().err
        assert err == f"error: cannot write --out {out}: Read-only file system\n"
    assert not list(tmp_path.iterdir())


def test_genas_export_and_retrain_are_commands(tmp_path, capsys):
    from genas.commands import COMMANDS, dispatch

    assert COMMANDS["export"][0] == "genas.export.cli" and COMMANDS["retrain"][0] == "genas.export.retrain_cli"
    out = tmp_path / "net.pt"
    assert dispatch(["export", "--arch", NB201, "--model.options.channels", "4", "--model.options.layers", "1", "--format", "pt",
                     "--out", str(out)]) == 0  # fmt: skip
    assert out.is_file() and f"wrote {out} (genas network checkpoint)" in capsys.readouterr().out
