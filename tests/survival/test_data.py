"""Formulas, design matrices and the errors users see."""

from __future__ import annotations

import pandas as pd
import pytest

from sonimage.survival.cox import fit_cox
from sonimage.survival.data import SurvivalDataError, make_design, parse_formula, read_table


def test_formula_expansion():
    assert parse_formula("trt*(x1+x2)") == ["trt", "x1", "x2", "trt:x1", "trt:x2"]
    assert parse_formula("Surv(t, e) ~ age + a*b + a:c") == ["age", "a", "b", "a:b", "a:c"]
    with pytest.raises(SurvivalDataError, match="unbalanced"):
        parse_formula("trt*(x1+x2")
    with pytest.raises(SurvivalDataError, match="not a column name"):
        parse_formula("log(x1)")


def test_categorical_design_with_interaction():
    df = pd.DataFrame({"trt": [0, 1, 0, 1], "site": ["b", "a", "c", "a"], "x": [1.0, 2, 3, 4]})
    d = make_design(df, "trt*site")
    assert d.columns() == ["trt", "site[b]", "site[c]", "trt:site[b]", "trt:site[c]"]
    m = d.matrix(df)
    assert m["trt:site[b]"].tolist() == [0, 0, 0, 0] and m["site[c]"].tolist() == [0, 0, 1, 0]
    with pytest.raises(SurvivalDataError, match="unseen"):
        d.matrix(df.assign(site=["z", "a", "b", "c"]))


def test_clear_errors_name_file_and_column(tmp_path):
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 0, 1, 1], "x": [1.0, None, 2, 3]})
    path = tmp_path / "dev.csv"
    df.to_csv(path, index=False)
    data = read_table(path)
    with pytest.raises(SurvivalDataError, match=r"dev\.csv: column 'x' has 1 missing"):
        fit_cox(data, "t", "e", "x", source=str(path))
    with pytest.raises(SurvivalDataError, match=r"dev\.csv: unknown column\(s\) \['nope'\]"):
        fit_cox(data, "t", "e", "nope", source=str(path))
    with pytest.raises(SurvivalDataError, match="0 \\(censored\\) / 1"):
        fit_cox(data.assign(e=[2, 0, 1, 1], x=1.0), "t", "e", "x", source=str(path))
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(SurvivalDataError, match="unknown table format"):
        read_table(tmp_path / "x.xlsx")
