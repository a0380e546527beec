"""Rows of pairs a~b back into matrices: the one helper behind the agreement, consistency and CKA heatmaps."""

import numpy as np
import pandas as pd
import pytest

from zooprobe.analysis.pairs import pair_matrices


def test_pairs_become_symmetric_matrices_with_nan_where_a_pair_has_no_row():
    rows = pd.DataFrame({"model": ["a~b", "a~c"], "value": [0.5, -0.2], "ci_low": [0.4, -0.3], "ci_high": [0.6, 0.1]})
    names, matrices = pair_matrices(rows, "model", ("value", "ci_low"))
    assert names == ["a", "b", "c"] and set(matrices) == {"value", "ci_low"}
    value = matrices["value"]
    assert np.array_equal(value, value.T, equal_nan=True) and np.diag(value).tolist() == [1.0, 1.0, 1.0]
    assert value[0, 1] == 0.5 and value[2, 0] == -0.2 and matrices["ci_low"][1, 0] == 0.4
    # b~c has no row: it stays unknown rather than reading as 0.
    assert np.isnan(value[1, 2]) and np.isnan(value[2, 1])


def test_a_value_that_is_not_a_pair_is_refused_naming_the_column():
    with pytest.raises(ValueError, match=r"layer 'stages.1' is not a pair 'a~b'"):
        pair_matrices(pd.DataFrame({"layer": ["stages.1"], "value": [1.0]}), "layer")
