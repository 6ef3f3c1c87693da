"""Hydra's basic sweeper, except that one failed job does not stop the multirun.

Hydra's ``BasicSweeper`` raises at the first failed job of a batch, and Hydra then skips
``on_multirun_end``: with ``-m model=lstm,xgboost adapter=tabular`` the xgboost result and
the whole multirun summary were lost to lstm's configuration error. This sweeper runs every
batch, then, when jobs failed, runs the ``on_multirun_end`` callbacks itself (the summary
lists the failed jobs with their error lines) and exits with status 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def _error_line(ret: JobReturn) -> str:
    error: Any = ret._return_value
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


class FactoryBasicSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params_conf),
                                              self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns: list[Sequence[JobReturn]] = []
        failed: list[JobReturn] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            tic = time.perf_counter()
            self.validate_batch_is_legal(batch)  # composition errors stop before any job
            log.debug("validated %d job configs in %.2f s", len(batch), time.perf_counter() - tic)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            failed += [r for r in results if r.status == JobStatus.FAILED]
            initial_job_idx += len(batch)
            returns.append(results)
        if failed:
            n = sum(len(r) for r in returns)
            for ret in failed:
                log.error("failed job (%s): %s", " ".join(ret.overrides or []), _error_line(ret))
            self.hydra_context.callbacks.on_multirun_end(config=self.config)
            log.error("%d of %d jobs failed (listed above and in %s); exit status 1",
                      len(failed), n, sweep_dir / "summary.csv")
            raise SystemExit(1)
        return returns
