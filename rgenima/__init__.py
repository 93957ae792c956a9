"""rgenima: a reproducible study of R-GenIMA.

R-GenIMA reads a brain MRI as one token per atlas region and a subject's SNP
genotypes as structured text, and classifies Alzheimer's disease stage
(NC, SMC, MCI, AD). See the book (``make book``) for the study itself.
"""

__version__ = "0.1.0"

import os as _os

if _os.environ.get("RGENIMA_LOG_FILE"):  # a notebook kernel started by `rgenima run`
    from rgenima.progress import attach_log_file as _attach_log_file

    _attach_log_file()

#: The four diagnostic stages, in the order used for every probability column.
STAGES: tuple[str, ...] = ("NC", "SMC", "MCI", "AD")

#: ADNIMERGE ``DX_bl`` code -> study stage. Anything else is excluded and reported.
DX_BL_TO_STAGE: dict[str, str] = {
    "CN": "NC",
    "SMC": "SMC",
    "EMCI": "MCI",
    "LMCI": "MCI",
    "AD": "AD",
}
