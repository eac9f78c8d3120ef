"""gtools: g-methods for longitudinal data with time-varying treatments."""

from gtools.errors import DataError, FitWarning, IdentificationError

__version__ = "0.1.0"
__all__ = ["DataError", "FitWarning", "IdentificationError", "__version__"]
