"""Generate the synthetic SONImage study: per patient an FDG and a FES PET/CT as DICOM, plus the ground truth.

Layout under ``out``::

    dicom/<cohort>/<PatientID>/<YYYYMMDD>_PET-CT_<tracer>/<NNN>_<series>/IM-<series>-<instance>.dcm
    truth/<cohort>/patients.parquet   clinical table (no identifying fields)
    truth/<cohort>/lesions.parquet    lesions (sonimage.synth.tables: er_positive, fes_true_suv, ...) + centres per
                                      scan (mm), true mask volume, true SUVmax/SUVmean and the noise-free image's
                                      SUVmax in the mask (<tracer>_expected_suvmax) per tracer, the reader's
                                      contour (drawn, volume, Dice, ROI name), series UIDs
    truth/<cohort>/patients.parquet   adds drawn_* / undrawn_* patient truth (:func:`with_reading_truth`)
    truth/<cohort>/series.parquet     per series: UIDs, tracer, vendor, decay correction, exact SUV factor(s),
                                      table shift and (FES day) the rotation + deformation ('motion', JSON)
    truth/<cohort>/truth.json         true model coefficients, heterogeneity_outcome (objectives 1-2's estimands),
                                      recovery (NEMA sphere SUVmax recovery, EARL1) and the image parameters
    truth/<cohort>/features/          lesions.parquet, patients.parquet: the true values in the feature stage's
                                      lesion and patient table formats (sonimage.tables)
    truth/<cohort>/done/<subject>.json  completion marker of a patient (its truth rows): a rerun skips it
    site-private/linking.csv          cohort, PatientID, subject_id: what the site keeps to label outputs

Patients are independent: pass an executor (``concurrent.futures`` or ``distributed.Client``) to fan them out.
Every file is written atomically; a rerun after a crash regenerates only unfinished patients, byte-identically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from functools import partial
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from sonimage.io import json_bytes, write_bytes_atomic, write_json_atomic, write_private_atomic
from sonimage.lesions.roi import roi_name
from sonimage.parallel import Executor, parallel_starmap
from sonimage.synth import render
from sonimage.synth.anatomy import Body, Grid, label_map, make_body, place_lesions
from sonimage.synth.dicom_writer import Patient, SeriesHeader, da, make_uid, write_ct_series, write_pet_series
from sonimage.synth.identity import Identity, make_identities, patient_rng
from sonimage.synth.rtstruct_writer import write_rtstruct
from sonimage.synth.scanners import SITE_PROFILES, Acquisition, ScannerProfile, plan_scan, profile_for_site
from sonimage.synth.psf import recovery_coefficients
from sonimage.synth.tables import COHORTS as COHORT_SPECS
from sonimage.synth.tables import CohortTables, heterogeneity_outcome_truth, patient_truth, simulate_cohort_tables
from sonimage.tables.parquet import write_table

COHORTS = ("sonia", "impact", "transcan")
TRACERS = ("FDG", "FES")
SCAN_MARGIN_MM = 20.0  # field of view beyond the vertex


@dataclass(frozen=True)
class SizeSpec:
    """Image size: PET and CT matrix, and how much coarser than the scanner's native voxels."""

    pet_matrix: int
    ct_matrix: int
    pixel_factor: float
    slice_factor: float


SIZES = {
    "full": SizeSpec(128, 256, 1.0, 1.0),
    "small": SizeSpec(64, 128, 2.0, 2.0),
    "tiny": SizeSpec(32, 64, 4.0, 12.0),
}


@dataclass(frozen=True)
class StudySummary:
    """What a generation run produced (counts only, no identifying fields)."""

    out: Path
    cohorts: tuple[str, ...]
    n_patients: int
    n_generated: int
    n_series: int
    n_files: int
    n_lesions: int
    n_bytes: int


def pet_grid(profile: ScannerProfile, size: SizeSpec, body: Body) -> tuple[Grid, Grid]:
    """PET and CT grids: same slice positions, the CT with a finer in-plane matrix over the same field of view."""
    pixel = profile.pixel_mm * size.pixel_factor
    dz = profile.slice_mm * size.slice_factor
    n = int(math.ceil((body.length_mm + 2 * SCAN_MARGIN_MM) / dz))
    zs = np.round(SCAN_MARGIN_MM - dz * np.arange(n), 4)
    fov = pixel * size.pet_matrix
    return Grid.centred(size.pet_matrix, pixel, zs), Grid.centred(size.ct_matrix, fov / size.ct_matrix, zs)


def _shifts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Patient position on the table per scan: FDG near the reference, FES moved 3–8 mm in a random direction
    (the FES day adds a rotation and a mild deformation, :func:`sonimage.synth.render.random_motion`)."""
    fdg = rng.normal(0.0, 2.0, 3)
    direction = rng.normal(size=3)
    return {"FDG": fdg, "FES": fdg + direction / np.linalg.norm(direction) * rng.uniform(3.0, 8.0)}


READERS = {"R1": -1.5, "R2": 0.0, "R3": 2.0}  # systematic contour offset of each reader (mm on the radius)


def reader_contours(lesions: list[dict], rng: np.random.Generator) -> list[dict]:
    """How the reader drew each lesion: missed (small and FDG-negative lesions more often), radius off by the
    reader's bias plus a per-lesion error, centre off by ~1 mm per axis. Truth of the delineation error."""
    reader = str(rng.choice(list(READERS)))
    out = []
    for les in lesions:
        d = float(les["diameter_mm"])
        p_miss = 1.0 / (1.0 + np.exp((d - 7.5) / 1.2)) + (0.15 if les.get("fdg_negative") else 0.0)
        drawn = bool(rng.random() >= min(p_miss, 0.9))
        radius_error = READERS[reader] + rng.normal(0.0, 1.0)
        offset = rng.normal(0.0, 1.0, 3)
        out.append({"reader": reader, "reader_drawn": drawn,
                    "reader_diameter_mm": round(max(d + 2.0 * radius_error, 3.0), 2),
                    "reader_offset_x_mm": round(float(offset[0]), 2), "reader_offset_y_mm": round(float(offset[1]), 2),
                    "reader_offset_z_mm": round(float(offset[2]), 2)})
    if out and not any(r["reader_drawn"] for r in out):  # the patient has disease the reader saw: the largest
        out[int(np.argmax([float(les["diameter_mm"]) for les in lesions]))]["reader_drawn"] = True
    return out


def _patient_fields(ident: Identity, row: dict, when: datetime) -> Patient:
    age = when.year - ident.birth_date.year - ((when.month, when.day) < (ident.birth_date.month, ident.birth_date.day))
    return Patient(ident.name, ident.patient_id, ident.birth_date, str(row["sex"]), age,
                   f"{float(row['weight_kg']):.1f}", f"{float(row['height_cm']) / 100.0:.2f}")


def _folder(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def _uptake(les: dict, tracer: str):
    """The lesion's SUV at body-frame offsets from its centre: SUVmax times its profile (core, gradient)."""
    t = tracer.lower()
    suv, d = float(les[f"{t}_suv"]), float(les["diameter_mm"])
    core, core_uptake = float(les.get("necrotic_core_fraction", 0.0)), float(les.get("necrotic_core_uptake", 1.0))
    gradient = float(les.get("gradient", 0.0))
    direction = np.array([les.get("gradient_x", 1.0), les.get("gradient_y", 0.0), les.get("gradient_z", 0.0)], float)
    return partial(_scaled_profile, suv, d, core, core_uptake, gradient, direction)


def _scaled_profile(suv: float, diameter: float, core: float, core_uptake: float, gradient: float,
                    direction: np.ndarray, rel: np.ndarray) -> np.ndarray:
    return suv * render.profile_at(rel, diameter, core, core_uptake, gradient, direction)


def _images(body: Body, grid: Grid, ct_grid: Grid, tracer: str, lesions: list[dict], centres: np.ndarray,
            shift: np.ndarray, rng: np.random.Generator, motion: render.Motion | None
            ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """PET (SUV, float32) and CT (HU, int16) of one scan, and per lesion its true mask statistics.

    ``centres`` are body-frame lesion centres; ``shift`` is the patient's position on the table in this scan;
    ``motion`` (second day) rotates and deforms the patient after the shift. Both tracers are rendered the same
    way (:func:`sonimage.synth.render.noise_free_image`): the geometry is evaluated through the day's pose.
    Per lesion: the true uptake's SUVmax and mean over the sphere, the true mask (voxel centres within the sphere
    around the moved centre) and the noise-free image's maximum inside it (``expected_suvmax``).
    """
    diameters = [float(les["diameter_mm"]) for les in lesions]
    pose = render.Pose(np.asarray(shift, float), motion)
    final = pose.from_body(centres) if len(centres) else np.zeros((0, 3))
    blurred, rendered = render.noise_free_image(
        body, grid, pose, render.physiology(tracer, rng), render.PSF_FWHM_MM,
        [(c, d, _uptake(les, tracer)) for c, d, les in zip(centres, diameters, lesions)])
    masks = [render.sphere_mask(grid, c, d) for c, d in zip(final, diameters)]
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    stats = [{"centre": c, "n_voxels": m.n_voxels, "volume_ml": m.n_voxels * voxel_ml, "suvmax": r.true_suvmax,
              "suvmean": r.true_suvmean, "expected_suvmax": float(blurred[m.box][m.mask].max()), "mask": m}
             for c, m, r in zip(final, masks, rendered)]
    suv = render.add_noise(blurred, rng)
    placed = centres + shift
    ct_masks = [render.sphere_mask(ct_grid, c, d) for c, d in zip(placed, diameters)]
    organs = [str(les["organ"]) for les in lesions]
    hu = render.ct_image(label_map(body, ct_grid.shifted(shift)), ct_masks, organs, rng,
                         None if motion is None else (ct_grid, motion))
    return suv, hu, stats


def _pet_row(acq: Acquisition) -> dict:
    """Ground truth of a PET series' header: which SUV rules it exercises and its exact factors."""
    p = acq.profile
    return {"units": p.units, "decay_correction": p.decay_correction, "suv_factor": float(acq.factors[0]),
            "suv_factors": [float(f) for f in acq.factors], "dose_in_mbq": p.dose_in_mbq,
            "injection_date_written": acq.write_injection_date, "injection_before_midnight": acq.midnight,
            "ge_private_scan_time": p.ge_private_scan_time, "philips_suv_scale": bool(acq.suv_scale_text),
            "philips_activity_scale": bool(acq.activity_scale_text), "dose_bq": acq.dose_bq,
            "uptake_s": acq.uptake_s}


def _scan(out_patient: Path, tracer: str, row: dict, lesions: list[dict], centres: np.ndarray, body: Body,
          ident: Identity, size: SizeSpec, seed: int, shift: np.ndarray, motion: render.Motion | None,
          readers: list[dict]) -> tuple[list[dict], list[dict]]:
    """Write one PET/CT session (and the reader's RTSTRUCT on FDG); return its series rows and per-lesion facts."""
    cohort, subject = str(row["cohort"]), str(row["subject_id"])
    profile = profile_for_site(str(row["site"]))
    rng = patient_rng(seed, cohort, subject, tracer)
    grid, ct_grid = pet_grid(profile, size, body)
    scan_date = ident.randomisation + timedelta(days=int(row[f"{tracer.lower()}_day"]))
    acq = plan_scan(profile, tracer, scan_date, float(row["weight_kg"]), grid.zs, rng)
    ct_time = acq.scan_start - timedelta(minutes=3)
    patient = _patient_fields(ident, row, ct_time)
    key = (seed, cohort, subject, tracer)
    study_uid, frame_uid = make_uid(*key, "study"), make_uid(*key, "frame")
    accession = f"{int(rng.integers(10_000_000, 99_999_999))}"
    study_dir = out_patient / f"{da(ct_time)}_PET-CT_{tracer}"

    def header(number: int, description: str) -> SeriesHeader:
        return SeriesHeader(study_uid, make_uid(*key, number), frame_uid, accession, ct_time,
                            f"PET-CT whole body {tracer}", number, description, (*key, number))

    suv, hu, stats = _images(body, grid, ct_grid, tracer, lesions, centres, shift, rng, motion)
    pet_h, ct_h = header(3, f"PET WB {tracer} AC"), header(2, "CT LowDose WB")
    pet_uids, pet_ds = write_pet_series(study_dir / f"003_{_folder(pet_h.series_description)}", suv, grid, acq,
                                        patient, pet_h)
    ct_uids = write_ct_series(study_dir / f"002_{_folder(ct_h.series_description)}", hu, ct_grid, profile, ct_time,
                              patient, ct_h)
    common = {"cohort": cohort, "subject_id": subject, "tracer": tracer, "study_uid": study_uid,
              "frame_of_reference_uid": frame_uid, "site": str(row["site"]), "vendor": profile.vendor,
              "manufacturer": profile.manufacturer, "model": profile.model, "profile": profile.name,
              "shift_x_mm": shift[0], "shift_y_mm": shift[1], "shift_z_mm": shift[2],
              "motion": "" if motion is None else json.dumps(motion.as_dict())}
    rows = [
        {**common, "modality": "PT", "series_uid": pet_h.series_uid, **_pet_row(acq), "n_files": len(pet_uids),
         "shape_zyx": list(suv.shape), "spacing_zyx_mm": list(grid.spacing)},
        {**common, "modality": "CT", "series_uid": ct_h.series_uid, "n_files": len(ct_uids),
         "shape_zyx": list(hu.shape), "spacing_zyx_mm": list(ct_grid.spacing)},
    ]
    t = tracer.lower()
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    facts = [{f"{t}_centre_x_mm": st["centre"][0], f"{t}_centre_y_mm": st["centre"][1],
              f"{t}_centre_z_mm": st["centre"][2], "volume_ml" if tracer == "FDG" else "fes_volume_ml": st["volume_ml"],
              f"{t}_true_suvmax": round(st["suvmax"], 4), f"{t}_true_suvmean": round(st["suvmean"], 4),
              f"{t}_expected_suvmax": round(st["expected_suvmax"], 4),
              f"{t}_series_uid": pet_h.series_uid} for st in stats]
    if tracer == "FDG":
        rt_h = header(901, "RTSTRUCT Lesions")
        names, masks, numbers = [], [], []
        for les, st, rd, f in zip(lesions, stats, readers, facts):
            f.update({"n_voxels": st["n_voxels"], **rd, "roi_name": None, "rtstruct_series_uid": rt_h.series_uid})
            if not rd["reader_drawn"]:
                continue
            offset = np.array([rd[f"reader_offset_{a}_mm"] for a in "xyz"])
            m = render.sphere_mask(grid, st["centre"] + offset, rd["reader_diameter_mm"])
            truth_mask, mine = st["mask"].full(grid.shape), m.full(grid.shape)
            f.update({"roi_name": roi_name(les["lesion_id"], les["organ"]), "reader_n_voxels": m.n_voxels,
                      "reader_volume_ml": m.n_voxels * voxel_ml,
                      "reader_dice": 2.0 * float((truth_mask & mine).sum()) / (st["n_voxels"] + m.n_voxels)})
            names.append(f["roi_name"])
            masks.append(m)
            numbers.append(int(les["lesion_id"]))
        write_rtstruct(study_dir / f"901_{_folder(rt_h.series_description)}" / "RS-0901-0001.dcm", names, masks,
                       grid, pet_ds, pet_uids, patient, rt_h, acq.series + timedelta(days=2), numbers)
        rows.append({**common, "modality": "RTSTRUCT", "series_uid": rt_h.series_uid, "n_files": 1,
                     "referenced_series_uid": pet_h.series_uid})
    return rows, facts


def generate_patient(out: Path, row: dict, lesions: list[dict], ident: Identity, size: str, seed: int) -> dict:
    """Write one patient's two PET/CT sessions and return its truth rows (also kept as its completion marker), with
    ``generated`` and the size of its DICOM files (``n_bytes``).

    A marker made from the same inputs (clinical row, lesions, identity, size, seed) means the patient is done.
    """
    out = Path(out)
    cohort, subject = str(row["cohort"]), str(row["subject_id"])
    marker = out / "truth" / cohort / "done" / f"{subject}.json"
    patient_dir = out / "dicom" / cohort / ident.patient_id
    inputs = hashlib.sha256(json.dumps([row, lesions, asdict(ident), size, seed], default=str,
                                       sort_keys=True).encode()).hexdigest()
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("inputs") == inputs:
            return {**done, "generated": False, "n_bytes": _dicom_bytes(patient_dir)}
    if patient_dir.exists():  # leftovers of an interrupted run
        shutil.rmtree(patient_dir)
    body = make_body(float(row["height_cm"]), float(row["weight_kg"]))
    organs = [str(les["organ"]) for les in lesions]
    diameters = [float(les["diameter_mm"]) for les in lesions]
    centres = place_lesions(body, organs, diameters, patient_rng(seed, cohort, subject, "lesions"))
    position = patient_rng(seed, cohort, subject, "position")
    shifts = _shifts(position)
    pivot = np.array([0.0, 0.0, -0.5 * body.length_mm]) + shifts["FES"]  # mid-torso on the FES day
    motion = {"FDG": None, "FES": render.random_motion(pivot, position)}
    readers = reader_contours(lesions, patient_rng(seed, cohort, subject, "reader"))
    series: list[dict] = []
    facts = [dict(les) for les in lesions]
    for tracer in TRACERS:
        rows, per_lesion = _scan(patient_dir, tracer, row, lesions, centres, body, ident, SIZES[size], seed,
                                 shifts[tracer], motion[tracer], readers)
        series += rows
        for f, extra in zip(facts, per_lesion):
            f.update(extra)
    result = {"inputs": inputs, "series": series, "lesions": facts}
    write_json_atomic(result, marker, indent=None)
    return {**json.loads(marker.read_text()), "generated": True, "n_bytes": _dicom_bytes(patient_dir)}


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", double_precision=15))


def recovery(cohort: str, size: str) -> dict:
    """SUVmax recovery of the NEMA IEC spheres on this cohort's PET voxels at ``size``
    (:func:`sonimage.synth.psf.recovery_coefficients`): per scanner profile of its sites (``by_profile``), and at
    the top level the profile with the largest voxels (the lowest recovery); ``earl1_compliant`` holds only when
    every profile's images recover inside the EARL1 bands."""
    spec = SIZES[size]
    profiles = {SITE_PROFILES[s].name: SITE_PROFILES[s] for s in COHORT_SPECS[cohort].sites}
    by = {name: recovery_coefficients((p.slice_mm * spec.slice_factor, p.pixel_mm * spec.pixel_factor,
                                       p.pixel_mm * spec.pixel_factor), render.PSF_FWHM_MM)
          for name, p in sorted(profiles.items())}
    coarsest = max(by, key=lambda n: float(np.prod(by[n]["voxel_mm"])))
    return {"size": size, **by[coarsest], "scanner_psf_fwhm_mm": render.PSF_FWHM_MM,
            "earl1_compliant": all(r["earl1_compliant"] for r in by.values()), "profile": coarsest,
            "by_profile": by}


def _truth_json(cohort: str, tables_truth: dict, size: str, seed: int, outcome: dict) -> bytes:
    doc = {
        "cohort": cohort, "seed": seed, "size": size, "tables": tables_truth, "recovery": recovery(cohort, size),
        "heterogeneity_outcome": outcome,
        "images": {
            "psf_fwhm_mm": render.PSF_FWHM_MM, "noise_cov": render.NOISE_COV, "ct_noise_hu": render.CT_NOISE_HU,
            "size": asdict(SIZES[size]),
            "lesion_mask": "PET voxels whose centres lie within the sphere of the lesion's diameter "
                           "(the nearest voxel when none does); volume_ml = voxel count x voxel volume",
            "lesion_uptake": "SUVmax (fdg_suv, fes_suv = fes_true_suv) x profile: necrotic core (necrotic_core_"
                             "fraction of the radius at necrotic_core_uptake) x linear gradient (1 + gradient * "
                             "along/radius) / (1 + gradient) along gradient_x/y/z; <tracer>_true_suvmax/suvmean: the "
                             "profile's max and mean over the sphere (<= 1 mm sampling), before PSF and noise",
            "rendering": "both tracers alike (sonimage.synth.render.noise_free_image): organs as partial-volume "
                         "voxel means (3x3x3 sub-voxel points at tissue edges) with first moments, through the PSF "
                         "at voxel level (error < 5 % of an organ's contrast at its edge); each lesion's uptake "
                         "minus the tissue it displaces on a <= 1 mm grid, through the PSF and averaged into the "
                         "voxels exactly (sonimage.synth.psf.spread); then noise. <tracer>_expected_suvmax: the "
                         "noise-free image's max inside the true mask",
            "psf": "Gaussian, FWHM psf_fwhm_mm at full size (EARL1 recovery), widened per axis to sigma >= 0.5 "
                   "voxel at coarser sizes: see 'recovery'",
            "contours": "RTSTRUCT on the FDG PET drawn by a reader (reader, R1/R2/R3 with radius bias "
                        f"{READERS} mm, per-lesion radius error N(0, 1 mm), centre offset N(0, 1 mm) per axis): "
                        "sphere of reader_diameter_mm around the true centre + reader_offset; small and "
                        "FDG-negative lesions may be missed (reader_drawn false, no ROI); ROINumber = lesion_id, "
                        "ROIName L<lesion_id>_<organ>; reader_volume_ml and reader_dice against the true mask; "
                        "find_contours at level 0.5 of each slice's reader mask",
            "motion": "FES day: table shift (shift_*_mm) then rotation about mid-torso and a smooth displacement "
                      "field (series.parquet 'motion', JSON); fes_centre_* are the moved centres; the FES PET is "
                      "rendered from the moved geometry (shapes evaluated at the inverse-moved points), the CT "
                      "resampled through the motion (linear); FES truth statistics on the sphere around the moved "
                      "centre",
            "suv_factors": "per PET series, stored x RescaleSlope x factor = SUVbw; listed per slice in "
                           "InstanceNumber order (head first), identical except for DecayCorrection NONE",
            "sites": {site: p.name for site, p in SITE_PROFILES.items()},
        },
    }
    return json_bytes(doc, indent=2, sort_keys=True)


def _write_linking(out: Path, rows: list[dict]) -> None:
    path = out / "site-private" / "linking.csv"
    cohorts = {r["cohort"] for r in rows}
    kept = []
    if path.exists():
        with open(path, newline="") as fh:
            kept = [r for r in csv.DictReader(fh) if r["cohort"] not in cohorts]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["cohort", "PatientID", "subject_id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(kept + rows, key=lambda r: (r["cohort"], r["subject_id"])))
    write_private_atomic(path, buf.getvalue().encode())  # 0600 in a 0700 folder: it links pseudonyms to MRNs


def _prune(out: Path, cohort: str, ids: dict[str, Identity]) -> None:
    """Remove patients of an earlier run that are not in this one (their folders and completion markers)."""
    keep = {i.patient_id for i in ids.values()}
    for folder in (out / "dicom" / cohort).glob("*"):
        if folder.name not in keep:
            shutil.rmtree(folder)
    for marker in (out / "truth" / cohort / "done").glob("*.json"):
        if marker.stem not in ids:
            marker.unlink()


def _dicom_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)


# Per-lesion truth that needs the images (and the reader): joined into the feature-format truth table.
IMAGE_TRUTH = ("reader_drawn", "fdg_expected_suvmax", "fes_expected_suvmax")


def with_reading_truth(patients: pd.DataFrame, lesions: pd.DataFrame) -> pd.DataFrame:
    """The clinical truth (``patients``) with the patient truth over the lesions the reader drew (``drawn_*``, see
    :func:`sonimage.synth.tables.patient_truth`) and what the reader left out: ``undrawn_n_lesions``,
    ``undrawn_n_fes_evaluable``, ``undrawn_n_er_negative`` (FES-evaluable and ER-negative)."""
    subjects = list(patients["subject_id"])
    drawn = lesions["reader_drawn"].astype(bool)
    left = lesions[~drawn]
    undrawn = pd.DataFrame({
        "undrawn_n_lesions": left.groupby("subject_id").size(),
        "undrawn_n_fes_evaluable": left.groupby("subject_id")["fes_evaluable"].sum(),
        "undrawn_n_er_negative": (left["fes_evaluable"] & ~left["er_positive"]).groupby(left["subject_id"]).sum(),
    }).reindex(subjects).fillna(0).astype(int)
    extra = pd.concat([patient_truth(lesions[drawn], subjects, "drawn_"), undrawn], axis=1).reset_index(drop=True)
    return pd.concat([patients.reset_index(drop=True), extra], axis=1)


@dataclass(frozen=True)
class _Cohort:
    """One cohort's clinical tables, identities and patient jobs."""

    name: str
    tables: CohortTables
    ids: dict[str, Identity]
    jobs: list[tuple]


def _plan_cohort(out: Path, cohort: str, n: int | None, size: str, seed: int) -> _Cohort:
    """A cohort's tables and the :func:`generate_patient` jobs of its patients (leftovers of another run pruned)."""
    tables = simulate_cohort_tables(cohort, n, seed)
    pats = _records(tables.patients)
    subjects = [p["subject_id"] for p in pats]
    ids = make_identities(seed, cohort, subjects, [p["site"] for p in pats], [p["age"] for p in pats],
                          [p["sex"] for p in pats])
    by_subject = {s: _records(g) for s, g in tables.lesions.groupby("subject_id", sort=True)}
    _prune(out, cohort, ids)
    return _Cohort(cohort, tables, ids, [(out, p, by_subject.get(p["subject_id"], []), ids[p["subject_id"]], size,
                                          seed) for p in pats])


def _finish_cohort(out: Path, plan: _Cohort, results: list[dict], size: str, seed: int, outcome: dict
                   ) -> tuple[list[dict], dict[str, int]]:
    """A cohort's truth tables from its patients' ``results``; its linking rows and counts."""
    tables = plan.tables
    series = pd.DataFrame([r for res in results for r in res["series"]])
    lesions = pd.DataFrame([r for res in results for r in res["lesions"]])
    truth = out / "truth" / plan.name
    write_table(with_reading_truth(tables.patients, lesions), truth / "patients.parquet")
    write_table(lesions, truth / "lesions.parquet")
    write_table(series, truth / "series.parquet")
    image_truth = lesions[["subject_id", "lesion_id", *IMAGE_TRUTH]].rename(
        columns={"subject_id": "patient", "lesion_id": "lesion"})
    features = tables.lesion_table.drop(columns=list(IMAGE_TRUTH), errors="ignore").merge(
        image_truth, on=["patient", "lesion"], how="left")
    write_table(features, truth / "features" / "lesions.parquet")  # the feature stage's formats, true
    write_table(tables.patient_table, truth / "features" / "patients.parquet")
    write_bytes_atomic(truth / "truth.json", _truth_json(plan.name, tables.truth, size, seed, outcome))
    links = [{"cohort": plan.name, "PatientID": plan.ids[s].patient_id, "subject_id": s}
             for s in tables.patients["subject_id"]]
    counts = {"patients": len(results), "generated": sum(r["generated"] for r in results), "series": len(series),
              "lesions": len(lesions), "files": int(series["n_files"].sum()) if len(series) else 0,
              "bytes": sum(r["n_bytes"] for r in results)}
    return links, counts


def generate_study(out: Path, cohorts: tuple[str, ...] = COHORTS, n_patients: dict[str, int] | int | None = None,
                   size: str = "full", seed: int = 0, workers: Executor | None = None) -> StudySummary:
    """Generate ``cohorts`` under ``out`` (see the module docstring); ``workers`` fans patients out.

    ``n_patients``: per cohort (dict) or for all (int); None keeps each cohort's design size. Every cohort's
    patients go to ``workers`` at once, after each cohort's outcome truth (:func:`heterogeneity_outcome_truth`, a
    10,000-patient simulation): the workers run them side by side, none waits for a cohort's last patient.
    """
    out = Path(out)
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    unknown = set(cohorts) - set(COHORTS)
    if unknown:
        raise ValueError(f"unknown cohort(s) {sorted(unknown)} (expected {', '.join(COHORTS)})")
    plans = [_plan_cohort(out, c, n_patients.get(c) if isinstance(n_patients, dict) else n_patients, size, seed)
             for c in cohorts]
    outcomes = [None if workers is None else workers.submit(heterogeneity_outcome_truth, c) for c in cohorts]
    results = parallel_starmap(generate_patient, [job for plan in plans for job in plan.jobs], workers)
    links: list[dict] = []
    totals = {"patients": 0, "generated": 0, "series": 0, "lesions": 0, "files": 0, "bytes": 0}
    start = 0
    for plan, outcome in zip(plans, outcomes):
        mine, start = results[start:start + len(plan.jobs)], start + len(plan.jobs)
        truth = heterogeneity_outcome_truth(plan.name) if outcome is None else outcome.result()
        rows, counts = _finish_cohort(out, plan, mine, size, seed, truth)
        links += rows
        totals = {k: totals[k] + counts[k] for k in totals}
    _write_linking(out, links)
    return StudySummary(out, tuple(cohorts), totals["patients"], totals["generated"], totals["series"],
                        totals["files"], totals["lesions"], totals["bytes"])
