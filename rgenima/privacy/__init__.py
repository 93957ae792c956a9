"""Keep subject identifiers of restricted cohorts (ADNI) out of published output.

Published output (the book) never contains subject identifiers of restricted
data. This package gives two guards:

- **before publishing** an object (a table, a figure, a JSON-able report),
  :func:`assert_publishable` raises :class:`~rgenima.errors.PrivacyError` when the
  cohort is restricted and the object holds an identifier; it returns the object
  unchanged otherwise (and always when the cohort is not restricted), so a notebook
  can write ``display(assert_publishable(table, ids, "Table 2"))``;
- **after the build**, :func:`scan_directory` (CLI: ``rgenima check-privacy``) reads
  every text file of the built book and reports where an identifier appears.

Which identifiers (:func:`cohort_identifiers`)
----------------------------------------------
PTIDs (``PTID`` column of the clinical table, every row, excluded subjects
included), genotype IIDs (column 2 of the ``.fam``), subjects of the BIDS folder
(``sub-ADNI<site>S<number>`` folders, when ``cohort.mri`` is a BIDS root), and RIDs:
the clinical ``RID`` column plus the subject number of every ADNI-shaped PTID (in
ADNI the RID *is* that number: ``023_S_0031`` has RID 31) plus purely numeric IIDs.

How they are matched in text (case-insensitive)
-----------------------------------------------
Left and right of every match there must be no letter or digit (``_``, ``-``, ``/``,
``.``, quotes, spaces and markup are boundaries), so ``1990_S_90001`` never matches
``990_S_9000``; ``fig_990_S_9000.png`` does.

1. **ADNI-shaped PTIDs** (``<site digits>_S_<subject digits>``: ADNI uses 3 + 4
   digits, the synthetic generator 5 subject digits past 999 subjects) match in the spellings
   ``990_S_9000``, ``990-S-9000``, ``990S9000``, ``990 S 9000``, ``990.S.9000``
   (up to three of ``_``, ``-``, ``.``, white space, or an underscore or space
   escaped as ``%5F``, ``%20``, ``&#95;``, ``&#x5F;``, ``&lowbar;``, ``&nbsp;`` or
   ``\u005f``, around the ``S``), with or without zero padding (``990_S_09000``),
   and as BIDS participant labels, which
   :func:`rgenima.data.discovery.participant_id` forms as ``ADNI`` + the PTID
   without underscores: ``ADNI990S9000`` and ``sub-ADNI990S9000`` (also inside file
   names such as ``sub-ADNI990S9000_ses-M000_T1w``). A candidate of that shape is
   normalised to ``990_S_9000`` (site and number as integers) and looked up in a set, so the cost does not grow
   with the number of subjects and IDs of other cohorts are not reported.
2. **Other identifiers** (a PTID or IID of another shape) match exactly, as a
   token, as does their BIDS label ``ADNI<id without underscores>``.
3. **RIDs** are small integers (ADNI: 2 to ~10000) that collide with years,
   sample sizes, permutation counts and digits of p-values, so a bare number is
   never reported. A RID matches only right after the word ``RID`` (or ``RIDs``),
   separated by at most 12 characters of spaces, quotes, ``: = # _ -``, HTML
   entities (``&quot;``) or tags (as in highlighted JSON or a two-cell row):
   ``RID 9000``, ``RID=9000``, ``RID: 9000``, ``"RID": 9000``, ``RID_9000``,
   ``<td>RID</td><td>9000</td>``; leading zeros are ignored (``RID 0031`` is 31).
   ``9000 permutations`` and ``n = 9001`` are not reported. In a *table*
   (:func:`check_table_for_identifiers`) the column name is the context: every
   value of a column (or index) named ``RID``, ``RIDs`` or ``..._RID`` that is a
   cohort RID is reported.

Scope of the directory scan
---------------------------
Every file under the build folder is read (:func:`scan_files`), whatever its name:

- text in UTF-8, UTF-16 or UTF-32, with or without a byte-order mark (HTML, JSON,
  SVG, CSV, JavaScript, executed notebooks, ``_sources``...);
- the same text with URL escapes (``%5F``), HTML entities (``&#95;``) and JSON
  escapes (``\u005f``) undone, with markup removed (``990<b>_S_9000</b>``), and,
  for JSON and notebooks, as decoded string values;
- base64 payloads found in any text (``data:`` URIs, notebook image outputs, small
  encoded strings such as ``OTkwX1NfOTAwMA==``), decoded and read again;
- gzip files and zip archives, unpacked;
- images: PNG text chunks (``tEXt``, ``zTXt``, ``iTXt``), EXIF, JPEG/GIF comments
  and other metadata Pillow reads; then the printable strings of any binary file.

Not seen, therefore not checked: **text drawn into the pixels of an image** (a tick
label rendered into a PNG, a screenshot), content inside formats whose compression
is not undone (fonts, PDF streams, videos: :data:`OPAQUE_SUFFIXES`, of which only the
raw strings are searched), identifiers spelled out differently (e.g. with the
digits written as words, or split over two table cells), and a RID shown only under
a ``RID`` column header of a rendered table. Pixels are covered by the gate before
publication instead: :func:`assert_publishable` checks every text a matplotlib
figure draws (titles, tick labels, legends, annotations) before it is shown, and a
restricted cohort's book never shows subject images.

Modules: :mod:`~rgenima.privacy.identifiers` (the identifiers and their matcher),
:mod:`~rgenima.privacy.text` (:func:`scan_text`), :mod:`~rgenima.privacy.build` (the
scan of a built book) and :mod:`~rgenima.privacy.objects` (the gate before
publishing); the public names are re-exported here.
"""

from rgenima.privacy.build import BINARY_SUFFIXES, OPAQUE_SUFFIXES, list_build_files, scan_directory, scan_files
from rgenima.privacy.identifiers import IdentifierSet, cohort_identifiers
from rgenima.privacy.objects import (
    ObjectFinding,
    assert_publishable,
    check_figure_for_identifiers,
    check_table_for_identifiers,
    find_identifiers,
    redact,
)
from rgenima.privacy.text import Finding, scan_text

__all__ = [
    "BINARY_SUFFIXES",
    "OPAQUE_SUFFIXES",
    "Finding",
    "IdentifierSet",
    "ObjectFinding",
    "assert_publishable",
    "check_figure_for_identifiers",
    "check_table_for_identifiers",
    "cohort_identifiers",
    "find_identifiers",
    "list_build_files",
    "redact",
    "scan_directory",
    "scan_files",
    "scan_text",
]
