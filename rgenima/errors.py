"""Exceptions raised on bad input.

Every message names the file (and the row, column or field when there is one),
what was expected and what was found, so that a user can fix the input.
"""


class DataContractError(ValueError):
    """An input file does not follow the data contract (see DESIGN.md)."""


class ManifestError(DataContractError):
    """The data manifest is malformed or points at something that is not there."""
