"""Rows about pairs (``a~b`` in one column of the score table) back into symmetric matrices.

Agreement between benchmarks, error consistency and CKA between models, and CKA between layers are
all stored one row per unordered pair; the report draws each as a square matrix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

PAIR_SEPARATOR = "~"


def pair_matrices(rows: pd.DataFrame, pair_column: str, columns: Sequence[str] = ("value",), *,
                  diagonal: float = 1.0) -> tuple[list[str], dict[str, np.ndarray]]:
    """Symmetric matrices of ``columns`` over the names that ``rows[pair_column]`` pairs.

    Args:
        rows: one row per pair, ``pair_column`` holding ``a~b``.
        pair_column: the column with the pair (``benchmark``, ``model`` or ``layer``).
        columns: the columns to put into matrices (e.g. ``value``, ``ci_low``, ``ci_high``).
        diagonal: every matrix's diagonal (a thing agrees with itself: 1).

    Returns:
        The names, in first-seen order over the pairs (row order when the pairs are i < j), and one
        (n, n) matrix per column; NaN where no row gives the pair, so a missing pair never reads as 0.

    Raises:
        ValueError: a pair that is not two names joined by ``~``.
    """
    pairs = []
    for value in rows[pair_column]:
        names = str(value).split(PAIR_SEPARATOR)
        if len(names) != 2:
            raise ValueError(f"{pair_column} {value!r} is not a pair 'a{PAIR_SEPARATOR}b'")
        pairs.append(names)
    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    index = {name: i for i, name in enumerate(names)}
    matrices = {column: np.where(np.eye(len(names)) == 1, diagonal, np.nan) for column in columns}
    for (a, b), (_, row) in zip(pairs, rows.iterrows()):
        i, j = index[a], index[b]
        for column, matrix in matrices.items():
            matrix[i, j] = matrix[j, i] = float(row[column])
    return names, matrices
