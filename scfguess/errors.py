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
