"""Every corpus entry: where its documents are served, the files it points to, and what opening it gives.

The shapes (and where they come from) are in each entry's ``NOTE.md``; the values in
:class:`~corpus.model.Cube`.
"""

from __future__ import annotations

from xr_openeo.errors import ResultsDocumentError

from .model import Cube, Entry, Expected, File, Window

USER = "YWxpY2U="
EXPIRES = "1767225600"


def sig(n: int) -> str:
    """The made-up signature segment the templates use (``sig`` of the generator)."""
    return f"{n:032x}"[-32:].replace("0", "a")


def job_paths(api: str, job: str) -> tuple[str, str, str, str]:
    """(results, assets, items, items11) path prefixes of a python-driver job."""
    results = f"{api}/jobs/{job}/results"
    return results, f"{results}/assets/{USER}", f"{results}/items/{USER}", f"{results}/items11/{USER}"


LEFT, RIGHT = Window(0, 0, 48, 32), Window(0, 32, 48, 32)


def stac10_gtiff() -> Entry:
    job = "j-25010314155443a9b2c4d6e8f0a1b2c3"
    results, assets, items, _ = job_paths("/openeo/1.2", job)
    names = ["openEO_2023-01-03Z.tif", "openEO_2023-01-08Z.tif", "openEO_20230113T104100Z.tif"]
    cube = Cube(("B04", "B08"), ("2023-01-03T00:00:00Z", "2023-01-08T00:00:00Z", "2023-01-13T10:41:00Z"))
    docs = {"results.json": results} | {f"items/{n}.json": f"{items}/{sig(0x10 + i)}/{n}" for i, n in enumerate(names)}
    files = tuple(File(f"{assets}/{sig(0xA0 + i)}/{n}", "geotiff", (i,)) for i, n in enumerate(names))
    expected = Expected("raster", cube.bands, (0, 1, 2), grid_in_metadata=True)
    return Entry("geopyspark-stac10-gtiff", cube, docs, files, expected, results)


def stac11_items() -> Entry:
    job = "j-2406101200003f0e9d8c7b6a5f4e3d2c"
    results, assets, _, items11 = job_paths("/openeo/1.2", job)
    uuids = ["3f0e4c1a-7b2d-4e8f-9a6c-1d2e3f4a5b6c", "5a5b12b6-08f1-4eb6-b226-7d548a5a3231"]
    days = ["2024-06-01", "2024-06-11"]
    ids = [f"{u}_{d}T00:00:00Z" for u, d in zip(uuids, days, strict=True)]
    cube = Cube(("B02", "B03", "B04"), tuple(f"{d}T00:00:00Z" for d in days), dtype="int16", nodata=-32768)
    docs = {"results.json": results} | {f"items/{i}.json": f"{items11}/{sig(0x20 + n)}/{i}" for n, i in enumerate(ids)}
    files = tuple(File(f"{assets}/{sig(0xA4 + n)}/openEO_{d}Z.tif", "geotiff", (n,)) for n, d in enumerate(days))
    expected = Expected("raster", cube.bands, (0, 1), grid_in_metadata=True)
    return Entry("geopyspark-stac11-items", cube, docs, files, expected, results)


def api10_item() -> Entry:
    results = "/openeo/1.0/jobs/j-2302011030007c6d5e4f3a2b1c0d9e8f/results"
    cube = Cube(("B04", "B08"), ("2023-02-01T00:00:00Z", "2023-02-06T00:00:00Z"), dtype="float32", nodata=float("nan"))
    files = tuple(
        File(f"{results}/assets/{n}", "geotiff", (i,))
        for i, n in enumerate(["openEO_2023-02-01Z.tif", "openEO_2023-02-06Z.tif"])
    )
    expected = Expected("raster", cube.bands, (0, 1), grid_in_metadata=True)
    return Entry("python-driver-api10-item", cube, {"results.json": results}, files, expected, results)


def model_rasters() -> Entry:
    job = "j-251013150338490a4a67ea6d24b7ca11"
    results, assets, items, _ = job_paths("/openeo/1.2", job)
    names = ["openEO_2025-09-01Z.tif", "openEO_2025-09-11Z.tif"]
    cube = Cube(("B04", "B08"), ("2025-09-01T00:00:00Z", "2025-09-11T00:00:00Z"))
    docs = {"results.json": results, "items/ml_model_metadata.json": f"{items}/{sig(0x3F)}/ml_model_metadata.json"}
    docs |= {f"items/{n}.json": f"{items}/{sig(0x30 + i)}/{n}" for i, n in enumerate(names)}
    files = tuple(File(f"{assets}/{sig(0xA0 + i)}/{n}", "geotiff", (i,)) for i, n in enumerate(names))
    files += (File(f"{assets}/{sig(0xAF)}/catboost_model.cbm.tar.gz", "bytes", size=8192),)
    expected = Expected("raster", cube.bands, (0, 1), grid_in_metadata=True, skipped=("catboost_model.cbm.tar.gz",))
    parse = {"model": "catboost_model.cbm.tar.gz"}
    return Entry("model-rasters", cube, docs, files, expected, results, parse=parse)


def model_table() -> Entry:
    results = "/openeo/1.1.0/jobs/53c71345-09b4-46b4-b6b0-03fd6fe1f199/results"
    cube = Cube(("S2-L2A-B04", "S2-L2A-B08"), ("2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z"))
    docs = {
        "results.json": results,
        "items/timeseries.csv.json": f"{results}/items/timeseries.csv",
        "items/ml_model_metadata.json": f"{results}/items/ml_model_metadata.json",
    }
    files = (
        File(f"{results}/assets/timeseries.csv", "timeseries-csv", (0, 1, 2)),
        File(f"{results}/assets/randomforest.model", "bytes", size=2048),
    )
    expected = Expected(
        "table", table_shape=(6, 2), table_columns=cube.bands, dates=(0, 1, 2), skipped=("randomforest.model",)
    )
    return Entry("model-table", cube, docs, files, expected, results, parse={"model": "randomforest.model"})


def gdalinfo_metadata() -> Entry:
    job = "j-2505011200009b8a7c6d5e4f3a2b1c0d"
    results, assets, _, items11 = job_paths("/openeo/1.2", job)
    uuids = ["7d3c2b1a-0f9e-4d8c-b7a6-958473625140", "8e4d3c2b-1a0f-4e9d-8c7b-a69584736251"]
    days = ["2025-05-01", "2025-05-06"]
    ids = [f"{u}_{d}T00:00:00Z" for u, d in zip(uuids, days, strict=True)]
    cube = Cube(("B04", "B08"), tuple(f"{d}T00:00:00Z" for d in days))
    docs = {"results.json": results} | {f"items/{i}.json": f"{items11}/{sig(0x40 + n)}/{i}" for n, i in enumerate(ids)}
    files: tuple[File, ...] = ()
    for n, d in enumerate(days):
        tif = f"{assets}/{sig(0xA0 + n)}/openEO_{d}Z.tif"
        files += (
            File(tif, "geotiff", (n,)),
            File(f"{assets}/{sig(0xA8 + n)}/openEO_{d}Z.tif_gdalinfo.json", "gdalinfo", of=tif),
        )
    skipped = tuple(f"{i}_openEO_{d}Z.tif_gdalinfo.json" for i, d in zip(ids, days, strict=True))
    expected = Expected("raster", cube.bands, (0, 1), grid_in_metadata=True, skipped=skipped)
    return Entry("gdalinfo-metadata", cube, docs, files, expected, results)


def tile_grid(name: str, job: str, days: list[str], style: str) -> Entry:
    results, assets, items, items11 = job_paths("/openeo/1.2", job)
    cube = Cube(("B04", "B08"), tuple(f"{d}T00:00:00Z" for d in days))
    docs = {"results.json": results}
    files: tuple[File, ...] = ()
    n = 0
    for i, d in enumerate(days):
        for tile, window in (("31UFS_0_0", LEFT), ("31UFS_0_1", RIGHT)):
            stem = f"openEO_{d}Z_{tile}"
            if style == "1.1":
                docs[f"items/{stem}.json"] = f"{items11}/{sig(0x50 + n)}/{stem}"
            else:
                docs[f"items/{stem}.tif.json"] = f"{items}/{sig(0x60 + n)}/{stem}.tif"
            files += (File(f"{assets}/{sig(0xA0 + n)}/{stem}.tif", "geotiff", (i,), window),)
            n += 1
    # Per-tile proj:* gives the mosaic's grid; the job's proj:* on every tile does not (headers are read).
    expected = Expected("raster", cube.bands, (0, 1), grid_in_metadata=style == "1.1")
    return Entry(name, cube, docs, files, expected, results)


def netcdf_per_feature() -> Entry:
    job = "j-2303011200005e6f7a8b9c0d1e2f3a4b"
    results, assets, items, _ = job_paths("/openeo/1.2", job)
    cube = Cube(
        ("B04", "B08"),
        ("2023-03-01T00:00:00Z", "2023-03-11T00:00:00Z", "2023-03-21T00:00:00Z"),
        dtype="int16",
        nodata=-1,
    )
    windows = {"openEO_0.nc": Window(4, 6, 16, 20), "openEO_1.nc": Window(24, 30, 20, 30)}
    docs = {"results.json": results} | {
        f"items/{f}.json": f"{items}/{sig(0x70 + n)}/{f}" for n, f in enumerate(windows)
    }
    files = tuple(
        File(f"{assets}/{sig(0xA0 + n)}/{f}", "netcdf", (0, 1, 2), w) for n, (f, w) in enumerate(windows.items())
    )
    expected = Expected("raster", cube.bands, (0, 1, 2), window=Window.union(list(windows.values())))
    return Entry("netcdf-per-feature", cube, docs, files, expected, results)


def disk_relative_links() -> Entry:
    names = ["openEO_2023-06-01Z.tif", "sub-folder/openEO_2023-06-04Z.tif", "sub-folder/openEO_2023-06-06Z.tif"]
    cube = Cube(("B04", "B03", "B02"), ("2023-06-01T00:00:00Z", "2023-06-04T00:00:00Z", "2023-06-06T00:00:00Z"))
    docs = {"collection.json": "collection.json"} | {f"{n}.json": f"{n}.json" for n in names}
    files = tuple(File(n, "geotiff", (i,)) for i, n in enumerate(names))
    expected = Expected("raster", cube.bands, (0, 1, 2))
    return Entry("disk-relative-links", cube, docs, files, expected, "collection.json", on_disk=True)


def sentinelhub_item() -> Entry:
    results = "/production/jobs/e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b/results"
    folder = "/com.sinergise.openeo.results/9b8c7d6e-5f4a-4b3c-2d1e-0f9a8b7c6d5e/8f2c"
    cube = Cube(("B04", "B08"), ("2023-04-03T10:30:21.024Z", "2023-04-08T10:30:19.562Z"), dtype="float32", nodata=None)
    files = (
        File(f"{folder}/default.tif", "geotiff-stack", (0, 1), descriptions=False),
        File(f"{folder}/userdata.json", "sh-userdata", (0, 1)),
        File(f"{folder}/output_2023-04-03T10:30:21.024Z.tif", "geotiff", (0,), descriptions=False),
        File(f"{folder}/output_2023-04-08T10:30:19.562Z.tif", "geotiff", (1,), descriptions=False),
    )
    key = folder.split("/", 2)[2]
    expected = Expected("raster", ("band_1", "band_2"), (0, 1), skipped=(f"{key}/default.tif", f"{key}/userdata.json"))
    parse = {"bands_in_document": False}
    return Entry("sentinelhub-item", cube, {"results.json": results}, files, expected, results, parse=parse)


def dev_netcdf() -> Entry:
    results = "/openeo/1.2/jobs/j-2411201530006f7a8b9c0d1e2f3a4b5c/results"
    cube = Cube(("B02", "B03"), ("2024-11-01T00:00:00Z", "2024-11-11T00:00:00Z"), dtype="float32", nodata=float("nan"))
    docs = {"results.json": results, "items/openEO.nc.json": f"{results}/items/openEO.nc"}
    files = (File(f"{results}/assets/openEO.nc", "netcdf", (0, 1)),)
    expected = Expected("raster", cube.bands, (0, 1))
    return Entry("geopyspark-dev-netcdf", cube, docs, files, expected, results)


def json_timeseries() -> Entry:
    job = "j-2309011200007a8b9c0d1e2f3a4b5c6d"
    results, assets, _, _ = job_paths("/openeo/1.2", job)
    cube = Cube(("B04", "B08"), ("2023-09-01T00:00:00Z", "2023-09-06T00:00:00Z", "2023-09-11T00:00:00Z"))
    files = (File(f"{assets}/{sig(0xA0)}/timeseries.json", "timeseries-json", (0, 1, 2)),)
    expected = Expected("table", table_shape=(6, 2), table_columns=cube.bands, dates=(0, 1, 2))
    return Entry("json-timeseries", cube, {"results.json": results}, files, expected, results)


def api_example() -> Entry:
    dl = "/api/v1/download/583fba8b2ce583fba8b2ce"
    cube = Cube(("NDVI",), ("2019-08-24T14:15:22Z",), dtype="float32", nodata=float("nan"))
    docs = {
        "results.json": f"{dl}/results",
        "items/item_1.json": f"{dl}/item_1.json",
        "items/item_2.json": f"{dl}/item_2.json",
    }
    files = (
        File(f"{dl}/1.tif", "geotiff", (0,), LEFT),
        File(f"{dl}/2.tif", "geotiff", (0,), RIGHT),
        File(f"{dl}/preview.png", "bytes", size=512),
        File(f"{dl}/process.json", "process-json"),
        File(f"{dl}/inspire.xml", "bytes", size=256),
    )
    expected = Expected("raster", cube.bands, (0,), skipped=("preview.png", "process.json", "inspire.xml"))
    parse = {"bands_in_document": False}
    return Entry("openeo-api-example", cube, docs, files, expected, f"{dl}/results", parse=parse)


def not_results(name: str, template: str, path: str, message: str) -> Entry:
    cube = Cube(("B04",), ("2023-01-01T00:00:00Z",))
    expected = Expected("error", error=ResultsDocumentError, message=message)
    return Entry(name, cube, {template: path}, (), expected, path)


ENTRIES: tuple[Entry, ...] = (
    stac10_gtiff(),
    stac11_items(),
    api10_item(),
    model_rasters(),
    model_table(),
    gdalinfo_metadata(),
    tile_grid("tile-grid-per-tile", "j-2507011200001a2b3c4d5e6f7a8b9c0d", ["2025-07-01", "2025-07-06"], "1.1"),
    tile_grid("tile-grid-job-proj", "j-2403051200004d5e6f7a8b9c0d1e2f3a", ["2024-03-05", "2024-03-10"], "1.0"),
    netcdf_per_feature(),
    disk_relative_links(),
    sentinelhub_item(),
    dev_netcdf(),
    json_timeseries(),
    api_example(),
    not_results(
        "job-document",
        "job.json",
        "/openeo/1.2/jobs/j-2501031415544300000000000000abcd",
        "/openeo/1.2/jobs/j-2501031415544300000000000000abcd/results",
    ),
    not_results("capabilities", "capabilities.json", "/openeo/1.2", "/openeo/1.2/jobs/<job id>/results"),
)
BY_NAME = {e.name: e for e in ENTRIES}
