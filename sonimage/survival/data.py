"""Survival tables: reading CSV/Parquet, model formulas with interactions, design matrices with clear errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


class SurvivalDataError(ValueError):
    """A table, column or formula that cannot be used, with the file and the reason."""


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise SurvivalDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise SurvivalDataError(f"{path}: unknown table format {suffix!r} (use .csv or .parquet)")


_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            raise SurvivalDataError(f"formula {text!r}: unbalanced parentheses")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise SurvivalDataError(f"formula {text!r}: unbalanced parentheses")
    return parts + [cur]


def _expand(expr: str) -> list[tuple[str, ...]]:
    """Terms of an R-style right-hand side: '+' sums, '*' crosses (main effects and interaction), ':' interacts."""
    expr = expr.strip()
    if not expr:
        raise SurvivalDataError("formula has an empty term")
    terms: list[tuple[str, ...]] = []
    plus = _split_top(expr, "+")
    if len(plus) > 1:
        for part in plus:
            terms += [t for t in _expand(part) if t not in terms]
        return terms
    for op in ("*", ":"):
        factors = _split_top(expr, op)
        if len(factors) > 1:
            result = _expand(factors[0])
            for f in factors[1:]:
                right = _expand(f)
                crossed = [tuple(dict.fromkeys(a + b)) for a in result for b in right]
                result = (result + right + crossed) if op == "*" else crossed
            return list(dict.fromkeys(result))
    if expr.startswith("(") and expr.endswith(")"):
        return _expand(expr[1:-1])
    if not re.fullmatch(_NAME, expr):
        raise SurvivalDataError(f"formula term {expr!r} is not a column name")
    return [(expr,)]


def parse_formula(formula: str) -> list[str]:
    """Terms of a formula such as ``trt*(x1+x2) + age`` as ``['trt', 'x1', 'x2', 'trt:x1', 'trt:x2', 'age']``.

    A left-hand side (``Surv(t, e) ~``) is ignored: time and event are named separately.
    """
    rhs = formula.split("~", 1)[-1]
    terms = _expand(rhs)
    # main effects first, then interactions, each in order of appearance (as R orders them)
    ordered = sorted(terms, key=len)
    return [":".join(t) for t in ordered]


@dataclass(frozen=True)
class Design:
    """How formula terms become numeric columns: categorical levels (first level is the reference)."""

    terms: tuple[str, ...]
    levels: dict[str, list] = field(default_factory=dict)

    @property
    def variables(self) -> list[str]:
        """The data columns the design reads."""
        return list(dict.fromkeys(v for t in self.terms for v in t.split(":")))

    def columns(self) -> list[str]:
        """Names of the numeric design columns."""
        out: list[str] = []
        for term in self.terms:
            parts = [[f"{v}[{lvl}]" for lvl in self.levels[v][1:]] if v in self.levels else [v]
                     for v in term.split(":")]
            combos = [""]
            for p in parts:
                combos = [f"{c}:{q}" if c else q for c in combos for q in p]
            out += combos
        return out

    def matrix(self, df: pd.DataFrame, source: str = "data") -> pd.DataFrame:
        """The numeric design matrix of ``df`` (one column per :meth:`columns`)."""
        check_columns(df, self.variables, source)
        base: dict[str, np.ndarray] = {}
        for v in self.variables:
            s = df[v]
            if v in self.levels:
                unknown = set(s.astype(str)) - {str(x) for x in self.levels[v]}
                if unknown:
                    raise SurvivalDataError(f"{source}: column {v!r} has levels {sorted(unknown)} unseen in the "
                                            f"development data {self.levels[v]}")
                for lvl in self.levels[v][1:]:
                    base[f"{v}[{lvl}]"] = (s.astype(str) == str(lvl)).to_numpy(float)
            else:
                base[v] = s.to_numpy(float)
        cols = {}
        for name in self.columns():
            x = np.ones(len(df))
            for part in name.split(":"):
                x = x * base[part]
            cols[name] = x
        return pd.DataFrame(cols, index=df.index)


def check_columns(df: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raise naming the file and column when a column is absent or has missing values."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SurvivalDataError(f"{source}: unknown column(s) {missing}; available: {list(df.columns)}")
    for c in columns:
        na = pd.isna(df[c].to_numpy())  # numpy's test: a tenth of a pandas one, called for every model fit
        n_na = int(na.sum())
        if n_na:
            rows = list(df.index[df[c].isna()][:5])
            raise SurvivalDataError(f"{source}: column {c!r} has {n_na} missing value(s) (first rows {rows}); "
                                    "impute or drop them before modelling")


def make_design(df: pd.DataFrame, formula: str, source: str = "data") -> Design:
    """A :class:`Design` for ``formula`` on ``df``: numeric and boolean columns as is, others as categories."""
    terms = tuple(parse_formula(formula))
    design = Design(terms)
    check_columns(df, design.variables, source)
    levels = {}
    for v in design.variables:
        s = df[v]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            levels[v] = sorted(s.astype(str).unique().tolist())
            if len(levels[v]) < 2:
                raise SurvivalDataError(f"{source}: column {v!r} has one level only ({levels[v]})")
    return Design(terms, levels)


def survival_outcome(df: pd.DataFrame, time: str, event: str, source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Validated (time, event) arrays: positive times, events coded 0/1."""
    check_columns(df, [time, event], source)
    t = pd.to_numeric(df[time], errors="coerce").to_numpy(float)
    e = pd.to_numeric(df[event], errors="coerce").to_numpy(float)
    if np.isnan(t).any() or (t <= 0).any():
        raise SurvivalDataError(f"{source}: column {time!r} must hold positive numbers")
    if not np.isin(e, (0, 1)).all():
        raise SurvivalDataError(f"{source}: column {event!r} must be coded 0 (censored) / 1 (event)")
    return t, e.astype(int)
