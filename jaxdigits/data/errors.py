"""The one error type every data loader raises for bad or missing input."""


class DataError(ValueError):
    """Input data is missing, unreadable or malformed; the message names the file."""
