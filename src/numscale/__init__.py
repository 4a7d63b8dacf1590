"""Helpers for the executable textbook *Numerical scaling in deep learning models*.

Import submodules explicitly (``from numscale import softmax``). This file imports
nothing on purpose: the build re-executes a chapter when a module it imports changes,
and a package ``__init__`` that imported every module would tie every chapter to
every module.
"""

__version__ = "0.1.0"
