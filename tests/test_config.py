"""Config: YAML + CLI overrides, unknown keys, types, ranges."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import genas.errors

import evolution  # noqa: F401  (each stage registers its config sections)
import scorers  # noqa: F401
import supernet  # noqa: F401
from genas.config import CONFIG_DIR, Config, dump_config, load_config, split_overrides, yaml_load
from genas.errors import ConfigError, UnknownNameError
from tests.conftest import REPO


def test_defaults_are_the_spec_values():
    cfg = Config()
    assert (cfg.train.lr, cfg.train.lr_min, cfg.train.momentum, cfg.train.weight_decay) == (0.025, 0.001, 0.9, 5e-4)
    assert (cfg.search.population, cfg.search.topk, cfg.search.mutations, cfg.search.crossovers) == (50, 10, 25, 25)
    assert cfg.search.mutation_prob == 0.1 and cfg.search.iterations == 20


def cli_stderr(module: str, argv: list[str]) -> list[str]:
    """The non-empty stderr lines of ``module``'s CLI run on ``argv`` in a fresh process (which must exit 0)."""
    code = f"import sys\nfrom genas.cli import run_cli\nfrom {module} import main\nsys.exit(run_cli(main, {argv!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_builtin_configs_load(name):
    cfg = load_config(name)
    assert load_config(None, base=yaml_load(dump_config(cfg))) == cfg  # resolved config round-trips


def test_recipes_hold_the_spec_values():
    nb = load_config("nb201_cifar10")
    assert (nb.supernet.channels, nb.supernet.layers, nb.supernet.affine) == (16, 5, False)
    assert (nb.train.epochs, nb.data.batch_size, nb.train.weight_decay, nb.train.nesterov) == (250, 64, 5e-4, True)
    assert nb.data.split == "nb201" and (nb.search.population, nb.search.topk) == (100, 30)
    d = load_config("darts_cifar10")
    assert (d.supernet.space, d.supernet.layers, d.supernet.affine, d.train.grad_clip, d.train.weight_decay) == (
        "darts", 8, True, 5.0, 3e-4)


def test_overrides_both_spellings_and_types():
    cfg = load_config("quickstart", ["--train.epochs", "3", "--train.lr=1e-2", "--run.name", "x",
                                     "--score.scorer", "flatness", "--score.options.sigmas", "[2e-3, 1e-2]", "--train.grad_clip", "none"])  # fmt: skip
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01 and cfg.run.name == "x"
    assert cfg.score.options == {"sigmas": [0.002, 0.01]} and cfg.train.grad_clip is None
    rest, pairs = split_overrides(["--config", "a.yaml", "--data.limit", "5", "--resume"])
    assert rest == ["--config", "a.yaml", "--resume"] and pairs == [("data.limit", "5")]


def test_yaml_reads_exponent_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-2\n  weight_decay: 3e-4\n")
    cfg = load_config(path)
    assert cfg.train.lr == 0.01 and cfg.train.weight_decay == 3e-4


@pytest.mark.parametrize(
    "over, needle",
    [
        (["--train.lrr", "1"], "unknown config key 'train.lrr'. Did you mean 'train.lr'"),
        (["--tarin.lr", "1"], "unknown config section 'tarin'"),
        (["--train.epochs", "many"], "'train.epochs' must be int"),
        (["--train.epochs", "0"], "The 'epochs' parameter of train must be an int in the range [1, 100000]. Got 0"),
        (["--data.dataset", "cifar10", "--data.options.split", "nb"], "Did you mean 'nb201'"),
        (["--data.options.split", "nb201"], "dataset 'digits' takes no option 'split'; its options: none"),
        (["--run.device", "tpu"], "'device' parameter of run"),
        (["--train.amp", "fp8"], "{'bf16', 'none'}"),
        (["--train.lr_min", "1.0"], "lr_min"),
        (["--search.options.topk", "99"], "The 'topk' parameter of search"),
    ],
)
def test_bad_values_raise_one_line_config_errors(over, needle):
    with pytest.raises(ConfigError) as info:
        load_config("quickstart", over)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found; built-in configs: .*darts_cifar10, nb201_cifar10, quickstart"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="Did you mean 'train'"):
        load_config(bad)


def test_the_table_of_stage_sections_is_true():
    import importlib

    from genas.config import SECTIONS, STAGE_SECTIONS

    for package in set(STAGE_SECTIONS.values()):
        importlib.import_module(package)
    stages = sorted(set(STAGE_SECTIONS.values()), key=len, reverse=True)  # genas.export before genas

    def owner(module: str) -> str | None:
        return next((s for s in stages if module == s or module.startswith(s + ".")), None)

    owners = {name: owner(SECTIONS.get(name).__module__) for name in SECTIONS.list()}
    assert {k: v for k, v in owners.items() if v is not None} == STAGE_SECTIONS


def test_foreign_sections_are_kept_and_typos_are_not(tmp_path):
    from genas.config import Config

    # a fresh process that has imported only the core and the supernet stage: "model" (export's) is foreign there
    code = ("import supernet.config; from genas.config import load_config; "
            "cfg = load_config(None, base={'model': {'anything': 1}, 'train': {'epochs': 3}}); "
            "print(cfg.train.epochs, cfg.to_dict()['model'])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(None, 1) == ["3", "{'anything': 1}\n"]
    for bad in ({"trian": {"epochs": 3}}, {"serach": {"population": 3}}):
        with pytest.raises(ConfigError, match="unknown config section .* Did you mean"):
            load_config(None, base=bad)
    with pytest.raises(ConfigError, match="of this command"):
        load_config(None, [("nosuch.key", "1")])
    assert isinstance(Config(), Config)


def test_a_registry_loads_its_builtin_modules_on_the_first_lookup(tmp_path, monkeypatch):
    """One way of loading built-ins: the registry imports the modules it names, once, when first asked."""
    import sys

    from genas.registry import Registry

    reg = Registry("widget", builtins=("genas_test_widgets",))
    (tmp_path / "genas_test_widgets.py").write_text(
        "import sys\nfrom tests.test_config import WIDGETS\nWIDGETS.add('spanner', object)\n"
        "sys.modules[__name__].loads = getattr(sys.modules.get(__name__), 'loads', 0) + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(globals(), "WIDGETS", reg)
    assert "genas_test_widgets" not in sys.modules  # nothing imported at construction
    assert reg.list() == ["spanner"] and "spanner" in reg and reg.get("spanner") is object
    assert sys.modules["genas_test_widgets"].loads == 1
    with pytest.raises(UnknownNameError, match="unknown widget 'spaner'. Did you mean 'spanner'"):
        reg.get("spaner")
    monkeypatch.delitem(sys.modules, "genas_test_widgets")


def test_every_builtin_registry_is_filled_without_side_effect_imports():
    import subprocess
    import sys

    code = ("from scorers.registry import SCORERS\nfrom evolution.base import ALGORITHMS\n"
            "from genas.data.base import DATASETS\nfrom genas.differentiable.variant_base import VARIANTS\n"
            "print(len(SCORERS) > 10, ALGORITHMS.list(), 'digits' in DATASETS, VARIANTS.list())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.stdout.split("\n")[0] == ("True ['evolution', 'random', 'rea'] True "
                                         "['beta', 'darts-minus', 'na', 'pc', 'sdarts-rs']"), out.stderr  # fmt: skip


@pytest.mark.parametrize("argv, yaml_text", [
    (["--search.cycles", "40"], None),
    ([], "search:\n  algorithm: rea\n  cycles: 40\n"),
])  # fmt: skip
def test_the_old_spelling_of_an_algorithm_option_works_with_one_warning_line(tmp_path, argv, yaml_text):
    """One shape for a pluggable kind: ``search.algorithm`` + ``search.options``; the old flat keys warn once."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text or "search:\n  algorithm: rea\n")
    lines = cli_stderr("evolution.cli", ["--config", str(config), "--check", *argv, "--search.max_params", "9"])
    assert lines == ["warning: search.cycles (--search.cycles) is deprecated and will be removed in the next release; "
                     "write search.options.cycles (--search.options.cycles)"], lines  # fmt: skip
    config.write_text("search:\n  algorithm: rea\n  options:\n    cycles: 40\n")  # the new shape, the same value
    cfg = load_config(config)
    assert (cfg.search.algorithm, cfg.search.cycles, cfg.search.to_dict()["options"]["cycles"]) == ("rea", 40, 40)


def test_an_option_the_algorithm_does_not_take_names_the_new_spelling():
    with pytest.raises(ConfigError, match=r"search algorithm 'rea' takes no option 'topk'; its options: .*cycles.* "
                                          r"\(search.options.NAME"):  # fmt: skip
        load_config(None, ["--search.algorithm", "rea", "--search.options.topk", "3"])


def test_the_old_flat_spelling_of_a_variant_option_works_with_one_warning_line(tmp_path):
    """Variants in the one shape: ``variants.use`` + ``variants.options.<name>``; ``variants.pc_k`` warns once."""
    lines = cli_stderr("genas.differentiable.cli", ["--check", "--variant", "pc,beta", "--variants.pc_k", "2",
                                                    "--variants.pc_k", "2", "--variants.options.beta.slope", "1"])
    assert lines == ["warning: variants.pc_k (--variants.pc_k) is deprecated and will be removed in the next release; "
                     "write variants.options.pc.k (--variants.options.pc.k)"], lines  # fmt: skip
    config = tmp_path / "v.yaml"
    config.write_text("variants:\n  use: [pc, beta]\n  options:\n    pc: {k: 2, form: asquaredm}\n    beta: {slope: 1}\n")
    import genas.differentiable  # noqa: F401  (registers the variants section)

    cfg = load_config(config)
    assert cfg.variants.build().options() == {"pc": {"k": 2, "edge_norm": False, "warmup": 0, "form": "asquaredm"},
                                              "beta": {"init": 0.0, "slope": 1.0, "normal_weight": 1.0,
                                                       "reduce_weight": 1.0}}  # fmt: skip


def test_the_old_spelling_of_an_architect_option_works_with_one_warning_line():
    """The architect in the one shape: ``differentiable.architect`` + ``differentiable.architect_options``."""
    lines = cli_stderr("genas.differentiable.cli", ['--check', '--differentiable.rho', '0.2', '--differentiable.rho', '0.3'])
    assert lines == ["warning: differentiable.rho (--differentiable.rho) is deprecated and will be removed in the next "
                     "release; write differentiable.architect_options.rho (--differentiable.architect_options.rho)"]
    import genas.differentiable  # noqa: F401  (registers the differentiable section)

    cfg = load_config("a2m_darts", ["--differentiable.architect_options.fd", "forward"])
    assert cfg.differentiable.architect_kwargs() == {"rho": 0.1, "eps": 0.01, "fd": "forward"}
    assert load_config("a2m_darts", ["--differentiable.architect", "darts"]
                       ).differentiable.architect_kwargs() == {}  # a2m's options do not follow to darts


def test_the_supernet_in_the_one_shape_and_its_old_spelling_with_one_warning_line(tmp_path):
    """``supernet.space`` + ``supernet.options`` (the class's own table); ``--supernet.channels`` warns once;
    a run recorded in the old flat shape resumes silently and builds the same supernet."""
    lines = cli_stderr("supernet.cli", ['--check', '--supernet.channels', '8', '--supernet.channels', '8'])
    assert lines == ["warning: supernet.channels (--supernet.channels) is deprecated and will be removed in the next "
                     "release; write supernet.options.channels (--supernet.options.channels)"], lines  # fmt: skip
    from genas.errors import GenasDeprecationWarning

    new = load_config(None, ["--supernet.space", "darts", "--supernet.options.channels", "8", "--supernet.options.stem", "imagenet"])
    assert new.supernet.to_dict() == {"space": "darts", "options": {"channels": 8, "stem": "imagenet"}}
    assert (new.supernet.channels, new.supernet.layers, new.supernet.affine) == (8, None, None)  # unset: the builder's
    old_record = {"supernet": {"space": "darts", "channels": 8, "layers": None, "affine": None, "track_running_stats": True,
                               "stem_multiplier": None, "stem": "imagenet"}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenasDeprecationWarning)
        resumed = load_config(None, base=old_record)
    assert resumed.supernet.to_dict() == {"space": "darts", "options": {"channels": 8, "track_running_stats": True,
                                                                        "stem": "imagenet"}}  # fmt: skip
    assert load_config(None, base=new.to_dict()) == new  # the new record round-trips
    with pytest.raises(ConfigError, match=r"supernet 'nb201' takes no option 'stem_multiplier'; its options: affine, "
                                          r"channels, layers, track_running_stats \(supernet.options.NAME"):  # fmt: skip
        load_config(None, ["--supernet.options.stem_multiplier", "3"])
    with pytest.raises(ConfigError, match=r"The 'stem' parameter of supernet must be one of \{'cifar', 'imagenet'\}"):
        load_config(None, ["--supernet.space", "darts", "--supernet.options.stem", "mobile"])


def test_the_model_section_in_the_one_shape_and_its_old_spelling():
    """``model.network`` + ``model.options`` (the network class's own table); unset network: any network's
    options, checked again once the architecture names the network; ``--model.channels`` warns once."""
    import genas.export.config  # noqa: F401  (registers the model section)
    from genas.errors import GenasDeprecationWarning

    cfg = load_config("retrain_darts_cifar10", ["--model.arch", "a.json"])
    assert cfg.model.to_dict() == {"network": "darts", "options": {"channels": 36, "layers": 20, "auxiliary": True},
                                   "arch": "a.json", "inherit": None, "inherit_checkpoint": "last"}  # fmt: skip
    assert (cfg.model.channels, cfg.model.affine, cfg.model.network_kwargs()["layers"]) == (36, None, 20)
    unset = load_config(None, ["--model.options.auxiliary", "true"])  # network from the architecture, later
    assert unset.model.network is None and unset.model.auxiliary is True
    with pytest.raises(ConfigError, match="model.options.auxiliary applies to DARTS networks, not to nb201"):
        genas.export.config.check_model_options(unset.model, "nb201")
    with pytest.raises(ConfigError, match=r"takes no option 'chanels'.*Did you mean 'model.options.channels'"):
        load_config(None, ["--model.options.chanels", "4"])
    genas.errors._WARNED.discard("model.layers (--model.layers)")
    with pytest.warns(GenasDeprecationWarning, match=r"model.layers .* write model.options.layers"):
        old = load_config(None, ["--model.network", "nb201", "--model.layers", "2"])
    assert old.model.options == {"layers": 2}


def test_the_data_section_in_the_one_shape_and_its_old_spelling(tmp_path):
    """``data.dataset`` + ``data.options`` (what the dataset's registry entry says it takes); ``--data.root`` warns
    once; a run recorded in the old flat shape reads silently."""
    assert cli_stderr("supernet.cli", ["--check", "--data.dataset", "synthetic", "--data.limit", "64"]) == []  # common keys
    from genas.data.base import dataset_options
    from genas.errors import GenasDeprecationWarning

    assert dataset_options("digits").option_defaults() == {}
    assert dataset_options("cifar10").option_defaults() == {"root": None, "download": False, "split": "default"}
    assert set(dataset_options("imagefolder").option_defaults()) == {"root", "image_size", "workers", "on_error"}
    genas.errors._WARNED.discard("data.root (--data.root)")
    with pytest.warns(GenasDeprecationWarning, match=r"data.root .* write data.options.root"):
        old = load_config(None, ["--data.dataset", "cifar10", "--data.root", str(tmp_path)])
    assert old.data.options == {"root": str(tmp_path)} and old.data.root == str(tmp_path)
    record = {"data": {"dataset": "digits", "root": None, "split": "default", "download": False, "batch_size": 32,
                       "eval_batch_size": 256, "limit": None, "valid_fraction": None, "augment": None,
                       "random_labels": False, "image_size": None, "workers": 4, "on_error": "skip"}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenasDeprecationWarning)
        recorded = load_config(None, base=record)
    assert recorded.data.to_dict() == {"dataset": "digits", "options": {}, "batch_size": 32, "eval_batch_size": 256,
                                       "limit": None, "valid_fraction": None, "augment": None, "random_labels": False}
    with pytest.raises(ConfigError, match=r"The 'workers' parameter of data must be an int in the range \[0, 256\]"):
        load_config(None, ["--data.dataset", "imagefolder", "--data.options.workers", "-1"])
    with pytest.raises(ConfigError, match=r"dataset 'digits' takes no option 'workers'"):
        load_config(None, ["--data.options.workers", "2"])
