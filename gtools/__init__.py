"""gtools: g-methods for longitudinal data with time-varying treatments.

Panel ingestion (:class:`PersonTime`), history features (:func:`lag`,
:func:`cumsum`, ...), regimes (:mod:`gtools.regimes`), nuisance models
(:class:`Model`), and the estimators built on them: marginal structural
models by IPTW, the parametric g-formula, g-estimation of structural nested
mean models and Q-learning, with a person-level bootstrap for all of them.
Heavy modules are imported on first use so ``import gtools`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from gtools import regimes
from gtools.bootstrap import BootstrapResult, bootstrap  # a function named like its module: bind eagerly
from gtools.errors import DataError, FitWarning, IdentificationError
from gtools.history import Feature, cummean, cumsum, ever, lag, time_since
from gtools.models import FittedModel, Model
from gtools.panel import PersonTime, load_schema
from gtools.report import report as report  # named like its module too; it imports nothing heavy

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_LAZY = {
    "GFormula": "gtools.gformula",
    "GFormulaResult": "gtools.gformula",
    "IPTW": "gtools.weights",
    "WeightsResult": "gtools.weights",
    "MSM": "gtools.msm",
    "MSMResult": "gtools.msm",
    "CloneCensorWeight": "gtools.msm",
    "GEstimation": "gtools.gestimation",
    "SNMResult": "gtools.gestimation",
    "QLearning": "gtools.qlearning",
    "DTRResult": "gtools.qlearning",
    "TimeDAG": "gtools.dag",
    "report": "gtools.report",
}
_SUBMODULES = {"datasets", "sensitivity", "validation", "dag", "history", "panel", "models", "formula"}

__all__ = [
    "DataError", "FitWarning", "IdentificationError", "PersonTime", "load_schema", "Model", "FittedModel",
    "Feature", "lag", "cumsum", "cummean", "time_since", "ever", "regimes", "__version__",
    "bootstrap", "BootstrapResult", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"gtools.{name}")
    raise AttributeError(f"module 'gtools' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
