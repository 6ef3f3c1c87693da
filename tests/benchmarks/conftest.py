"""Shared helpers of the benchmarks: printed tables, machine line, fresh-interpreter children.

Benchmarks are deselected by default (``-m 'not benchmark'`` in pyproject); run them with
``python -m pytest tests/benchmarks -m benchmark -s``.

Peak memory is measured in a fresh interpreter (:func:`run_child`). The child reports two
figures: ``VmHWM`` of its own address space (``/proc/self/status``), and
``getrusage(RUSAGE_SELF).ru_maxrss``. On Linux ``ru_maxrss`` survives ``execve``: the kernel
folds the high-water RSS of the pre-exec image into it, and a ``vfork``/``posix_spawn``
child's pre-exec image IS the parent's address space. So a child spawned from a 2 GiB
parent reports ``ru_maxrss`` >= 2 GiB even if it never uses more than 30 MiB (checked on
this kernel). ``VmHWM`` belongs to the new address space only and is the figure to read;
``ru_maxrss`` is printed next to it for reference.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULT_MARK = "@@BENCH_RESULT@@ "


def machine_line() -> str:
    """One line about the machine: cores and current load (timings are wall clock)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    return (f"machine: {cores} cores usable, load average {load} (1/5/15 min), "
            f"Python {platform.python_version()}, {platform.machine()}")


def table(title: str, header: list[str], rows: list[list], notes: list[str] = ()) -> str:
    """Print (and return) an aligned plain-text table; numbers right-aligned."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_num(r[i]) or r[i] is None for r in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w)
                 for c, w, num in zip(r, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(cells[0]))
    out = [f"== {title}", machine_line(), rule, line(cells[0]), rule]
    out += [line(r) for r in cells[1:]]
    out.append(rule)
    out += [f"  {n}" for n in notes]
    text = "\n".join(out)
    print("\n" + text, flush=True)
    return text


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}" if v else "0"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def run_child(task: str, *args: str, timeout: float = 600) -> dict:
    """Run ``tests.benchmarks._child.<task>(*args)`` in a fresh interpreter; return its dict."""
    code = "import sys; from tests.benchmarks._child import main; main(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, task, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        pytest.fail(f"benchmark child '{task}' exited {proc.returncode}:\n{proc.stderr[-6000:]}")
    for raw in reversed(proc.stdout.splitlines()):
        if raw.startswith(RESULT_MARK):
            result = json.loads(raw[len(RESULT_MARK):])
            result["child_wall_s"] = wall
            return result
    pytest.fail(f"benchmark child '{task}' printed no result:\n{proc.stdout[-3000:]}"
                f"\n{proc.stderr[-3000:]}")
