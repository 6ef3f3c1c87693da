"""Structured config of ``hydra/sweeper: factory`` (Hydra's basic sweeper schema).

Imported by Hydra's plugin scan on every run: keep it cheap. No ``from __future__ import
annotations`` (Hydra's scanner runs the module before registering it in sys.modules).
"""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class FactoryBasicSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.factory_basic_sweeper.basic_sweeper.FactoryBasicSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="factory", node=FactoryBasicSweeperConf, provider="factory"
)
