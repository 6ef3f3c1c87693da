"""Bad input, round 2: a corpus of bad files and overrides, each ONE clear line.

Every case runs the real run function on the composed config (as run.py does) and must raise
a :class:`FactoryError` whose message is one line naming the key or file, the value, and the
fix. Most fail in validation before Phase 1; the files are tiny. ``test_cli_*`` run a few of
them through run.py itself (in this process): exit code 2, one ``error:`` line on stderr, no
traceback, and no run directory left behind.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.errors import FactoryError
from factory.experiment import run
from tests.conftest import ROOT, compose_config

SPEC = "{tick_size: 0.25, point_value: 5.0, commission: 0.62, slippage_ticks: 1}"


def minute_bars(n: int = 60, start: str = "2024-01-02 10:00", freq: str = "1min",
                seed: int = 0) -> pd.DataFrame:
    """Valid OHLCV bars (UTC) on a 0.25 tick grid: open = previous close."""
    rng = np.random.default_rng(seed)
    close = 4800.0 + 0.25 * np.cumsum(rng.integers(-2, 3, n))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.25,
                         "low": np.minimum(open_, close) - 0.25, "close": close,
                         "volume": rng.integers(1, 50, n).astype(float)}, index=idx)


def to_csv(frame: pd.DataFrame, path: Path, naive_tz: str | None = None) -> Path:
    out = frame.copy()
    if naive_tz is not None:
        out.index = out.index.tz_convert(naive_tz).tz_localize(None)
    out.reset_index().to_csv(path, index=False)
    return path


def write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def edited(frame: pd.DataFrame, rows: slice | list, column: str, value) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.iloc[rows, out.columns.get_loc(column)] = value
    return out


def mes(tmp: Path, frame: pd.DataFrame | None = None, name: str = "mes.csv") -> list[str]:
    path = to_csv(minute_bars() if frame is None else frame, tmp / name)
    return ["data=csv", f"data.path={path}", "data.symbol=MES"]


# ----------------------------------------------------------------- the corpus


def _dst_spring(tmp: Path) -> list[str]:
    frame = minute_bars(90, "2024-03-10 07:30")  # 01:30..02:59 local: 02:xx does not exist
    frame.index = pd.date_range("2024-03-10 01:30", periods=90, freq="1min", name="timestamp")
    path = tmp / "mes.csv"
    frame.reset_index().to_csv(path, index=False)
    return ["data=csv", f"data.path={path}", "data.symbol=MES", "data.timezone=America/Chicago"]


def _dst_fall_once(tmp: Path) -> list[str]:
    # 2024-11-03 01:00-01:59 happens twice in Chicago; a file that has it only once cannot
    # say which one it meant
    frame = minute_bars(60, "2024-11-03 06:00")
    frame.index = pd.date_range("2024-11-03 01:00", periods=60, freq="1min", name="timestamp")
    path = tmp / "mes.csv"
    frame.reset_index().to_csv(path, index=False)
    return ["data=csv", f"data.path={path}", "data.symbol=MES", "data.timezone=America/Chicago"]


def _two_files_one_symbol(tmp: Path) -> list[str]:
    folder = tmp / "bars"
    folder.mkdir()
    to_csv(minute_bars().assign(symbol="MES"), folder / "a.csv")
    to_csv(minute_bars(seed=1).assign(symbol="MES"), folder / "b.csv")
    return ["data=csv", f"data.path={folder}"]


def _empty_dir(tmp: Path) -> list[str]:
    (tmp / "bars").mkdir()
    write(tmp / "bars", "notes.txt", "no bars here\n")
    return ["data=csv", f"data.path={tmp / 'bars'}"]


def _parquet(tmp: Path, frame: pd.DataFrame) -> list[str]:
    path = tmp / "mes.parquet"
    frame.to_parquet(path)
    return ["data=parquet", f"data.path={path}", "data.symbol=MES"]


def _epoch_parquet(tmp: Path) -> list[str]:
    frame = minute_bars().reset_index()
    frame["timestamp"] = frame["timestamp"].astype("int64")  # nanoseconds, not date-times
    return _parquet(tmp, frame)


def _string_prices_parquet(tmp: Path) -> list[str]:
    frame = minute_bars().reset_index()
    frame["close"] = [f"{v:,.2f}" for v in frame["close"]]  # "4,800.25": thousands separators
    return _parquet(tmp, frame)


def _bool_volume_parquet(tmp: Path) -> list[str]:
    return _parquet(tmp, minute_bars().reset_index().assign(volume=True))


def _short_file(tmp: Path) -> list[str]:
    # a real-size case: ~2,000 one-minute bars with the default feature set
    return ["data=csv", f"data.path={to_csv(minute_bars(2000), tmp / 'mes.csv')}",
            "data.symbol=MES", "features=boosting_optimal", "cv.embargo_bars=1440",
            "cv.purge_bars=60"]


def _one_class_file(tmp: Path) -> list[str]:
    # overnight session of a very quiet market: no barrier win clears the costs, every label
    # is 0 (the model would be a constant)
    from factory.data.synthetic import SyntheticSource

    quiet = SyntheticSource(days=12, seed=3, timeframe="1min", instruments={"MES": {
        "tick_size": 0.25, "point_value": 5.0, "commission": 0.62, "slippage_ticks": 1}},
        universe={"MES": {"start_price": 4800.0, "annual_vol": 0.001}}).load().bars["MES"]
    hour = quiet.index.hour
    night = quiet[(hour >= 23) | (hour < 6)]
    return ["data=csv", f"data.path={to_csv(night, tmp / 'overnight.csv')}", "data.symbol=MES"]


CASES = [
    # id, files -> overrides, fragments of the one line ({path}: the file's path)
    ("missing-column", lambda t: ["data=csv", "data.path=" + str(write(
        t, "b.csv", "timestamp,open,high,low,clse,volume\n2024-01-02T00:00:00Z,1,2,0.5,1.5,1\n")),
        "data.symbol=MES"], ["missing column 'close'", "data.column_map={clse: close}"]),
    ("empty-file", lambda t: ["data=csv", f"data.path={write(t, 'b.csv', '')}"],
     ["the file is empty", "Fix"]),
    ("header-only", lambda t: ["data=csv", "data.path=" + str(write(
        t, "b.csv", "timestamp,open,high,low,close,volume\n"))], ["no data rows", "Fix"]),
    ("non-numeric-price", lambda t: mes(t, edited(minute_bars(), [5], "high", "4800,5")),
     ["column 'high'", "non-numeric value '4800,5'", "row 6", "Fix"]),
    ("nan-run", lambda t: mes(t, edited(minute_bars(), slice(10, 13), "close", np.nan)),
     ["column 'close' is NaN", "row 11", "run of 3", "`data.max_nan_run=3`"]),
    ("zero-volume-run", lambda t: mes(t, edited(minute_bars(), slice(5, 45), "volume", 0.0)),
     ["'volume' is 0 on 40 consecutive rows", "row 6", "`data.max_zero_volume_run=40`"]),
    ("unsorted", lambda t: mes(t, minute_bars().iloc[[0, 2, 1, *range(3, 60)]]),
     ["is not sorted", "row 3", "sort the file"]),
    ("duplicate-stamp", lambda t: mes(t, minute_bars().iloc[[0, 1, 1, *range(2, 60)]]),
     ["duplicate timestamp", "row 3", "keep one bar per timestamp"]),
    ("negative-price", lambda t: mes(t, edited(minute_bars(), [7], "low", -1.0)),
     ["column 'low' has a non-positive price -1.0", "row 8", "Fix"]),
    ("high-below-low", lambda t: mes(t, edited(minute_bars(), [4], "high", 4000.0)),
     ["column 'high' (4000.0) is below column 'low'", "row 5", "swapped"]),
    ("naive-no-timezone", lambda t: ["data=csv", "data.symbol=MES", "data.path=" + str(
        to_csv(minute_bars(), t / "mes.csv", naive_tz="America/Chicago"))],
     ["without a timezone", "`data.timezone=America/Chicago`"]),
    ("dst-spring-forward", _dst_spring, ["cannot be mapped to UTC", "daylight-saving",
                                         "`data.timezone=UTC`"]),
    ("dst-fall-back-once", _dst_fall_once, ["cannot be mapped to UTC", "daylight-saving"]),
    ("unknown-timezone", lambda t: [*mes(t), "data.timezone=Mars/Olympus"],
     ["unknown timezone `data.timezone=Mars/Olympus`", "IANA"]),
    ("coarser-timeframe", lambda t: mes(t, minute_bars(60, freq="15min")),
     ["the data is at 15min bars, coarser than the requested timeframe 5min",
      "`data.timeframe=15min`"]),
    ("daily-file", lambda t: mes(t, minute_bars(60, start="2024-01-02", freq="1D")),
     ["the data is at 24h bars, coarser", "`data.timeframe=24h`"]),
    ("not-a-multiple", lambda t: mes(t, minute_bars(60, freq="2min")),
     ["5min is not a whole multiple of the data's 2min bars", "data.timeframe"]),
    ("file-not-found", lambda t: ["data=csv", f"data.path={t / 'nope.csv'}"],
     ["data file not found", "nope.csv", "check `data.path`"]),
    ("glob-matches-nothing", lambda t: ["data=csv", f"data.path={t}/*_bt.csv"],
     ["no file matches", "_bt.csv", "Fix"]),
    ("dir-without-files", _empty_dir, ["directory without .csv files", "Fix"]),
    ("two-files-one-symbol", _two_files_one_symbol,
     ["symbol MES is in two files", "a.csv", "b.csv", "Fix"]),
    ("symbol-without-spec", lambda t: ["data=csv", "data.path=" + str(
        to_csv(minute_bars(), t / "XYZ.csv"))],
     ["XYZ.csv", "no instrument spec for symbol 'XYZ'", "+data.instruments.XYZ={tick_size:",
      "commission:", "slippage_ticks:"]),
    ("spec-without-costs", lambda t: ["data=csv", "data.path=" + str(
        to_csv(minute_bars(), t / "XYZ.csv")), "+data.instruments.XYZ={tick_size: 0.25, "
        "point_value: 20}"], ["`data.instruments.XYZ` has no `commission`", "write 0 for none"]),
    ("spec-typo", lambda t: ["data=csv", "data.path=" + str(to_csv(minute_bars(), t / "XYZ.csv")),
                             "+data.instruments.XYZ={tick_size: 0.25, point_value: 20, "
                             "comission: 2.1, slippage_ticks: 1}"],
     ["`data.instruments.XYZ.comission` is not an instrument field", "check the spelling"]),
    ("one-symbol-file-two-expected", lambda t: [*mes(t), "data.symbols=[MES,MGC]"],
     ["`data.symbols`: MGC is not in the data files of `data.path=", "(MES)", "Fix"]),
    ("parquet-epoch-stamps", _epoch_parquet, ["holds numbers", "not date-times", "ISO-8601"]),
    ("parquet-string-prices", _string_prices_parquet,
     ["column 'close' has a non-numeric value '4,80", "no thousands separators"]),
    ("parquet-bool-volume", _bool_volume_parquet,
     ["column 'volume' has a non-numeric value True", "row 1"]),
    ("tiny-file", _short_file, ["[MES]: too little data for features=boosting_optimal",
                                "400 bars of 5min", "feature warm-up takes the first",
                                "so at least", "Fix: add data", "cv.embargo_bars"]),
    ("one-class-labels", _one_class_file, ["training labels have one class", "0: 100.0%",
                                           "labeling.upper_mult", "horizon="]),
    # overrides
    ("threshold-out-of-range", lambda t: ["evaluation.threshold=2"],
     ["`evaluation.threshold` must be a number in [0, 1], got 2", "evaluation.threshold=0.45"]),
    ("max-depth-type", lambda t: ["model.max_depth=abc"],
     ["`model.max_depth` must be an int, got 'abc'", "`model.max_depth=5`"]),
    ("max-depth-range", lambda t: ["model.max_depth=-3"],
     ["`model.max_depth` must be an int >= 0, got -3"]),
    ("lightgbm-max-depth", lambda t: ["model=lightgbm", "model.max_depth=0"],
     ["`model.max_depth` must be -1 or an int >= 1, got 0"]),
    ("dropout-range", lambda t: ["model=lstm", "model.network.dropout=1.0"],
     ["`model.network.dropout` must be a number in [0, 1), got 1.0"]),
    ("days-zero", lambda t: ["data.days=0"], ["`data.days` must be an int >= 1, got 0"]),
    ("bad-timeframe", lambda t: ["data.timeframe=fast"],
     ["`data.timeframe`: cannot parse timeframe 'fast'", "`data.timeframe=5min`"]),
    ("unknown-universe", lambda t: ["data.universe=futures9"],
     ["`data.universe` must be one of default, futures8", "futures9", "data.universe=futures8"]),
    ("symbol-not-in-universe", lambda t: ["data.universe=futures8", "data.symbols=[ES,ZZ]"],
     ["`data.symbols`: ZZ is not in the futures8 universe", "6A, 6E, CL, ES"]),
    ("negative-commission", lambda t: ["data.instruments.MES.commission=-1"],
     ["`data.instruments.MES.commission` must be", ">= 0", "got -1"]),
    ("dropped-spec", lambda t: ["~data.instruments.MGC"],
     ["no instrument spec for symbol 'MGC'", "+data.instruments.MGC="]),
    ("negative-embargo", lambda t: ["cv.embargo_bars=-1"],
     ["`cv.embargo_bars` must be an int >= 0, got -1", "cv.embargo_bars=1440"]),
]


# Cases with a file source whose problem is a config key, not the file: the key is named.
KEY_PROBLEMS = {"unknown-timezone", "spec-without-costs", "spec-typo"}


_COMPOSED: dict[tuple, object] = {}


def composed(tmp_path: Path, overrides: list[str]):
    """The config of ``overrides``, as Hydra composes it: the group choices (``data=csv``,
    ``model=lstm``, ...) are composed once per combination and cached; the value overrides
    are then parsed by Hydra's own override parser and applied (a corpus of ~40 cases would
    otherwise spend most of its time composing the same configs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    parsed = OverridesParser.create().parse_overrides(overrides)
    groups = tuple(o.input_line for o in parsed if "." not in o.key_or_group
                   and not o.is_delete() and not o.is_add())
    if groups not in _COMPOSED:
        _COMPOSED[groups] = compose_config(tmp_path, *groups)
    cfg = copy.deepcopy(_COMPOSED[groups])
    OmegaConf.set_struct(cfg, False)
    with open_dict(cfg):
        OmegaConf.update(cfg, "paths.output_dir", str(tmp_path / "run"))
        OmegaConf.update(cfg, "paths.cache_dir", str(tmp_path / "cache"))
        for o in parsed:
            if o.input_line in groups:
                continue
            if o.is_delete():
                parent, _, leaf = o.key_or_group.rpartition(".")
                OmegaConf.select(cfg, parent).pop(leaf)
            else:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
    return cfg


@pytest.mark.parametrize(("name", "setup", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(tmp_path, name, setup, fragments):
    overrides = setup(tmp_path)
    cfg = composed(tmp_path, overrides)
    with pytest.raises(FactoryError) as info:
        run(cfg)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert re.search(r"Fix|fix|e\.g\.|try |IANA|ISO-8601|swapped|write 0", message), message
    path = next((o.split("=", 1)[1] for o in overrides if o.startswith("data.path=")), None)
    if path is not None and name not in KEY_PROBLEMS:
        assert path in message  # a file's problem names the file (or the pattern given)
    assert not (tmp_path / "run").exists()  # nothing written for a failed run


def test_corpus_is_at_least_25_cases():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


# ----------------------------------------------------------------- through run.py


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    """run.py's main in this process (Hydra composes, creates and cleans the run dir)."""
    argv = sys.argv
    err = io.StringIO()
    sys.argv = ["run.py", "tracker=none", f"paths.cache_dir={tmp_path / 'cache'}",
                f"hydra.run.dir={tmp_path / 'runs' / 'day' / 'job'}", *args]
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    return code, err.getvalue()


@pytest.mark.parametrize("case", ["threshold-out-of-range", "max-depth-type",
                                  "symbol-without-spec", "tiny-file"])
def test_cli_prints_one_line_and_leaves_no_run_dir(tmp_path, case):
    name, setup, fragments = next(c for c in CASES if c[0] == case)
    code, stderr = _cli(tmp_path, *setup(tmp_path))
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "phase 1" not in ln]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and fragments[0] in lines[0]
    assert not (tmp_path / "runs" / "day").exists()  # the job dir and its date folder
