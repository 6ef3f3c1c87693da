"""Reports a person reads: the simulation tearsheet (``tearsheet.html`` + PNGs) and its
quantstats-style metrics. See docs/simulation.md."""

from factory.reports.tearsheet import Tearsheet

__all__ = ["Tearsheet"]
