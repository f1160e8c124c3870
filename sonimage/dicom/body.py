"""Body-size normalisers for SUV (Sugawara; DICOM SUVType terms): lean body mass, ideal body weight, BSA.

Weights in kg, heights in cm. For PatientSex 'O' (or unknown) the mean of the two sex-specific values is used,
the OncoRay SUV manual's proposal.
"""

from __future__ import annotations

from collections.abc import Callable


def _by_sex(sex: str, male: Callable[[], float], female: Callable[[], float]) -> float:
    if sex == "M":
        return male()
    if sex == "F":
        return female()
    return (male() + female()) / 2.0


def lbm_james(weight: float, height: float, sex: str) -> float:
    """Lean body mass by James (DICOM 'LBMJAMES128')."""
    ratio = (weight / height) ** 2
    return _by_sex(sex, lambda: 1.10 * weight - 128 * ratio, lambda: 1.07 * weight - 148 * ratio)


def lbm_morgan(weight: float, height: float, sex: str) -> float:
    """Lean body mass by Morgan (DICOM 'LBM')."""
    ratio = (weight / height) ** 2
    return _by_sex(sex, lambda: 1.10 * weight - 120 * ratio, lambda: 1.07 * weight - 148 * ratio)


def lbm_janmahasatian(weight: float, height: float, sex: str) -> float:
    """Lean body mass by Janmahasatian (DICOM 'LBMJANMA'; PERCIST's SUL)."""
    bmi = weight / (height / 100.0) ** 2
    return _by_sex(sex, lambda: 9270 * weight / (6680 + 216 * bmi), lambda: 9270 * weight / (8780 + 244 * bmi))


def ideal_body_weight(height: float, sex: str) -> float:
    """Ideal body weight (DICOM 'IBW')."""
    return _by_sex(sex, lambda: 48.0 + 1.06 * (height - 152), lambda: 45.5 + 0.91 * (height - 152))


def bsa_dubois(weight: float, height: float) -> float:
    """Body surface area in m² by Du Bois (DICOM 'BSA')."""
    return 0.007184 * height**0.725 * weight**0.425


def normaliser_kg(suv_type: str, weight: float, height: float | None, sex: str) -> float:
    """The mass (kg) that replaces body weight for a GML image of ``suv_type``; raises when height is needed and absent."""
    kind = (suv_type or "BW").upper()
    if kind == "BW":
        return weight
    if height is None:
        raise ValueError(f"SUVType {kind} needs PatientSize (height), which is missing")
    table: dict[str, Callable[[], float]] = {
        "LBM": lambda: lbm_morgan(weight, height, sex),
        "LBMJAMES128": lambda: lbm_james(weight, height, sex),
        "LBMJANMA": lambda: lbm_janmahasatian(weight, height, sex),
        "IBW": lambda: ideal_body_weight(height, sex),
    }
    if kind not in table:
        raise ValueError(f"SUVType {kind!r} is not a known normalisation")
    return table[kind]()
