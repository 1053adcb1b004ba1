"""Every corpus document parses (parse_results, parse_item, merge_items, select) into the expected specs.

Pure: the documents are rendered for a server address that is never contacted, and item links are
followed through the entry's own templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from corpus import BY_NAME, ENTRIES, Entry, Window
from corpus.files import transform

from xr_openeo.errors import ResultsDocumentError
from xr_openeo.results import (
    AssetSpec,
    Grid,
    ResultsInfo,
    merge_items,
    parse_item,
    parse_results,
    select,
    with_file_name_times,
)

ADDRESS = "http://127.0.0.1:9"  # never contacted
DISK = Path("/data/results")  # an entry on disk, as if it were there
OPENS = [e for e in ENTRIES if e.expected.front != "error"]


def render(entry: Entry) -> dict[str, tuple[str, Any]]:
    """Document URL (or path, on disk) -> (template name, parsed JSON)."""
    out = {}
    for template, path in entry.documents.items():
        where = str(DISK / path) if entry.on_disk else f"{ADDRESS}{path}"
        out[where] = (template, json.loads(entry.template(template).replace("{root}", ADDRESS)))
    return out


def results_url(entry: Entry) -> str:
    return str(DISK / entry.results_path) if entry.on_disk else f"{ADDRESS}{entry.results_path}"


def opened(entry: Entry) -> tuple[ResultsInfo, tuple[AssetSpec, ...]]:
    """What the opener does before reading: parse, follow item links, merge, date from file names."""
    docs = render(entry)
    url = results_url(entry)
    info = parse_results(docs[url][1], base_url=url)
    items = []
    for link in info.item_links:
        where = link if entry.on_disk else link.split("?")[0]
        assert where in docs, f"{entry.name}: the item link {link} leads to no document of the entry"
        items.append(parse_item(docs[where][1], base_url=link))
    return info, with_file_name_times(merge_items(info.assets, items))


def file_path(entry: Entry, spec: AssetSpec) -> str:
    """The entry's file an asset's href points to (its path, signatures dropped)."""
    if entry.on_disk:
        return str(Path(spec.href).relative_to(DISK))
    assert spec.href.startswith(ADDRESS), spec.href
    return urlsplit(spec.href).path


def purpose(entry: Entry) -> str:
    return "table" if entry.expected.front == "table" else "raster"


@pytest.mark.parametrize("entry", OPENS, ids=lambda e: e.name)
def test_every_document_parses(entry: Entry) -> None:
    info, specs = opened(entry)
    assert info.status == "finished"
    assert len({s.key for s in specs}) == len(specs)
    files = {f.path for f in entry.files}
    for spec in specs:  # every asset points at a file of the entry (relative hrefs resolved)
        assert file_path(entry, spec) in files, (spec.key, spec.href)
    assert all(s.problem is None for s in specs)


@pytest.mark.parametrize("entry", OPENS, ids=lambda e: e.name)
def test_selection_chooses_the_data_and_says_why_it_skips_the_rest(entry: Entry) -> None:
    _, specs = opened(entry)
    selection = select(specs, None, purpose=purpose(entry))  # type: ignore[arg-type]
    data_files = [f for f in entry.files if f.kind in DATA_KINDS[purpose(entry)]]
    assert sorted(file_path(entry, s) for s in selection.chosen) == sorted(f.path for f in data_files)
    assert set(selection.skipped) == set(entry.expected.skipped)
    assert all(selection.skipped.values())
    assert {s.key for s in selection.chosen}.isdisjoint(selection.skipped)


DATA_KINDS = {"raster": {"geotiff", "netcdf"}, "table": {"timeseries-json", "timeseries-csv"}}


@pytest.mark.parametrize("entry", [e for e in OPENS if e.expected.front == "raster"], ids=lambda e: e.name)
def test_dates_bands_and_grids(entry: Entry) -> None:
    _, specs = opened(entry)
    cube = entry.cube
    chosen = select(specs, None, purpose="raster").chosen
    by_file = {f.path: f for f in entry.files}
    for spec in chosen:
        file = by_file[file_path(entry, spec)]
        if file.kind == "geotiff":
            (date,) = file.dates
            assert spec.time == np.datetime64(cube.dates[date].rstrip("Z"), "ns"), spec.key
        else:  # netCDF: the item's span, the dates are inside the file
            assert spec.time is None and spec.start is not None and spec.end is not None
        # band names from the document, or none there (the file's descriptions, else band_N, name them)
        assert spec.bands == (entry.expected.variables if entry.parse.get("bands_in_document", True) else ())
        if entry.expected.grid_in_metadata:
            assert spec.grid == grid_of(entry, file.window), spec.key


def grid_of(entry: Entry, window: Window | None) -> Grid:
    a, b, c, d, e, f = tuple(transform(entry.cube, window))[:6]
    w = window or Window(0, 0, *entry.cube.shape)
    return Grid(f"EPSG:{entry.cube.epsg}", (w.rows, w.cols), (a, b, c, d, e, f))


def test_tile_grid_with_the_jobs_proj_gives_every_tile_the_whole_grid() -> None:
    """Parsing reports what the document says; the reader must not trust it (several files, one date, one grid)."""
    entry = BY_NAME["tile-grid-job-proj"]
    _, specs = opened(entry)
    whole = grid_of(entry, None)
    assert [s.grid for s in specs] == [whole] * 4
    assert len({s.time for s in specs}) == 2


@pytest.mark.parametrize("name", ["model-rasters", "model-table"])
def test_model_items_parse_with_their_far_future_end(name: str) -> None:
    entry = BY_NAME[name]
    _, specs = opened(entry)
    (model,) = [s for s in specs if s.key == entry.parse["model"]]
    assert model.is_model and model.media_type == "application/octet-stream"
    assert model.roles == ("data", "ml-model:checkpoint")  # the collection's, plus the item's
    assert model.interval == ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
    assert model.start == np.datetime64("1970-01-01", "ns") and model.end is None and model.time is None
    assert model.item_id is not None and model.item_id.startswith(("cb-", "ml-"))
    for wanted in (None, "geotiff", "csv"):
        if wanted is None or any(s.format == wanted for s in specs):
            chosen = select(specs, wanted, purpose=purpose(entry)).chosen  # type: ignore[arg-type]
            assert model not in chosen
    assert "machine-learning model" in select(specs, None, purpose="raster").skipped[model.key]


def test_sentinel_hub_file_names_decide_t_not_the_request_time() -> None:
    entry = BY_NAME["sentinelhub-item"]
    info, specs = opened(entry)
    assert info.kind == "item" and info.stac_version == "1.0.0"
    times = {s.filename: s.time for s in specs}
    assert times["output_2023-04-03T10:30:21.024Z.tif"] == np.datetime64("2023-04-03T10:30:21.024", "ns")
    assert times["output_2023-04-08T10:30:19.562Z.tif"] == np.datetime64("2023-04-08T10:30:19.562", "ns")
    assert times["default.tif"] is None  # no date of its own: the Item's is the time of the request
    assert times["userdata.json"] == np.datetime64("2024-05-02T10:11:12", "ns")  # not a GeoTIFF: the Item's
    selection = select(specs, None, purpose="raster")
    default = next(s.key for s in specs if s.filename == "default.tif")
    assert "no date" in selection.skipped[default]
    assert select(specs, default, purpose="raster").chosen == (next(s for s in specs if s.key == default),)
    assert "X-Amz-Signature" in specs[0].href  # hrefs keep their presigned query for reading


def test_api_example_skips_thumbnail_process_and_metadata() -> None:
    _, specs = opened(BY_NAME["openeo-api-example"])
    selection = select(specs, None, purpose="raster")
    assert selection.skipped == {
        "preview.png": "role thumbnail",
        "process.json": "roles process, reproduction",
        "inspire.xml": "role metadata",
    }
    assert [s.time for s in selection.chosen] == [np.datetime64("2019-08-24T14:15:22", "ns")] * 2
    assert all(s.grid is None for s in selection.chosen)  # no proj:*: the headers give the grid


def test_time_series_point_tables_at_open_dataframe() -> None:
    _, specs = opened(BY_NAME["json-timeseries"])
    (ts,) = specs
    assert ts.grid is None  # the job's proj:* on a table is no grid
    assert ts.bands == ("B04", "B08")
    assert select(specs, None, purpose="table").chosen == (ts,)
    assert select(specs, None, purpose="raster").chosen == (ts,)  # JSON: its content decides
    _, csv_specs = opened(BY_NAME["model-table"])
    rasters = select(csv_specs, None, purpose="raster")
    assert rasters.chosen == ()
    assert rasters.other_purpose == ("timeseries.csv",)
    assert "xr_openeo.open_dataframe" in rasters.skipped["timeseries.csv"]


def test_disk_entry_resolves_every_href_against_its_own_document() -> None:
    entry = BY_NAME["disk-relative-links"]
    info, specs = opened(entry)
    assert info.item_links == tuple(str(DISK / f"{f.path}.json") for f in entry.files)
    assert [s.href for s in specs] == [str(DISK / f.path) for f in entry.files]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.expected.front == "error"], ids=lambda e: e.name)
def test_not_results_documents_say_what_to_pass(entry: Entry) -> None:
    ((url, (_, doc)),) = render(entry).items()
    with pytest.raises(ResultsDocumentError) as info:
        parse_results(doc, base_url=url)
    assert f"{ADDRESS}{entry.expected.message}" in str(info.value)
    assert info.value.field == "type"
    assert "must be 'Collection'" not in str(info.value)


def test_every_entry_cites_its_source() -> None:
    for entry in ENTRIES:
        note = entry.note()
        assert note.startswith("# ") and ("Open-EO/" in note or "openapi" in note or "API 1.2" in note), entry.name
