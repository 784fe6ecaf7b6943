"""The NAS-Bench-201 accuracy table (Dong & Yang, ICLR 2020), read in one place.

A table holds one row per architecture, keyed by the benchmark index (0..15624), with top-1
accuracies in percent.  Column names follow ``{dataset}_{metric}[_12ep]`` with dataset in
``cifar10, cifar100, imagenet16`` and metric in ``test, valid``; see
``../shared/data/nb201/SOURCE.md`` for what each column means in the official API's terms.

Lookups go through the gene code (:attr:`genas.spaces.NB201Arch.code`, a base-5 integer), so
millions of accuracies are one numpy gather: ``table.column_by_code("cifar10")[codes]``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genas.errors import ConfigError, DataNotFoundError, InvalidArchitectureError, PluginError
from genas.registry import suggest
from genas.spaces.nb201 import NB201_CODE_WEIGHTS, NB201Arch, NB201Space
from genas.validation import check_choice

__all__ = [
    "NB201Table", "load_nb201_table", "normalize_dataset", "column_name",
    "genes_to_codes", "codes_to_genes", "NB201_TABLE_ENV", "NB201_INDEX_RANGE", "ACCURACY_COLUMNS",
]  # fmt: skip

NB201_TABLE_ENV = "GENAS_NB201_TABLE"
NB201_SIZE = 5**6
NB201_INDEX_RANGE: tuple[int, int] = (0, NB201_SIZE - 1)
_DATASETS = ("cifar10", "cifar100", "imagenet16")
ACCURACY_COLUMNS: tuple[str, ...] = tuple(
    f"{ds}_{metric}{suffix}" for ds in _DATASETS for metric in ("test", "valid") for suffix in ("", "_12ep")
)
_KEY_COLUMNS = ("index", "arch")
_DATASET_ALIASES = {
    "cifar10": "cifar10", "c10": "cifar10", "cifar-10": "cifar10", "cifar10-valid": "cifar10-valid",
    "cifar100": "cifar100", "c100": "cifar100", "cifar-100": "cifar100",
    "imagenet16-120": "imagenet16", "imagenet16_120": "imagenet16", "imagenet16": "imagenet16", "in16": "imagenet16",
}  # fmt: skip
_METRIC_ALIASES = {"test": "test", "valid": "valid", "val": "valid", "validation": "valid"}
# (official dataset name, info key) per column stem, for NB201Table.from_api
_API_QUERIES = {
    "cifar10_test": ("cifar10", "test-accuracy"), "cifar10_valid": ("cifar10-valid", "valid-accuracy"),
    "cifar100_test": ("cifar100", "test-accuracy"), "cifar100_valid": ("cifar100", "valid-accuracy"),
    "imagenet16_test": ("ImageNet16-120", "test-accuracy"), "imagenet16_valid": ("ImageNet16-120", "valid-accuracy"),
}  # fmt: skip
_WEIGHTS = np.asarray(NB201_CODE_WEIGHTS, dtype=np.int64)


def normalize_dataset(name: str) -> str:
    """Canonical dataset key (``cifar10``, ``cifar100``, ``imagenet16`` or ``cifar10-valid``) of an alias."""
    key = _DATASET_ALIASES.get(str(name).strip().lower())
    if key is None:
        check_choice(name, "dataset", "NB201Table", sorted(set(_DATASET_ALIASES)))
    return key


def column_name(dataset: str, metric: str | None = None, epochs: int | str = 200) -> str:
    """Column holding ``dataset`` / ``metric`` after ``epochs`` (200 or 12) epochs, e.g. ``cifar100_valid_12ep``.

    ``metric`` defaults to ``test``, except for the NB201 dataset name ``cifar10-valid``, whose only
    tabulated split is its validation split (column ``cifar10_valid``).
    """
    key = normalize_dataset(dataset)
    if metric is not None:
        norm = _METRIC_ALIASES.get(str(metric).strip().lower())
        metric = norm if norm is not None else check_choice(metric, "metric", "NB201Table", ["test", "valid"])
    if key == "cifar10-valid":
        if metric == "test":
            raise ConfigError(
                "the NB201 table holds only the validation split of the 'cifar10-valid' run; "
                "use dataset='cifar10' for CIFAR-10 test accuracy or metric='valid'"
            )
        key, metric = "cifar10", "valid"
    ep = int(epochs) if isinstance(epochs, str) and epochs.strip().isdigit() else epochs
    check_choice(ep, "epochs", "NB201Table", [12, 200])
    return f"{key}_{metric or 'test'}" + ("_12ep" if ep == 12 else "")


def _as_arch(obj: Any) -> NB201Arch:
    return obj if isinstance(obj, NB201Arch) else NB201Space().parse(obj)


class NB201Table:
    """Benchmark accuracies (percent) of NB201 architectures, aligned with :attr:`archs` in index order.

    Args:
        indices: Benchmark index of each row (ints in 0..15624, unique).
        archs: The architecture of each row (unique).
        columns: Column name (see :data:`ACCURACY_COLUMNS`) -> one float per row.
        source: Where the table came from, for messages.
    """

    def __init__(
        self,
        indices: Sequence[int],
        archs: Sequence[NB201Arch],
        columns: Mapping[str, Sequence[float]],
        source: str = "",
    ) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if len(archs) != len(idx) or any(len(v) != len(idx) for v in columns.values()):
            raise ConfigError(f"NB201 table {source}: indices, archs and every column must have the same length")
        known = ", ".join(ACCURACY_COLUMNS)
        if not columns:
            raise ConfigError(f"NB201 table {source}: no accuracy column; expected at least one of {known}")
        bad = sorted(set(columns) - set(ACCURACY_COLUMNS))
        if bad:
            raise ConfigError(f"NB201 table {source}: unknown column {bad[0]!r}; expected some of {known}")
        out = idx[(idx < 0) | (idx >= NB201_SIZE)]
        if out.size:
            raise ConfigError(f"NB201 table {source}: index {int(out[0])} is outside the range 0..{NB201_SIZE - 1}")
        order = np.argsort(idx, kind="stable")
        self.source = source
        self.indices = idx[order]
        self.archs: list[NB201Arch] = [_as_arch(archs[i]) for i in order]
        self.codes = np.array([a.code for a in self.archs], dtype=np.int64).reshape(-1)
        self._columns = {name: np.asarray(columns[name], dtype=np.float64)[order] for name in columns}
        for arr in self._columns.values():
            arr.setflags(write=False)
        self._row_of_index = self._inverse(self.indices, "index")
        self._row_of_code = self._inverse(self.codes, "architecture")
        self._by_code: dict[str, np.ndarray] = {}

    def _inverse(self, keys: np.ndarray, what: str) -> np.ndarray:
        rows = np.full(NB201_SIZE, -1, dtype=np.int64)
        rows[keys] = np.arange(len(keys))
        if np.count_nonzero(rows >= 0) != len(keys):
            dup = keys[np.flatnonzero(np.bincount(keys, minlength=NB201_SIZE)[keys] > 1)[0]]
            shown = int(dup) if what == "index" else str(NB201Arch.from_code(int(dup)))
            raise ConfigError(f"NB201 table {self.source}: {what} {shown} appears more than once")
        return rows

    # ---- construction --------------------------------------------------------------
    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> NB201Table:
        """Read a CSV with columns ``index, arch`` and one or more of :data:`ACCURACY_COLUMNS`."""
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"NAS-Bench-201 table not found: {path}")
        try:
            return cls._read_csv(path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"NB201 table {path} is not a text CSV file ({type(exc).__name__}); give the table CSV") from None

    @classmethod
    def _read_csv(cls, path: Path) -> NB201Table:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            acc_cols = _check_header(header, path)
            pos = {h: i for i, h in enumerate(header)}
            indices, archs, values = [], [], {c: [] for c in acc_cols}
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
                try:
                    indices.append(int(row[pos["index"]]))
                    archs.append(NB201Arch.from_string(row[pos["arch"]]))
                    for c in acc_cols:
                        values[c].append(float(row[pos[c]]))
                except (ValueError, InvalidArchitectureError) as exc:
                    raise ConfigError(f"{path}, line {line}: {exc}") from exc
        if not indices:
            raise ConfigError(f"NB201 table {path} has a header but no rows")
        return cls(indices, archs, values, source=str(path))

    @classmethod
    def from_api(cls, path: str | os.PathLike | None = None, columns: Iterable[str] | None = None) -> NB201Table:
        """Build the table through the official API package (``nats_bench`` or ``nas_201_api``).

        Args:
            path: The benchmark file or directory the API loads (``None``: the API's default location).
            columns: Columns to fetch (default: all of :data:`ACCURACY_COLUMNS`); each costs one API
                query per architecture.
        """
        api = _open_api(path)
        wanted = list(ACCURACY_COLUMNS if columns is None else columns)
        for c in wanted:
            check_choice(c, "columns", "NB201Table.from_api", ACCURACY_COLUMNS)
        n = len(api)
        archs = [NB201Arch.from_string(api.arch(i)) for i in range(n)]
        values = {c: np.empty(n) for c in wanted}
        for c in wanted:
            stem, hp = (c[: -len("_12ep")], "12") if c.endswith("_12ep") else (c, "200")
            dataset, key = _API_QUERIES[stem]
            for i in range(n):
                values[c][i] = float(_api_info(api, i, dataset, hp)[key])
        return cls(range(n), archs, values, source=f"{type(api).__module__} API ({path})")

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table in the format :meth:`from_csv` reads (atomically)."""
        from genas.io import atomic_writer

        with atomic_writer(path, "w") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([*_KEY_COLUMNS, *self.columns])
            for r, (i, a) in enumerate(zip(self.indices, self.archs)):
                writer.writerow([int(i), str(a), *(f"{self._columns[c][r]:.4f}" for c in self.columns)])

    # ---- lookups -------------------------------------------------------------------
    @property
    def columns(self) -> tuple[str, ...]:
        """Accuracy columns present, in :data:`ACCURACY_COLUMNS` order."""
        return tuple(c for c in ACCURACY_COLUMNS if c in self._columns)

    @property
    def is_complete(self) -> bool:
        """True if every one of the 15,625 architectures has a row."""
        return len(self) == NB201_SIZE

    def __len__(self) -> int:
        return len(self.archs)

    def __repr__(self) -> str:
        return f"NB201Table({len(self)} rows, columns={list(self.columns)}, source={self.source!r})"

    def _column(self, dataset: str, metric: str | None, epochs: int | str) -> tuple[str, np.ndarray]:
        name = column_name(dataset, metric, epochs)
        if name not in self._columns:
            raise ConfigError(f"the NB201 table {self.source} has no column {name!r}; it has {', '.join(self.columns)}")
        return name, self._columns[name]

    def column(self, dataset: str = "cifar10", metric: str | None = None, epochs: int | str = 200) -> np.ndarray:
        """Accuracies aligned with :attr:`archs` (read-only)."""
        return self._column(dataset, metric, epochs)[1]

    def column_by_code(self, dataset: str = "cifar10", metric: str | None = None, epochs: int | str = 200) -> np.ndarray:
        """Accuracies indexed by gene code (length 15,625; NaN where the table has no row). Read-only."""
        name, col = self._column(dataset, metric, epochs)
        if name not in self._by_code:
            arr = np.full(NB201_SIZE, np.nan)
            arr[self.codes] = col
            arr.setflags(write=False)
            self._by_code[name] = arr
        return self._by_code[name]

    def rows_of_codes(self, codes: Any) -> np.ndarray:
        """Row positions of gene codes (vectorised); raises if a code has no row."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= NB201_SIZE):
            raise ConfigError(f"NB201 gene codes must lie in 0..{NB201_SIZE - 1}")
        rows = self._row_of_code[codes]
        if rows.size and rows.min() < 0:
            missing = NB201Arch.from_code(int(codes.reshape(-1)[np.argmin(rows.reshape(-1))]))
            raise ConfigError(f"architecture {missing} is not in the NB201 table {self.source} ({len(self)} rows)")
        return rows

    def accuracy(
        self, archs: Any, dataset: str = "cifar10", metric: str | None = None, epochs: int | str = 200
    ) -> float | np.ndarray:
        """Accuracy of one architecture (float) or of a sequence of them (1-D array).

        Architectures may be :class:`NB201Arch` objects, NB201 strings or gene tuples.
        """
        col = self.column(dataset, metric, epochs)
        if isinstance(archs, (NB201Arch, str)):
            return float(col[self.rows_of_codes(_as_arch(archs).code)])
        codes = np.fromiter((_as_arch(a).code for a in archs), dtype=np.int64)
        return col[self.rows_of_codes(codes)]

    def index_of(self, arch: Any) -> int:
        """Benchmark index of an architecture."""
        return int(self.indices[self.rows_of_codes(_as_arch(arch).code)])

    def arch(self, index: int) -> NB201Arch:
        """Architecture with benchmark index ``index``."""
        ok = isinstance(index, (int, np.integer)) and not isinstance(index, bool)
        if not ok or not NB201_INDEX_RANGE[0] <= int(index) <= NB201_INDEX_RANGE[1]:
            raise ConfigError(f"NB201 index {index!r} is out of range; indices run 0..{NB201_INDEX_RANGE[1]}")
        row = self._row_of_index[int(index)]
        if row < 0:
            raise ConfigError(f"NB201 index {index} is not in the table {self.source} ({len(self)} rows)")
        return self.archs[row]


def _check_header(header: list[str], path: Path) -> list[str]:
    expected = f"expected 'index', 'arch' and at least one of {', '.join(ACCURACY_COLUMNS)}"
    if not any(header):
        raise ConfigError(f"NB201 table {path} is empty; {expected}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ConfigError(f"NB201 table {path}: column {dup[0]!r} appears twice")
    missing = [c for c in _KEY_COLUMNS if c not in header]
    if missing:
        raise ConfigError(f"NB201 table {path}: missing column(s) {', '.join(map(repr, missing))}; {expected}")
    unknown = [h for h in header if h not in _KEY_COLUMNS and h not in ACCURACY_COLUMNS]
    if unknown:
        hint = suggest(unknown[0], ACCURACY_COLUMNS)
        raise ConfigError(f"NB201 table {path}: unknown column(s) {', '.join(map(repr, unknown))};{hint} {expected}")
    acc = [h for h in header if h in ACCURACY_COLUMNS]
    if not acc:
        raise ConfigError(f"NB201 table {path}: no accuracy column; {expected}")
    return acc


def _open_api(path: str | os.PathLike | None) -> Any:
    try:
        import nats_bench  # type: ignore[import-not-found]
    except ImportError:
        nats_bench = None
    if nats_bench is not None:
        return nats_bench.create(None if path is None else os.fspath(path), "tss", fast_mode=True, verbose=False)
    try:
        from nas_201_api import NASBench201API  # type: ignore[import-not-found]
    except ImportError:
        raise PluginError(
            "reading the NB201 benchmark file needs the official API: pip install nats_bench "
            "(or nas-bench-201); without it, export a CSV and use NB201Table.from_csv"
        ) from None
    if path is None:
        raise DataNotFoundError("nas_201_api needs the benchmark file path, e.g. NAS-Bench-201-v1_1-096897.pth")
    return NASBench201API(os.fspath(path), verbose=False)


def _api_info(api: Any, index: int, dataset: str, hp: str) -> Mapping[str, float]:
    try:
        return api.get_more_info(index, dataset, hp=hp, is_random=False)
    except TypeError:  # NB201 API v1.0 spells the schedule differently
        return api.get_more_info(index, dataset, use_12epochs_result=hp == "12", is_random=False)


def load_nb201_table(path: str | os.PathLike | None = None) -> NB201Table:
    """The NB201 table from ``path``, else from ``$GENAS_NB201_TABLE``; never from inside the repository.

    A ``.csv`` path is read by :meth:`NB201Table.from_csv`; any other file or a directory is handed
    to the official API (:meth:`NB201Table.from_api`).
    """
    where = "the path given"
    if path is None or str(path) == "":
        path = os.environ.get(NB201_TABLE_ENV) or None
        where = f"${NB201_TABLE_ENV}"
    if path is None:
        raise DataNotFoundError(
            f"no NAS-Bench-201 table given: pass a path (--table PATH) or set "
            f"{NB201_TABLE_ENV}=/path/to/nb201_accuracy.csv (genas does not ship the table; see docs/landscape.md)"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"NAS-Bench-201 table not found: {p} (from {where})")
    if p.is_file() and p.suffix.lower() == ".csv":
        return NB201Table.from_csv(p)
    if not _api_available():
        what = "a directory" if p.is_dir() else "not a .csv file"
        raise DataNotFoundError(f"NB201 table {p} is {what}; give the table CSV (e.g. nb201_accuracy.csv), or install "
                                "the official API (pip install nats_bench) to read a benchmark file or directory")  # fmt: skip
    return NB201Table.from_api(p)


def _api_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("nats_bench", "nas_201_api"))


def genes_to_codes(genes: Any) -> np.ndarray:
    """Gene codes of an ``(n, 6)`` integer array of op indices (vectorised)."""
    g = np.asarray(genes, dtype=np.int64)
    if g.ndim != 2 or g.shape[1] != 6 or (g.size and (g.min() < 0 or g.max() > 4)):
        raise InvalidArchitectureError(f"NB201 genes must be an (n, 6) array of ints in [0, 4], got shape {g.shape}")
    return g @ _WEIGHTS


def codes_to_genes(codes: Any) -> np.ndarray:
    """Inverse of :func:`genes_to_codes`: an ``(n, 6)`` array of op indices."""
    c = np.asarray(codes, dtype=np.int64).reshape(-1)
    return (c[:, None] // _WEIGHTS[None, :]) % 5

