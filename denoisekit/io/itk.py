"""NIfTI, NRRD and MHA through SimpleITK, which owns their geometry conventions
(LPS in memory, RAS on disk for NIfTI), so our affine is SimpleITK's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.volume import Volume


def read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise DenoiseKitError(f"cannot read {path}: {first.strip()}") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DenoiseKitError(f"{path} has {image.GetNumberOfComponentsPerPixel()} values per voxel; CT has one")
    dim = image.GetDimension()
    if dim == 2:
        spacing = image.GetSpacing() + (1.0,)
        origin = image.GetOrigin() + (0.0,)
        d2 = image.GetDirection()
        direction = (d2[0], d2[1], 0.0, d2[2], d2[3], 0.0, 0.0, 0.0, 1.0)
        array = sitk.GetArrayFromImage(image)[None]
    elif dim == 3:
        spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
        array = sitk.GetArrayFromImage(image)
    else:
        raise DenoiseKitError(f"{path} is {dim}-D; denoisekit reads 2-D and 3-D images")
    return Volume(
        array=np.ascontiguousarray(array, dtype=np.float32),
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in direction),
        source=str(path),
    )


def to_itk(volume: Volume):
    """The volume as a float32 SimpleITK image with its geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(volume.array, dtype=np.float32))
    image.SetSpacing([float(v) for v in volume.spacing])
    image.SetOrigin([float(v) for v in volume.origin])
    image.SetDirection([float(v) for v in volume.direction])
    return image


#: NIfTI's ``descrip`` header field holds 80 bytes, the last a NUL.
DESCRIPTION_BYTES = 79


def write_itk(volume: Volume, path: Path, description: str = "") -> None:
    """Write ``volume`` to ``path`` (its suffix picks the format), compressed where the format
    allows; ``description`` (what was done) goes to NIfTI's ``descrip`` / NRRD's content notes,
    where viewers and ``fslhd`` show it, cut to ``DESCRIPTION_BYTES`` of UTF-8 (a file name in
    it may be in any script)."""
    import SimpleITK as sitk

    image = to_itk(volume)
    if description:
        text = description.encode("utf-8")[:DESCRIPTION_BYTES].decode("utf-8", "ignore")  # no half character
        image.SetMetaData("ITK_FileNotes", text)
    try:
        sitk.WriteImage(image, str(path), useCompression=not str(path).endswith(".nii"))
    except RuntimeError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise DenoiseKitError(f"cannot write {path.name}: {first.strip()}") from exc
