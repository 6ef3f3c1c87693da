"""Production monitoring: the prediction log, drift (PSI) against reference bins frozen at
training time, calibration, live performance, and retraining recommendations with an exit
code (0 healthy, 1 warn, 2 alert). See docs/monitoring.md."""

from factory.monitoring.log import PredictionLog
from factory.monitoring.monitor import Monitor, MonitorReport, run_check
from factory.monitoring.reference import ReferenceProfile

__all__ = ["Monitor", "MonitorReport", "PredictionLog", "ReferenceProfile", "run_check"]
