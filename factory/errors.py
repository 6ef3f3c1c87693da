"""The one user-facing error type.

Anything a user can cause (a bad file, a bad override, a dataset too short) is raised as a
:class:`FactoryError` whose message names the file/column/row or config key, the value, and
the fix. ``run.py`` prints it as one clean line instead of a traceback.
"""

from __future__ import annotations


class FactoryError(ValueError):
    """A problem with user input or configuration, with the fix in its message."""
