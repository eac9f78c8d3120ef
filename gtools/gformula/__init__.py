"""Parametric g-formula: fitting, numba simulation kernels, results.

``gt.GFormula(...)`` is the specification (:mod:`gtools.gformula.spec`),
:mod:`gtools.gformula.engine` the Monte Carlo engine (numba kernels over the
current time slice and the history state, plus a numpy reference path),
:mod:`gtools.gformula.result` the result objects.
"""

from gtools.gformula.result import GFormulaResult, IndividualRisk, NaturalCourse
from gtools.gformula.spec import GFormula

__all__ = ["GFormula", "GFormulaResult", "NaturalCourse", "IndividualRisk"]
