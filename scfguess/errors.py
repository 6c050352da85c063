"""Exception types raised by scfguess."""


class UnsupportedElementError(ValueError):
    """An element is not covered by the model or by the auxiliary basis.

    Attributes
    ----------
    elements : list of str
        Element symbols that are not covered, sorted.
    """

    def __init__(self, elements, what="the auxiliary basis"):
        self.elements = sorted(set(elements))
        super().__init__(f"element(s) {', '.join(self.elements)} not covered by {what}")


class ModelNotInstalledError(RuntimeError):
    """No density model is installed (or the named one cannot be found)."""


class GeometryError(ValueError):
    """Non-finite coordinates or atoms at (nearly) the same position: no guess makes the calculation meaningful."""


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs the Python package {module!r}; install it with "
                         f"pip install 'scfguess[{extra}]'.")


def require(module: str, extra: str, purpose: str):
    """Import and return an optional dependency, or raise :class:`MissingExtraError` naming its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, extra, purpose) from None
