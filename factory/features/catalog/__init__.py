"""The feature catalog: every module here registers its feature groups on import.

Adding features is one new module in this package using
:func:`factory.features.registry.register`; nothing else changes. The registry imports all
modules of this package the first time it is asked for the catalog.
"""
