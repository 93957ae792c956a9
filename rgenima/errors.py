"""Exceptions raised on bad input.

Every message names the file (and the row, column or field when there is one),
what was expected and what was found, so that a user can fix the input.
"""


class DataContractError(ValueError):
    """An input file does not follow the data contract (see DESIGN.md)."""


class ManifestError(DataContractError):
    """The data manifest is malformed or points at something that is not there."""


class PrivacyError(ValueError):
    """Output about to be published holds subject identifiers of a restricted cohort.

    Raised by :func:`rgenima.privacy.assert_publishable`; the message names the table
    or figure and where the identifiers are (digits masked), and the attribute
    ``findings`` lists them.
    """

    #: The identifiers found (list of :class:`rgenima.privacy.ObjectFinding`).
    findings: list = []
