"""Bad input to the last three tools (issue 27): ``search_darts.py``, ``retrain.py`` and ``export.py``.

The same contract as ``tests/test_bad_input.py`` for the first four: one ``error:`` line naming the
cause, exit 2, no traceback, and every watched directory exactly as it was (no file created, none
modified). The cases run in-process through :func:`genas.cli.run_cli`, as ``tools/*.py`` do; each
stops at a check, so the table stays fast (a few seconds for the fixtures, well under a minute in all).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil

import numpy as np
import pytest

from genas.cli import run_cli
from tests.conftest import BEST as NB
from tests.test_bad_input import bad_input_failure, write_broken_npz

SEARCH = ("search_darts", "genas.differentiable.cli")
RETRAIN = ("retrain", "genas.export.retrain_cli")
EXPORT = ("export", "genas.export.cli")

SEARCH_TINY = ["--run.progress", "false", "--data.limit", "128", "--data.batch_size", "32", "--supernet.options.channels", "4",
               "--supernet.options.layers", "1", "--differentiable.epochs", "1"]  # fmt: skip
RETRAIN_TINY = ["--run.progress", "false", "--data.limit", "100", "--data.batch_size", "32", "--model.options.channels", "4",
                "--model.options.layers", "1", "--retrain.epochs", "1"]  # fmt: skip
TINY = {"search_darts": SEARCH_TINY, "retrain": RETRAIN_TINY, "export": []}

DARTS = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
         "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
         "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
         "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")  # fmt: skip
DARTS_CONCAT_INT = DARTS.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=5")
NB_NO_BAR = NB[1:]  # the leading '|' lost (a shell or an editor ate it)
CONCAT_MSG = "normal_concat must be a list of node indices, [2, 3, 4, 5]"
NO_BAR_MSG = "malformed NB201 string"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_run):
    """Bad files of every kind the three tools read, made once."""
    import torch

    from genas.export import create_network, save_network

    d = tmp_path_factory.mktemp("bad_tools")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for name in ("random.bin", "random.pt", "random.csv"):
        (d / name).write_bytes(noise)
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("x")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    write_broken_npz(d, rng)
    best = {  # best_arch.json of either space, malformed in the ways a hand edit or a copy makes them
        "nb201_no_bar.json": {"arch": NB_NO_BAR, "space": "nb201"},
        "nb201_bad_op.json": {"arch": NB.replace("skip_connect", "skip_conect"), "space": "nb201"},
        "nb201_as_darts.json": {"arch": NB, "space": "darts"},
        "darts_concat.json": {"arch": DARTS_CONCAT_INT, "space": "darts"},
        "darts_genotype.json": {"arch": "x", "space": "darts", "genotype": {"normal": 5, "reduce": []}},
        "null_arch.json": {"arch": None, "space": "nb201"},
        "no_arch.json": {"score": 1.0},
    }
    for name, data in best.items():
        (d / name).write_text(json.dumps(data))
    (d / "broken.json").write_text('{"arch": "|nor_conv_3x3~0|+')
    (d / "list.json").write_text("[1, 2]")
    shutil.copy(tiny_run / "checkpoints" / "last.pt", d / "supernet_last.pt")  # a supernet where a network is expected
    net = create_network("nb201", NB, channels=4, layers=1)
    save_network(net, d / "model.pt")
    record = torch.load(d / "model.pt", weights_only=True)
    record["hparams"]["channels"] = "four"
    torch.save(record, d / "channels_four.pt")
    record["hparams"] = {**net.hparams, "width": 2}
    torch.save(record, d / "foreign_hparams.pt")
    broken_run = d / "broken_run"  # a supernet run whose checkpoint is random bytes
    (broken_run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "metrics.csv"):  # a real supernet run (its config may hold every section) ...
        shutil.copy(tiny_run / name, broken_run / name)
    (broken_run / "checkpoints" / "last.pt").write_bytes(noise)  # ... whose last checkpoint is corrupt
    return d


@pytest.fixture(scope="module")
def retrain_run(tmp_path_factory):
    """A finished retrain run (model.pt, checkpoints/last.pt): NB201 C=4, one epoch on 100 digits."""
    from genas.export.retrain_cli import main

    root = tmp_path_factory.mktemp("retrain")
    assert run_cli(main, [*RETRAIN_TINY, "--arch", NB, "--run.root", str(root), "--run.name", "rt"]) == 0
    return root / "rt"


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """A finished differentiable search run (best_arch.json, checkpoints): one epoch on 128 digits."""
    import supernet  # noqa: F401  (registers the supernet section)
    from genas.config import load_config
    from genas.differentiable.cli import search_from_config

    root = tmp_path_factory.mktemp("search")
    search_from_config(load_config("a2m_quickstart", [*SEARCH_TINY, "--run.root", str(root), "--run.name", "sd"]))
    return root / "sd"


def cases(f, tiny_run, retrain_run, search_run):
    rt_model, rt_last = retrain_run / "model.pt", retrain_run / "checkpoints" / "last.pt"
    return [
        # ---- search_darts.py -----------------------------------------------------------------
        # unknown names
        (SEARCH, ["--architect", "a2n"], "unknown architect 'a2n'. Did you mean 'a2m'?"),
        (SEARCH, ["--variant", "betta"], "unknown variant 'betta'. Did you mean 'beta'?"),
        (SEARCH, ["--differentiable.rhoo", "0.1"], "Did you mean 'differentiable.architect_options.rho'"),
        (SEARCH, ["--data.dataset", "cifar11"], "Did you mean 'cifar10' or 'cifar100'?"),
        (SEARCH, ["--config", "no_such_config"], "config file 'no_such_config' not found"),
        # wrong types and ranges
        (SEARCH, ["--differentiable.epochs", "two"], "'differentiable.epochs' must be int; got 'two'"),
        (SEARCH, ["--differentiable.architect_options.rho", "0"], "The 'rho' parameter of architect a2m must be a float in the range (0.0, inf)"),
        (SEARCH, ["--differentiable.arch_betas", "[0.5]"], "'arch_betas' parameter of differentiable must be two floats"),
        (SEARCH, ["--differentiable.lr", "nan"], "differentiable.lr"),
        (SEARCH, ["--max-epochs", "0"], "--max-epochs must be a positive number of epochs. Got 0"),
        (SEARCH, ["--variant", "pc", "--variants.options.pc.k", "0"], "The 'k' parameter of variant pc must be an int"),
        (SEARCH, ["--variants.options.pc.k", "2"], "variants.options.pc are options of variant 'pc', which needs --variant pc"),
        (SEARCH, ["--variant", "beta", "--variants.options.pc.k", "2"], "needs --variant pc (variants in use: beta)"),
        (SEARCH, ["--variant", "pc", "--variants.options.beta.slope", "1"], "options of variant 'beta', which needs"),
        (SEARCH, ["--variant", "pc", "--variants.options.pc.kk", "1"], "variant 'pc' has no option 'kk'; its options: k,"),
        (SEARCH, ["--variant", "pc", "--variants.options.pc.form", "percell"], "The 'form' parameter of variant pc"),
        (SEARCH, ["--supernet.space", "darts", "--table", f / "random.csv"], "applies only to supernet.space 'nb201'"),
        # files that are not what they claim
        (SEARCH, ["--table", f / "random.csv"], "random.csv is not a text CSV file"),
        (SEARCH, ["--table", f / "missing.csv"], "missing.csv"),
        (SEARCH, ["--config", f / "random.bin"], "config file"),
        (SEARCH, ["--config", f / "list.yaml"], "must hold a mapping"),
        (SEARCH, ["--data.dataset", "npz", "--data.options.root", f / "zip_header.npz"], "zip_header.npz is not a readable npz file"),
        (SEARCH, ["--data.dataset", "cifar10", "--data.options.root", f / "bad_crc.npz"], "bad_crc.npz is not a readable npz file"),
        (SEARCH, ["--data.dataset", "npz", "--data.options.root", f / "a_dir"], "a_dir [data.options.root]"),
        # paths that cannot be written or resumed
        (SEARCH, ["--run.root", f / "a_file"], "not a directory"),
        (SEARCH, ["--run.root", f / "a_file" / "sub"], "is not a directory"),
        (SEARCH, ["--run.name", "n" * 300], "at most 200 characters"),
        (SEARCH, ["--resume", f / "a_dir"], "holds no run"),
        # ---- retrain.py --------------------------------------------------------------------
        # unknown names
        (RETRAIN, ["--arch", NB, "--retrain.epoch", "3"], "Did you mean 'retrain.epochs'"),
        (RETRAIN, ["--arch", NB, "--model.network", "resnet"], "unknown network 'resnet'. Did you mean"),
        (RETRAIN, ["--arch", NB, "--data.dataset", "digitz"], "Did you mean 'digits'"),
        # wrong types and ranges, options of another network
        (RETRAIN, ["--arch", NB, "--retrain.epochs", "0"], "The 'epochs' parameter of retrain must be"),
        (RETRAIN, ["--arch", NB, "--retrain.lr", "nan"], "retrain.lr"),
        (RETRAIN, ["--arch", NB, "--model.options.channels", "four"], "'model.options.channels'"),
        (RETRAIN, ["--arch", NB, "--max-steps", "0"], "--max-steps must be a positive number of steps"),
        (RETRAIN, ["--arch", NB, "--retrain.drop_path", "0.2"], "retrain.drop_path 0.2 applies to DARTS networks"),
        (RETRAIN, ["--arch", NB, "--model.options.auxiliary", "true"], "model.options.auxiliary applies to DARTS networks, not to nb201"),
        (RETRAIN, ["--arch", NB, "--model.options.stem_multiplier", "2"], "model.options.stem_multiplier applies to DARTS networks"),
        (RETRAIN, ["--arch", DARTS, "--model.network", "darts_imagenet", "--model.options.geometry", "dense"],
         "network 'darts_imagenet' takes no option 'geometry'"),
        # malformed architectures, strings and best_arch.json of either space
        (RETRAIN, ["--arch", NB_NO_BAR], "the leading '|' is missing"),
        (RETRAIN, ["--arch", NB.replace("+|skip", "+skip")], "node 3's leading '|' is missing"),
        (RETRAIN, ["--arch", NB.replace("skip_connect", "skip_conect")], "Did you mean 'skip_connect'"),
        (RETRAIN, ["--arch", NB, "--model.network", "darts"], "looks like an NB201 string, not a DARTS architecture"),
        (RETRAIN, ["--arch", DARTS_CONCAT_INT], CONCAT_MSG),
        (RETRAIN, ["--arch", DARTS.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 3]")], "reduce_concat must be"),
        (RETRAIN, ["--arch", "Genotype(normal=[("], "malformed DARTS genotype string"),
        (RETRAIN, ["--arch", "[" + ", ".join(["4"] * 28) + "]"], "normal cell / node 3: 3 non-none inputs"),
        (RETRAIN, ["--arch", f / "nb201_no_bar.json"], "the leading '|' is missing"),
        (RETRAIN, ["--arch", f / "nb201_bad_op.json"], "unknown op 'skip_conect'"),
        (RETRAIN, ["--arch", f / "nb201_as_darts.json"], "looks like an NB201 string, not a DARTS architecture"),
        (RETRAIN, ["--arch", f / "darts_concat.json"], CONCAT_MSG),
        (RETRAIN, ["--arch", f / "darts_genotype.json"], "normal must be a list of 8 (op, input) pairs, 2 per node; got 5"),
        (RETRAIN, ["--arch", f / "null_arch.json"], "holds no architecture"),
        (RETRAIN, ["--arch", f / "no_arch.json"], "is not a search result"),
        (RETRAIN, ["--arch", f / "broken.json"], "cannot read an architecture from"),
        (RETRAIN, ["--arch", f / "list.json"], "is not a search result"),
        (RETRAIN, ["--arch", f / "missing.json"], "no architecture file at"),
        (RETRAIN, ["--arch", f / "a_dir"], "is a directory; give a best_arch.json file"),
        (RETRAIN, [], "no architecture: give --arch"),
        # checkpoints: corrupt, foreign, of another kind of run
        (RETRAIN, ["--arch", f / "random.pt"], "is corrupt or not a torch file"),
        (RETRAIN, ["--arch", f / "supernet_last.pt"], "a supernet training checkpoint"),
        (RETRAIN, ["--arch", NB, "--inherit", f / "broken_run"], "is corrupt or unreadable"),
        (RETRAIN, ["--arch", NB, "--inherit", f / "a_dir"], "holds no supernet run (no config.yaml)"),
        (RETRAIN, ["--arch", NB, "--inherit", retrain_run], "is a retrain run (tools/retrain.py), not a supernet run"),
        (RETRAIN, ["--arch", NB, "--inherit", search_run], "is a differentiable search run (tools/search_darts.py)"),
        (RETRAIN, ["--arch", DARTS, "--inherit", tiny_run], "is a 'nb201' supernet; network 'darts' builds 'darts'"),
        (RETRAIN, ["--arch", NB, "--inherit", tiny_run, "--model.options.channels", "16"], "has channels 4 but the network asks"),
        # resumes of what is not a retrain run
        (RETRAIN, ["--resume", search_run], f"{search_run} is a differentiable search run (tools/search_darts.py), not a "
                                            "retrain run"),
        (RETRAIN, ["--resume", tiny_run], "is a supernet training run (tools/train_supernet.py), not a retrain run"),
        (RETRAIN, ["--resume", f / "a_dir"], "holds no run"),
        # data and paths
        (RETRAIN, ["--arch", NB, "--data.dataset", "npz", "--data.options.root", f / "cut.npz"], "cut.npz is not a readable npz"),
        (RETRAIN, ["--arch", NB, "--run.root", f / "a_file"], "not a directory"),
        (RETRAIN, ["--arch", NB, "--config", f / "list.yaml"], "must hold a mapping"),
        # ---- export.py ---------------------------------------------------------------------
        # unknown names, wrong types and ranges
        (EXPORT, ["--arch", NB, "--format", "tflite"], "invalid choice: 'tflite'"),
        (EXPORT, ["--arch", NB, "--model.chanels", "4"], "Did you mean 'model.options.channels'"),
        (EXPORT, ["--arch", NB, "--model.network", "resnet"], "unknown network 'resnet'. Did you mean"),
        (EXPORT, ["--arch", NB, "--image-size", "0"], "--image-size must be a positive int"),
        (EXPORT, ["--arch", NB, "--num-classes", "ten"], "invalid int value: 'ten'"),
        (EXPORT, ["--arch", NB, "--model.options.layers", "-1"], "The 'layers' parameter of model must be"),
        (EXPORT, ["--arch", NB, "--atol", "-1"], "--atol must be a finite float >= 0"),
        (EXPORT, ["--arch", NB, "--atol", "nan"], "--atol must be a finite float >= 0"),
        (EXPORT, ["--arch", NB, "--model.options.auxiliary", "true"], "model.options.auxiliary applies to DARTS networks, not to nb201"),
        (EXPORT, ["--arch", NB, "--model.options.stem_multiplier", "2"], "model.options.stem_multiplier applies to DARTS networks"),
        (EXPORT, ["--arch", NB, "--model.options.pool_bn", "true", "--check"], "model.options.pool_bn applies to DARTS networks"),
        # malformed architectures
        (EXPORT, ["--arch", NB_NO_BAR], "the leading '|' is missing"),
        (EXPORT, ["--arch", NB_NO_BAR, "--check"], "the leading '|' is missing"),
        (EXPORT, ["--arch", DARTS_CONCAT_INT], CONCAT_MSG),
        (EXPORT, ["--arch", f / "darts_concat.json"], CONCAT_MSG),
        (EXPORT, ["--arch", f / "nb201_no_bar.json"], "the leading '|' is missing"),
        (EXPORT, ["--arch", f / "broken.json"], "cannot read an architecture from"),
        (EXPORT, ["--format", "pt"], "nothing to export: give --arch"),
        # checkpoints: corrupt, foreign, edited, of another kind of run
        (EXPORT, ["--checkpoint", f / "random.pt"], "is corrupt or not a torch file"),
        (EXPORT, ["--checkpoint", f / "missing.pt"], "no network checkpoint at"),
        (EXPORT, ["--checkpoint", f / "supernet_last.pt"], "a supernet training checkpoint: export a subnet with --inherit"),
        (EXPORT, ["--checkpoint", f / "channels_four.pt"], "The 'channels' parameter of network checkpoint"),
        (EXPORT, ["--checkpoint", f / "foreign_hparams.pt"], "hparams ['width'] are not arguments of network 'nb201'"),
        (EXPORT, ["--checkpoint", rt_last], f"is a training checkpoint of retrain run {retrain_run}, not a network "
                                            f"checkpoint; its network checkpoint is {rt_model}"),
        (EXPORT, ["--checkpoint", rt_model, "--model.options.channels", "36"], "model.options.channels 36 differs from --checkpoint"),
        (EXPORT, ["--checkpoint", rt_model, "--num-classes", "3"], "--num-classes 3 differs from --checkpoint"),
        (EXPORT, ["--checkpoint", rt_model, "--model.network", "darts"], "holds a 'nb201' network; model.network is 'darts'"),
        (EXPORT, ["--checkpoint", rt_model, "--arch", NB], "drop --arch / --inherit"),
        (EXPORT, ["--arch", NB, "--inherit", retrain_run], f"is a retrain run (tools/retrain.py), not a supernet run; a "
                                                           f"retrained network is exported with --checkpoint {rt_model}"),
        (EXPORT, ["--arch", NB, "--inherit", retrain_run, "--check"], "is a retrain run"),
        (EXPORT, ["--arch", NB, "--inherit", search_run], "is a differentiable search run"),
        (EXPORT, ["--arch", NB, "--inherit", f / "broken_run"], "is corrupt or unreadable"),
        (EXPORT, ["--arch", NB, "--inherit", tiny_run, "--model.options.channels", "16"], "has channels 4 but the network asks"),
        # outputs that cannot be written
        (EXPORT, ["--arch", NB, "--out", f / "a_dir"], "is a directory; give a file name"),
        (EXPORT, ["--arch", NB, "--out", f / "a_file" / "m.pt"], "is not a directory"),
    ]  # fmt: skip


def listing(root) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time: a file created or rewritten shows."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_every_bad_input_of_the_last_three_tools_is_one_line_exit_2_and_writes_nothing(
        files, tiny_run, retrain_run, search_run, tmp_path, monkeypatch, capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # runs/ of a default run, runs/export/ of an export would land here
    monkeypatch.delenv("GENAS_NB201_TABLE", raising=False)
    watched = [tmp_path, files, tiny_run, retrain_run, search_run]
    failures = []
    for (command, module), argv, needle in cases(files, tiny_run, retrain_run, search_run):
        argv = [*TINY[command], *(str(a) for a in argv)]
        if command == "export" and "--out" not in argv and "--format" not in argv:
            argv += ["--format", "pt"]
        failure = bad_input_failure(capsys, module, argv, needle, watched, listing)
        if failure:
            failures.append(f"{command} {failure}")
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a read-only folder")
@pytest.mark.parametrize("command, argv", [
    (SEARCH, ["--run.root", "RO/runs"]),
    (RETRAIN, ["--arch", NB, "--run.root", "RO/runs"]),
    (EXPORT, ["--arch", NB, "--format", "pt", "--out", "RO/m.pt"]),
])  # fmt: skip
def test_an_unwritable_folder_is_one_line_before_any_work(command, argv, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        argv = [*TINY[command[0]], *(a.replace("RO", str(ro)) for a in argv)]
        assert run_cli(importlib.import_module(command[1]).main, argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not writable" in err[0], err
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_the_spaces_name_the_concat_field_and_the_missing_bar():
    from genas.errors import InvalidArchitectureError
    from genas.export import guess_space, read_arch
    from genas.spaces import create_space

    darts, nb201 = create_space("darts"), create_space("nb201")
    for bad in (DARTS_CONCAT_INT, {"normal": [["sep_conv_3x3", 0]] * 8, "normal_concat": 5},
                DARTS.replace("normal_concat=[2, 3, 4, 5]", "normal_concat='2345'")):  # fmt: skip
        with pytest.raises(InvalidArchitectureError, match=r"normal_concat must be a list of node indices, \[2, 3, 4, 5\]"):
            darts.parse(bad)
    ranged = DARTS.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")  # as the DARTS code prints it
    assert darts.parse(ranged) == darts.parse(DARTS)
    assert guess_space(NB_NO_BAR) == "nb201" and guess_space(DARTS) == "darts"
    for parse in (nb201.parse, read_arch):
        with pytest.raises(InvalidArchitectureError, match=r"malformed NB201 string .*: the leading '\|' is missing"):
            parse(NB_NO_BAR)
    with pytest.raises(InvalidArchitectureError, match=r"the trailing '\|' is missing"):
        nb201.parse(NB[:-1])
    with pytest.raises(InvalidArchitectureError, match="looks like an NB201 string, not a DARTS architecture"):
        darts.parse(NB_NO_BAR)
