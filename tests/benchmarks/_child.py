"""Code that runs inside a fresh interpreter for the benchmarks (see ``conftest.run_child``).

Started as ``python -c "from tests.benchmarks._child import main; main(argv)"``; prints one
line ``@@BENCH_RESULT@@ {json}`` that the parent parses. Heavy imports happen inside the
task, after the baseline memory reading.

Memory: ``VmHWM`` (peak RSS of this process's own address space, from ``/proc/self/status``)
and ``getrusage(RUSAGE_SELF).ru_maxrss`` are read at the end of the build; ``ru_maxrss`` is
also read at the very start, which shows what the child inherited from its parent (see the
conftest docstring). ``VmHWM`` after each stage gives the running peak, so the stage that
raised it is visible. VmHWM is reset (``clear_refs``) only after those figures are read, to
measure the optional cache store/load steps on their own.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time

RESULT_MARK = "@@BENCH_RESULT@@ "


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"^{key}:\s+(\d+) kB", fh.read(), re.M).group(1))


def vm_rss_kib() -> int:
    """Current resident set size of this process."""
    return _status_kib("VmRSS")


def vm_hwm_kib() -> int:
    """Peak resident set size of this process's own address space (since exec)."""
    return _status_kib("VmHWM")


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``).

    This also lowers what ``ru_maxrss`` reports afterwards, so it is only used after every
    build figure (including ``ru_maxrss``) has been read.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def ru_maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


class Stages:
    """Wall seconds of named stages (stages may nest; repeated calls accumulate), the running
    peak RSS (VmHWM) at the first start and at the end of the last call, and the RSS then."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.hwm_after: dict[str, int] = {}
        self.rss_after: dict[str, int] = {}
        self.hwm_before: dict[str, int] = {}
        self._t0: dict[str, float] = {}

    def clear(self) -> None:
        self.seconds.clear()
        self.hwm_after.clear()
        self.rss_after.clear()
        self.hwm_before.clear()

    def start(self, stage: str) -> None:
        self.hwm_before.setdefault(stage, vm_hwm_kib())
        self._t0[stage] = time.perf_counter()

    def stop(self, stage: str) -> None:
        if stage not in self._t0:
            return
        dt = time.perf_counter() - self._t0.pop(stage)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
        self.hwm_after[stage] = vm_hwm_kib()
        self.rss_after[stage] = vm_rss_kib()

    def wrap(self, owner, attr: str, start: str | None = None, stop: str | None = None) -> None:
        """Replace ``owner.attr`` by a wrapper that starts/stops the given stages around it."""
        fn = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            if start:
                self.start(start)
            try:
                return fn(*args, **kwargs)
            finally:
                if stop:
                    self.stop(stop)

        setattr(owner, attr, wrapped)


def phase1(tmp: str, overrides_json: str, repeats: str = "1", save: str = "0") -> dict:
    """``load_or_build`` on the composed config, instrumented per stage, in this process."""
    ru_start = ru_maxrss_kib()
    rss_start = vm_rss_kib()
    t0 = time.perf_counter()
    from pathlib import Path

    import numpy as np

    import factory.phase1 as p1
    from factory.data.synthetic import SyntheticSource
    from factory.dataset import Dataset
    from factory.features.pipeline import FeaturePipeline
    from factory.labeling.triple_barrier import TripleBarrierLabeler
    from factory.splits.holdout import HoldoutSplit
    from tests.conftest import compose_config

    import_s = time.perf_counter() - t0
    rss_imports = vm_rss_kib()
    st = Stages()
    st.wrap(SyntheticSource, "load", "generate", "generate")
    st.wrap(FeaturePipeline, "fill", "features", "features")  # Phase 1 writes X in place
    st.wrap(TripleBarrierLabeler, "label", "labels", "labels")
    st.wrap(HoldoutSplit, "assign", "split+weights", None)  # runs to the end of build_dataset
    st.wrap(p1, "sample_weights", "uniqueness", "uniqueness")
    build = p1.build_dataset

    def build_dataset(*args, **kwargs):
        st.start("build_dataset")
        try:
            return build(*args, **kwargs)
        finally:
            st.stop("split+weights")
            st.stop("build_dataset")

    p1.build_dataset = build_dataset

    cfg = compose_config(Path(tmp), *json.loads(overrides_json), tiny=False)
    runs = []
    ds = None
    for _ in range(int(repeats)):
        del ds
        st.clear()
        st.start("total")
        ds, _key, hit = p1.load_or_build(cfg)
        st.stop("total")
        assert not hit, "benchmark must build, not read the cache (cache=false)"
        runs.append({"seconds": dict(st.seconds), "hwm_after_kib": dict(st.hwm_after),
                     "hwm_before_kib": dict(st.hwm_before), "rss_after_kib": dict(st.rss_after)})
    peak_build_kib = vm_hwm_kib()
    ru_build_kib = ru_maxrss_kib()
    rss_end_kib = vm_rss_kib()

    X, meta = ds.X, ds.meta
    live = meta["split"].to_numpy() != "gap"
    w = meta["weight"].to_numpy()
    summary = {
        "rows": len(X),
        "features": X.shape[1],
        "x_dtype": str(X.dtypes.iloc[0]),
        "x_all_finite": bool(np.isfinite(X.to_numpy()).all()),
        "meta_rows": len(meta),
        "bars": {s: len(b) for s, b in ds.bars.items()},
        "warmup": int(ds.info["warmup_bars"]),
        "horizon": int(ds.info["horizon"]),
        "splits": {k: int(v) for k, v in meta["split"].value_counts().items()},
        "labels": {str(k): int(v) for k, v in meta["label"].value_counts().items()},
        "weight_live_min": float(w[live].min()),
        "weight_live_max": float(w[live].max()),
        "weight_gap_max": float(w[~live].max()) if (~live).any() else 0.0,
        "exit_after_entry": bool((meta["exit_idx"] > meta["bar_idx"]).all()),
        "label_values": sorted(int(v) for v in meta["label"].unique()),
    }
    result = {
        "import_s": import_s,
        "ru_maxrss_start_kib": ru_start,
        "rss_start_kib": rss_start,
        "rss_after_imports_kib": rss_imports,
        "runs": runs,
        "peak_build_kib": peak_build_kib,
        "ru_maxrss_build_kib": ru_build_kib,
        "rss_end_kib": rss_end_kib,
        "summary": summary,
    }
    if save == "1":
        target = Path(tmp) / "saved"
        X0 = ds.X
        steps: dict[str, dict] = {}
        can_reset = reset_hwm()
        t1 = time.perf_counter()
        ds.save(target)
        steps["cache store"] = {"seconds": time.perf_counter() - t1, "peak_kib": vm_hwm_kib()}
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        del ds
        reset_hwm()
        t1 = time.perf_counter()
        back = Dataset.load(target)
        steps["cache load"] = {"seconds": time.perf_counter() - t1, "peak_kib": vm_hwm_kib()}
        result["cache"] = {"steps": steps, "bytes": size, "own_peak": can_reset,
                           "roundtrip_equal": bool(back.X.equals(X0))}
    return result


TASKS = {"phase1": phase1}


def main(argv: list[str]) -> None:
    result = TASKS[argv[0]](*argv[1:])
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
