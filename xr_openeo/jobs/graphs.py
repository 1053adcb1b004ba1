"""Process graphs as a batch job runs them: parsed from any form, given a ``save_result``, keyed for reuse."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import openeo

#: Nodes that write a graph's result somewhere (a graph with one needs no added ``save_result``).
SAVING_PROCESSES = frozenset({"save_result", "save_ml_model"})
#: The processes that load the data a graph works on (and whose extents say what it covers).
LOADERS = ("load_collection", "load_stac")
DEFAULT_FORMAT = "GTiff"
DEFAULT_VECTOR_FORMAT = "GeoJSON"


def _graph_source(graph: Any) -> dict[str, Any]:
    """A process graph given as dict, JSON string or path to a JSON file, parsed (not yet validated)."""
    if isinstance(graph, Mapping):
        return dict(graph)
    if isinstance(graph, bytes):
        graph = graph.decode()
    if isinstance(graph, str) and graph.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(graph)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The process graph is not valid JSON: {exc}") from None
    elif isinstance(graph, str | os.PathLike):
        path = Path(graph)
        if not path.is_file():
            raise ValueError(
                f"Expected an openeo DataCube/VectorCube, a process graph dict, a JSON string or the path of a "
                f"JSON file; {str(graph)[:80]!r} is neither JSON nor an existing file"
            )
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"The process graph file {str(path)!r} is not valid JSON: {exc}") from None
    else:
        raise TypeError(
            "Expected an openeo DataCube/VectorCube, a process graph dict, a JSON string or the path of a "
            f"JSON file, got {type(graph).__name__}"
        )
    if not isinstance(parsed, dict):
        raise ValueError(f"A process graph must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _flat_nodes(graph: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The flat node dict of ``{"process": {"process_graph": …}}``, ``{"process_graph": …}`` or nodes."""
    g: Any = graph
    for key in ("process", "process_graph"):
        inner = g.get(key) if isinstance(g, Mapping) else None
        # A node may be *named* "process" or "process_graph": then it has a process_id.
        if isinstance(inner, Mapping) and "process_id" not in inner:
            g = inner
    if not isinstance(g, Mapping) or not g:
        raise ValueError("The process graph is empty")
    nodes: dict[str, dict[str, Any]] = {}
    for node_id, node in g.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("process_id"), str):
            raise ValueError(
                f"Process graph node {node_id!r} is not a node ({{'process_id': ..., 'arguments': {{...}}}}); "
                "pass a flat process graph, {'process_graph': {...}} or {'process': {'process_graph': {...}}}"
            )
        nodes[str(node_id)] = dict(node)
    return nodes


def _references(value: Any) -> Iterator[str]:
    """Node ids a node's arguments refer to with ``from_node`` (not inside child process graphs)."""
    if isinstance(value, Mapping):
        if set(value) == {"from_node"}:
            yield str(value["from_node"])
            return
        for key, item in value.items():
            if key == "process_graph" and isinstance(item, Mapping):
                continue  # a callback: its from_node refer to its own nodes
            yield from _references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _references(item)


def _result_node(nodes: Mapping[str, Mapping[str, Any]]) -> str:
    flagged = [n for n, node in nodes.items() if node.get("result") is True]
    if len(flagged) == 1:
        return flagged[0]
    if len(flagged) > 1:
        raise ValueError(f"The process graph has {len(flagged)} result nodes ({flagged}); exactly one is allowed")
    referenced = {ref for node in nodes.values() for ref in _references(node.get("arguments", {}))}
    leaves = [n for n in nodes if n not in referenced]
    if len(leaves) == 1:
        return leaves[0]
    raise ValueError(f"The process graph marks no node with 'result': true, and has {len(leaves)} leaf nodes {leaves}")


def _with_save_result(
    nodes: dict[str, dict[str, Any]], out_format: str | None, connection: Any
) -> dict[str, dict[str, Any]]:
    """``nodes`` with a ``save_result`` node consuming the result node, unless a saving node exists."""
    saving = {node.get("process_id") for node in nodes.values()} & SAVING_PROCESSES
    if saving:
        _check_format(nodes, out_format)
        return nodes
    fmt = out_format or DEFAULT_FORMAT
    _check_backend_format(connection, fmt)
    result = _result_node(nodes)
    out = {n: {k: v for k, v in node.items() if k != "result"} for n, node in nodes.items()}
    save_id, i = "saveresult1", 1
    while save_id in out:
        i += 1
        save_id = f"saveresult{i}"
    out[save_id] = {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": result}, "format": fmt, "options": {}},
        "result": True,
    }
    return out


def _check_format(nodes: Mapping[str, Mapping[str, Any]], out_format: str | None) -> None:
    if out_format is None:
        return
    formats = {
        str(node.get("arguments", {}).get("format", "")).lower()
        for node in nodes.values()
        if node.get("process_id") == "save_result"
    }
    if formats and out_format.lower() not in formats:
        raise ValueError(
            f"The process graph already saves its result as {sorted(formats)}, but out_format={out_format!r} was "
            "given: drop out_format, or change the graph's save_result node"
        )


def _check_backend_format(connection: Any, fmt: str) -> None:
    try:
        formats = set(connection.list_output_formats())
    except Exception:  # capabilities are a courtesy check; the backend will say it when creating the job
        return
    if formats and fmt.lower() not in {f.lower() for f in formats}:
        raise ValueError(f"The backend cannot write out_format={fmt!r}; it offers {sorted(formats)}")


def _is_cube(obj: Any) -> bool:
    return hasattr(obj, "flat_graph") and hasattr(obj, "result_node")


def prepare_process_graph(
    cube_or_graph: Any, *, connection: Any = None, out_format: str | None = None
) -> tuple[openeo.Connection, dict[str, dict[str, Any]]]:
    """The connection and the flat process graph a batch job for ``cube_or_graph`` would run.

    A ``save_result`` node (format ``out_format``, default ``GTiff`` for rasters, ``GeoJSON`` for vector
    cubes) is added when the graph has none. No job is created; the backend may be asked for its output
    formats, to refuse a format it cannot write. :func:`as_batch_job` submits exactly this graph, and
    :func:`find_reusable` compares against it.

    Parameters
    ----------
    cube_or_graph
        An ``openeo`` DataCube / VectorCube (or any client object with ``flat_graph()``), or a process
        graph: a dict (flat nodes, ``{"process_graph": …}`` or ``{"process": {"process_graph": …}}``), a
        JSON string or the path of a JSON file.
    connection
        The ``openeo.Connection`` to use; required for a process graph, optional for a cube (whose own
        connection it must then be).
    out_format
        Output format of the added ``save_result``; if the graph already saves, it must agree.

    Returns
    -------
    tuple
        ``(connection, flat_graph)``.
    """
    if _is_cube(cube_or_graph):
        own = getattr(cube_or_graph, "connection", None)
        if own is not None and connection is not None and connection is not own:
            raise ValueError(
                "connection= differs from the cube's own connection; build the cube on that connection, or drop "
                "connection="
            )
        conn = own if own is not None else connection
        if conn is None:
            raise ValueError(
                f"This {type(cube_or_graph).__name__} has no connection: pass connection=openeo.connect(url)"
            )
        nodes = _flat_nodes(cube_or_graph.flat_graph())
        has_save = bool({n.get("process_id") for n in nodes.values()} & SAVING_PROCESSES)
        save_result = getattr(cube_or_graph, "save_result", None)
        if has_save or save_result is None:
            return conn, _with_save_result(nodes, out_format, conn)
        default = DEFAULT_VECTOR_FORMAT if isinstance(cube_or_graph, openeo.VectorCube) else DEFAULT_FORMAT
        # The client's own save_result checks the format against the backend's output formats.
        return conn, _flat_nodes(save_result(format=out_format or default).flat_graph())
    nodes = _flat_nodes(_graph_source(cube_or_graph))
    if connection is None:
        raise ValueError(
            "A process graph needs a connection to run on: pass connection=openeo.connect(url) (authenticated), "
            "or build the graph as an openeo DataCube on that connection"
        )
    return connection, _with_save_result(nodes, out_format, connection)


def _canonical(value: Any, node_key: Callable[[str], str]) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"from_node"}:
            return {"from_node": node_key(str(value["from_node"]))}
        out = {}
        for key, item in value.items():
            if key == "process_graph" and isinstance(item, Mapping):
                out[key] = process_graph_key(item)  # a callback, compared as a graph of its own
            else:
                out[key] = _canonical(item, node_key)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(item, node_key) for item in value]
    return value


def process_graph_key(process_graph: Mapping[str, Any]) -> str:
    """A key equal for process graphs that compute the same thing, whatever their node ids.

    Node ids, node descriptions and node order do not matter; processes, namespaces, arguments and the
    way nodes feed each other (also inside callbacks) do. ``process_graph`` may be flat nodes,
    ``{"process_graph": …}`` or ``{"process": {"process_graph": …}}``.
    """
    nodes = _flat_nodes(process_graph)
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def node_key(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        if node_id not in nodes:
            raise ValueError(f"The process graph refers to a node {node_id!r} it does not have")
        if node_id in visiting:
            raise ValueError(f"The process graph has a cycle through node {node_id!r}")
        visiting.add(node_id)
        node = nodes[node_id]
        doc = {
            "process_id": node["process_id"],
            "namespace": node.get("namespace"),
            "arguments": _canonical(node.get("arguments", {}), node_key),
        }
        visiting.discard(node_id)
        keys[node_id] = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        return keys[node_id]

    referenced = {ref for node in nodes.values() for ref in _references(node.get("arguments", {}))}
    leaves = sorted(node_key(n) for n in nodes if n not in referenced)
    for n in nodes:
        node_key(n)
    result = node_key(_result_node(nodes))
    return hashlib.sha256(json.dumps({"result": result, "leaves": leaves}).encode()).hexdigest()


def loader_nodes(nodes: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The nodes of a flat process graph that load data (``load_collection``, ``load_stac``), in graph order."""
    return [n for n in nodes.values() if isinstance(n, Mapping) and n.get("process_id") in LOADERS]
