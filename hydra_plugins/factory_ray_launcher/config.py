"""Structured config of the factory Ray launcher (``hydra/launcher: ray``).

The shape follows hydra-ray-launcher's ``ray`` launcher: ``ray.init`` holds the keyword
arguments of ``ray.init()`` and ``ray.remote`` those of ``ray.remote()`` for every job. A
``null`` value is left out, so Ray's own default applies.

Imported by Hydra's plugin scan on every run: it must not import ray. No ``from __future__
import annotations`` (Hydra's scanner runs the module before registering it, which breaks
string annotations in dataclasses).
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


def _init_defaults() -> dict[str, Any]:
    return {
        # "local": start a private local cluster for this multirun (the default);
        # "auto": join the cluster started on this machine with `ray start --head`;
        # "host:6379" or "ray://host:10001": an existing (remote) cluster.
        "address": "local",
        "num_cpus": None,  # a local cluster's CPUs (null: all cores)
        "include_dashboard": False,
        # Environment of the workers. null: PYTHONPATH = the driver's working directory,
        # so workers on this machine import the checkout the driver runs from. For a remote
        # cluster, ship the code: {working_dir: ., excludes: [outputs]} (see the docs).
        "runtime_env": None,
    }


def _remote_defaults() -> dict[str, Any]:
    return {
        # CPUs reserved per job. It is also the job's thread budget (FACTORY_THREADS):
        # boosters and torch use this many threads, so jobs never oversubscribe a node.
        "num_cpus": 1,
        "num_gpus": None,
        # Ray re-runs a job whose worker process died (node lost, OOM kill) this many times.
        "max_retries": 3,
    }


@dataclass
class RayConf:
    init: dict[str, Any] = field(default_factory=_init_defaults)
    remote: dict[str, Any] = field(default_factory=_remote_defaults)


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.factory_ray_launcher.ray_launcher.RayLauncher"
    ray: RayConf = field(default_factory=RayConf)


ConfigStore.instance().store(
    group="hydra/launcher", name="ray", node=RayLauncherConf, provider="factory_ray"
)
