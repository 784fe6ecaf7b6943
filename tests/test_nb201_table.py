"""The NAS-Bench-201 accuracy table: reading, validation, names and vectorised lookups."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from genas.tables import (
    ACCURACY_COLUMNS,
    NB201Table,
    codes_to_genes,
    column_name,
    genes_to_codes,
    load_nb201_table,
    normalize_dataset,
)
from genas.errors import ConfigError, DataNotFoundError, PluginError
from genas.spaces import NB201Arch, NB201Space

REAL_TABLE = Path(
    os.environ.get("GENAS_NB201_TABLE") or Path(__file__).resolve().parents[2] / "shared/data/nb201/nb201_accuracy.csv"
)
HEADER = "index,arch,cifar10_test,cifar100_test"
ROWS = [
    "0,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,85.8633,52.9133",
    "1,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,93.6600,70.2933",
    "7,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10.0000,1.0000",
]


@pytest.fixture(scope="module")
def real_table() -> NB201Table:
    if not REAL_TABLE.is_file():
        pytest.skip(f"NB201 table not found at {REAL_TABLE} (set GENAS_NB201_TABLE)")
    return NB201Table.from_csv(REAL_TABLE)


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


# ---- the real table ---------------------------------------------------------------------
def test_real_table_shape_and_known_values(real_table: NB201Table) -> None:
    assert len(real_table) == 15625 and real_table.is_complete
    assert list(real_table.indices) == list(range(15625))
    assert real_table.accuracy(real_table.arch(6111), dataset="cifar10") == pytest.approx(94.3733)
    assert real_table.accuracy(real_table.arch(9930), dataset="c100") == pytest.approx(73.5133)
    assert real_table.accuracy(real_table.arch(857), dataset="ImageNet16-120") == pytest.approx(47.3111)
    assert real_table.accuracy(real_table.arch(0), dataset="cifar10-valid") == pytest.approx(81.9827)
    brief = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert real_table.index_of(brief) == 9930


def test_real_table_vectorised_lookups_agree(real_table: NB201Table) -> None:
    col = real_table.column("cifar100")
    by_code = real_table.column_by_code("cifar100")
    assert not np.isnan(by_code).any()
    np.testing.assert_array_equal(by_code[real_table.codes], col)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, 15625, size=50)
    archs = [real_table.arch(int(i)) for i in pick]
    np.testing.assert_array_equal(real_table.accuracy(archs, "cifar100"), col[pick])
    assert [real_table.index_of(a) for a in archs] == pick.tolist()
    codes = rng.integers(0, 15625, size=1_000_000)  # a million lookups are one gather
    assert real_table.column_by_code("in16")[codes].shape == (1_000_000,)


def test_real_table_errors(real_table: NB201Table) -> None:
    with pytest.raises(ConfigError, match=r"0\.\.15624"):
        real_table.arch(15625)
    with pytest.raises(ConfigError, match=r"0\.\.15624"):
        real_table.arch(-1)
    with pytest.raises(ConfigError, match="no column 'cifar100_valid'"):
        real_table.column("cifar100", "valid", 200)


# ---- names ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alias", "key"),
    [("cifar10", "cifar10"), ("c10", "cifar10"), ("cifar100", "cifar100"), ("c100", "cifar100"),
     ("imagenet16-120", "imagenet16"), ("ImageNet16-120", "imagenet16"), ("imagenet16", "imagenet16"),
     ("in16", "imagenet16"), ("cifar10-valid", "cifar10-valid")],
)  # fmt: skip
def test_dataset_aliases(alias: str, key: str) -> None:
    assert normalize_dataset(alias) == key


def test_column_names() -> None:
    assert column_name("c10") == "cifar10_test"
    assert column_name("cifar10-valid") == "cifar10_valid"
    assert column_name("c100", "valid", 12) == "cifar100_valid_12ep"
    assert column_name("IN16", "test", "200") == "imagenet16_test"
    assert len(set(ACCURACY_COLUMNS)) == 12
    with pytest.raises(ConfigError, match="'dataset'.*Did you mean"):
        column_name("cifar1O")
    with pytest.raises(ConfigError, match="'epochs'"):
        column_name("c10", epochs=100)
    with pytest.raises(ConfigError, match="cifar10-valid"):
        column_name("cifar10-valid", "test")


def test_gene_codes_round_trip() -> None:
    space = NB201Space()
    archs = [space.sample(np.random.default_rng(s)) for s in range(20)]
    codes = genes_to_codes([a.genes for a in archs])
    assert codes.tolist() == [a.code for a in archs]
    assert [NB201Arch.from_code(int(c)) for c in codes] == archs
    np.testing.assert_array_equal(codes_to_genes(codes), [a.genes for a in archs])
    assert [a.code for a in space.enumerate()][:3] == [0, 1, 2]


# ---- made-up CSVs -----------------------------------------------------------------------
def test_small_csv_reads_and_round_trips(tmp_path: Path) -> None:
    table = NB201Table.from_csv(write(tmp_path, "\n".join([HEADER, *ROWS])))
    assert len(table) == 3 and not table.is_complete
    assert table.columns == ("cifar10_test", "cifar100_test")
    assert table.accuracy(table.arch(7), "c100") == 1.0
    np.testing.assert_allclose(table.accuracy([table.arch(1), table.arch(0)]), [93.66, 85.8633])
    assert np.isnan(table.column_by_code("c10")).sum() == 15625 - 3
    with pytest.raises(ConfigError, match="index 5 is not in the table"):
        table.arch(5)
    with pytest.raises(ConfigError, match="not in the NB201 table"):
        table.accuracy(NB201Arch.from_code(1234))
    table.to_csv(tmp_path / "copy.csv")
    again = NB201Table.from_csv(tmp_path / "copy.csv")
    assert again.archs == table.archs and np.array_equal(again.column("c100"), table.column("c100"))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("index,cifar10_test,cifar100_test", r"missing column\(s\) 'arch'; expected 'index', 'arch' and at least one"),
        ("index,arch,cifar10_tst,cifar100_test", r"unknown column\(s\) 'cifar10_tst'; Did you mean 'cifar10_test'"),
        ("index,arch", "no accuracy column"),
        ("index,arch,cifar10_test,cifar10_test", "appears twice"),
    ],
)
def test_csv_column_errors(tmp_path: Path, header: str, message: str) -> None:
    n = len(header.split(","))
    rows = [",".join(r.split(",")[:n]) for r in ROWS]
    with pytest.raises(ConfigError, match=message) as info:
        NB201Table.from_csv(write(tmp_path, "\n".join([header, *rows])))
    assert "\n" not in str(info.value)


def test_csv_row_errors(tmp_path: Path) -> None:
    bad_arch = ROWS[0].replace("avg_pool_3x3~0", "avg_pool_5x5~0")
    with pytest.raises(ConfigError, match="line 2: .*unknown op 'avg_pool_5x5'"):
        NB201Table.from_csv(write(tmp_path, "\n".join([HEADER, bad_arch])))
    with pytest.raises(ConfigError, match="line 3: 3 fields"):
        NB201Table.from_csv(write(tmp_path, "\n".join([HEADER, ROWS[0], ROWS[1].rsplit(",", 1)[0]])))
    with pytest.raises(ConfigError, match="index 0 appears more than once"):
        NB201Table.from_csv(write(tmp_path, "\n".join([HEADER, ROWS[0], "0" + ROWS[1][1:]])))
    with pytest.raises(ConfigError, match="outside the range 0..15624"):
        NB201Table.from_csv(write(tmp_path, "\n".join([HEADER, "15625" + ROWS[0][1:]])))
    with pytest.raises(ConfigError, match="no rows"):
        NB201Table.from_csv(write(tmp_path, HEADER))


def test_load_resolves_path_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENAS_NB201_TABLE", raising=False)
    with pytest.raises(DataNotFoundError, match="GENAS_NB201_TABLE"):
        load_nb201_table()
    with pytest.raises(DataNotFoundError, match="not found"):
        load_nb201_table(tmp_path / "absent.csv")
    path = write(tmp_path, "\n".join([HEADER, *ROWS]))
    monkeypatch.setenv("GENAS_NB201_TABLE", str(path))
    assert len(load_nb201_table()) == 3
    monkeypatch.setenv("GENAS_NB201_TABLE", str(tmp_path / "gone.csv"))
    with pytest.raises(DataNotFoundError, match=r"\$GENAS_NB201_TABLE"):
        load_nb201_table()


# ---- the official API -------------------------------------------------------------------
class _FakeAPI:
    """Stands in for nats_bench's TSS API: 3 architectures, accuracy = f(index, dataset, hp)."""

    archs = [r.split(",")[1] for r in ROWS]

    def __len__(self) -> int:
        return 3

    def arch(self, i: int) -> str:
        return self.archs[i]

    def get_more_info(self, i: int, dataset: str, hp: str = "12", is_random: bool = True) -> dict:
        assert is_random is False
        base = {"cifar10": 90.0, "cifar10-valid": 80.0, "cifar100": 70.0, "ImageNet16-120": 40.0}[dataset]
        base -= 10 if hp == "12" else 0
        return {"test-accuracy": base + i, "valid-accuracy": base + i + 0.5}


def test_from_api_with_a_fake_package(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("nats_bench")
    fake.create = lambda path, space, fast_mode, verbose: _FakeAPI()
    monkeypatch.setitem(sys.modules, "nats_bench", fake)
    table = NB201Table.from_api("unused")
    assert table.columns == ACCURACY_COLUMNS and len(table) == 3
    np.testing.assert_array_equal(table.column("c10"), [90, 91, 92])
    np.testing.assert_array_equal(table.column("cifar10-valid"), [80.5, 81.5, 82.5])
    np.testing.assert_array_equal(table.column("in16", "valid", 12), [30.5, 31.5, 32.5])
    assert table.arch(2) == NB201Space().parse(_FakeAPI.archs[2])


def test_from_api_without_a_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    with pytest.raises(PluginError, match="pip install nats_bench"):
        NB201Table.from_api("x.pth")
