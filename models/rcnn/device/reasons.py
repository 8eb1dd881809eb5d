"""One line for what a device could not do, keeping the name of what was missing.

torch's dispatcher answers a missing kernel with a many-line dump and its AMP check names the
missing function on its last line: cut to the first line, either name would be lost.
"""

from __future__ import annotations

import re

_MISSING_OPERATOR = re.compile(r"Could not run '([^']+)' with arguments from the '([^']+)' backend")


def missing_operator(err: BaseException) -> str | None:
    """The operator a "Could not run 'aten::sort.values_stable' ..." error names, else None."""
    found = _MISSING_OPERATOR.search(str(err))
    return found.group(1) if found else None


def reason(err: BaseException) -> str:
    """`Type: message` on one line; a missing kernel as `<operator> missing on <backend>`."""
    found = _MISSING_OPERATOR.search(str(err))
    if found is not None:
        return f"{type(err).__name__}: {found.group(1)} missing on the {found.group(2)} backend"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines)}" if lines else type(err).__name__
