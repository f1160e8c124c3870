"""`sonimage features` end to end on real PET: DICOM + RTSTRUCT, NIfTI, Zarr + SEG, all 51 IBSI lesions, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from sonimage.cli import main
from sonimage.features.table import read_dictionary
from sonimage.stages.inputs import read_image
from sonimage.volumes.store import write_volume
from sonimage.volumes.volume import Volume
from tests.helpers import require
from tests.lesions.test_masks import write_seg

FAST = ["--families", "morphology", "local_intensity", "statistics", "histogram", "ivh", "pet", "glcm"]


def test_dicom_rtstruct_every_roi_one_row(shared_data, tmp_path):
    folder = require(shared_data / "sts-001-fdg-pet")
    out = tmp_path / "sts001.parquet"
    code = main(["features", "--image", str(folder / "dicom"), "--mask", str(folder / "rtstruct" / "1-1.dcm"),
                 "--bin-width", "0.5", "--sul-ratio", "0.75", "--id", "patient=P001", "--id", "tracer=FDG",
                 "--out", str(out)])
    assert code == 0
    table = pd.read_parquet(out).set_index("roi")
    assert list(table.index) == ["GTV_Mass", "GTV_Edema"]
    mass = table.loc["GTV_Mass"]
    assert mass["patient"] == "P001" and mass["voxels"] == 5095
    assert mass["pet_suvmax__84iy"] == pytest.approx(7.91, abs=0.005)
    assert mass["pet_mtv_ml"] == pytest.approx(mass["morphology_volume_voxel_counting__yekz"] / 1000)
    assert mass["setting_bin_width"] == 0.5
    assert mass["sul_ratio"] == 0.75
    assert mass["pet_sulmax__84iy"] == pytest.approx(0.75 * mass["pet_suvmax__84iy"])
    assert mass["pet_tlg_sul"] == pytest.approx(0.75 * mass["pet_tlg_suv"])
    dictionary = read_dictionary(out).set_index("column")
    assert dictionary.loc["glcm_joint_maximum__gyby__3d_avg", "code"] == "GYBY"
    assert {"glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm"} <= set(dictionary.family)


def test_nifti_and_dicom_inputs_give_the_same_row(shared_data, tmp_path):
    case = require(shared_data / "ibsi-sts-pet" / "STS_002" / "PET")
    nifti = require(shared_data / "ibsi-sts-pet-nifti" / "STS_002")
    a, b = tmp_path / "dicom.csv", tmp_path / "nifti.csv"
    assert main(["features", "--image", str(case / "image"), "--mask", str(case / "mask" / "RS.dcm"),
                 "--bin-count", "32", *FAST, "--out", str(a)]) == 0
    assert main(["features", "--image", str(nifti / "PET_image.nii.gz"), "--mask", str(nifti / "PET_mask.nii.gz"),
                 "--bin-count", "32", *FAST, "--out", str(b)]) == 0
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    values = [c for c in ta.columns if "__" in c or c.startswith("pet_")]
    assert len(values) > 100
    np.testing.assert_allclose(ta[values].to_numpy(float), tb[values].to_numpy(float), rtol=1e-4, atol=1e-5)


def test_zarr_store_and_seg(shared_data, tmp_path):
    nifti = require(shared_data / "ibsi-sts-pet-nifti" / "STS_008")
    image = read_image(nifti / "PET_image.nii.gz")
    store = write_volume(image, tmp_path / "pet.zarr", "suv")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti / "PET_mask.nii.gz"))) > 0
    write_seg(tmp_path / "seg.dcm", image, {1: mask})
    out = tmp_path / "seg.csv"
    assert main(["features", "--image", str(store), "--mask", str(tmp_path / "seg.dcm"), "--bin-width", "0.5",
                 "--families", "pet", "statistics", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["roi"] == "lesion 1" and row["voxels"] == mask.sum() == 388
    assert row["pet_suvmax__84iy"] == pytest.approx(float(image.array[mask].max()), rel=1e-6)


@pytest.mark.slow  # features of all 51 IBSI STS lesions (~45 s)
def test_all_51_ibsi_lesions(shared_data, tmp_path):
    """Every real IBSI STS lesion (RTSTRUCT on the NIfTI PET grid) gives a complete row."""
    root = require(shared_data / "ibsi-sts-pet")
    rows = []
    for n in range(1, 52):
        case = f"STS_{n:03d}"
        out = tmp_path / f"{case}.parquet"
        assert main(["features", "--image", str(shared_data / "ibsi-sts-pet-nifti" / case / "PET_image.nii.gz"),
                     "--mask", str(root / case / "PET" / "mask" / "RS.dcm"), "--bin-width", "0.5",
                     "--id", f"case={case}", "--out", str(out)]) == 0
        rows.append(pd.read_parquet(out))
    table = pd.concat(rows, ignore_index=True)
    assert len(table) == 51 and (table["error"] == "").all()
    assert table.loc[0, "voxels"] == 5095
    assert table.filter(like="pet_").notna().all().all()


def _nifti(path, array, like: Volume):
    sitk.WriteImage(Volume(array, like.spacing, like.origin).to_sitk(), str(path))
    return str(path)


def test_bad_lesions_get_error_rows_not_a_crash(tmp_path, capsys):
    rng = np.random.default_rng(7)
    base = Volume(rng.gamma(2.0, 1.0, (10, 12, 12)).astype(np.float32), (3.0, 4.0, 4.0))
    image = base.array.copy()
    image[5, 5, 5] = np.nan
    img = _nifti(tmp_path / "img.mha", image, base)  # NIfTI through ITK reads NaN as 0
    labels = np.zeros(base.array.shape, np.uint8)
    labels[2:4, 2:4, 2:4] = 1  # fine
    labels[5, 5, 4:7] = 2  # holds the NaN voxel
    labels[8, 8, 8] = 3  # one voxel
    msk = _nifti(tmp_path / "labels.nii.gz", labels, base)
    small = _nifti(tmp_path / "small.nii.gz", labels[:, :, :-1], base)
    results = {}
    for label, mask in (("1", msk), ("2", msk), ("3", msk), ("4", msk), ("1", small)):
        out = tmp_path / f"out{label}{'s' if mask == small else ''}.csv"
        results[(label, mask == small)] = main(["features", "--image", img, "--mask", mask, "--label", label,
                                                "--bin-width", "0.5", "--out", str(out)]), pd.read_csv(out).iloc[0]
    assert results[("1", False)][0] == 0 and pd.isna(results[("1", False)][1]["error"])
    code, row = results[("2", False)]
    assert code == 1 and "1 of 3 lesion voxels are NaN" in row["error"]
    code, row = results[("3", False)]
    assert code == 0 and row["voxels"] == 1 and "single voxel" in row["nan_reasons"]
    assert results[("4", False)][0] == 1 and "empty mask" in results[("4", False)][1]["error"]
    code, row = results[("1", True)]
    assert code == 1 and "not on the image grid (shape" in row["error"]
    assert "lesion 'label 1'" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path):
    assert main(["features", "--image", str(tmp_path / "none.nii.gz"), "--mask", str(tmp_path / "m.nii.gz"),
                 "--out", str(tmp_path / "x.parquet")]) == 2
    assert main(["features", "--image", "a", "--mask", "b", "--bin-lower-bound", "0", "--out", "x.csv"]) == 2
    assert main(["features", "--image", "a", "--mask", "b", "--out", "x.xlsx"]) == 2


def test_label_store_rows_by_roi_name(shared_data, tmp_path):
    """A sonimage label store (every RTSTRUCT ROI rasterised) gives one row per recorded ROI, by name."""
    from sonimage.dicom.rtstruct import rtstruct_labels

    folder = require(shared_data / "sts-001-fdg-pet")
    image = read_image(folder / "dicom")
    labels = rtstruct_labels(folder / "rtstruct" / "1-1.dcm", image).volume
    store = write_volume(labels, tmp_path / "labels.zarr", "label")
    out = tmp_path / "rows.csv"
    assert main(["features", "--image", str(folder / "dicom"), "--mask", str(store), "--families", "pet",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("roi")
    assert list(table.index) == ["GTV_Mass", "GTV_Edema"]
    assert table.loc["GTV_Mass", "voxels"] == 5095
    assert table.loc["GTV_Mass", "pet_suvmax__84iy"] == pytest.approx(7.91, abs=0.005)
    assert main(["features", "--image", str(folder / "dicom"), "--mask", str(store), "--roi", "Liver",
                 "--families", "pet", "--out", str(out)]) == 1
    assert "no ROI named 'Liver' in the label store" in pd.read_csv(out).loc[0, "error"]


def test_ibsi_processing_options_reproduce_ct_phantom_configuration_c(shared_data, tmp_path):
    """`--voxel-size 2 --round-intensities --resegment -1000 400 --bin-width 25 --ivh-bin-width 2.5` is IBSI
    configuration C: three of its reference values (IBSI 1 manual) and the settings recorded in the row."""
    folder = require(shared_data / "ibsi-2" / "ibsi_2_ct_radiomics_phantom" / "nifti")
    out = tmp_path / "ct.csv"
    assert main(["features", "--image", str(folder / "image" / "phantom.nii.gz"), "--mask",
                 str(folder / "mask" / "mask.nii.gz"), "--families", "morphology", "statistics", "ivh",
                 "--voxel-size", "2", "--round-intensities", "--resegment", "-1000", "400", "--bin-width", "25",
                 "--ivh-bin-width", "2.5", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["morphology_volume_voxel_counting__yekz"] == pytest.approx(368000, abs=6000)
    assert row["statistics_mean_intensity__q4le"] == pytest.approx(-49, abs=2.9)
    assert row["ivh_intensity_at_10pct_volume_fraction__gbpn"] == pytest.approx(88.8, abs=0.2)
    assert (row["setting_voxel_size"], row["setting_resegment_min"], row["setting_interpolation"]) == (2.0, -1000.0,
                                                                                                         "linear")
