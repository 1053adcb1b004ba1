"""Checks on a process graph before it runs, and the implicit ``save_result`` of synchronous requests.

Pure functions over the JSON of a flat process graph (``{node_id: {"process_id", "arguments", "result"}}``),
with callbacks (``{"process_graph": {...}}`` inside arguments) checked the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

IMPLICIT_FORMAT = "<implicit>"
"""The ``format`` of a ``save_result`` the backend added: the writer picks GTiff or JSON by the data."""


class GraphError(ValueError):
    """A process graph the backend refuses before running it, with the openEO error it answers."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_graph(
    process_graph: Any, *, processes: Collection[str], collections: Collection[str], where: str = "process graph"
) -> None:
    """Refuse a graph that cannot run: its structure, unknown processes, unknown collections.

    Parameters
    ----------
    process_graph
        The flat graph (the ``process_graph`` object of a request's ``process``).
    processes
        Ids of the processes the backend offers.
    collections
        Ids of the collections it serves (checked where ``load_collection`` names one literally).
    where
        How messages name this graph (callbacks say which node and argument they belong to).

    Raises
    ------
    GraphError
        400 ``ProcessGraphInvalid`` (not an object, a node without ``process_id``, arguments that are
        not an object, not exactly one result node, a ``from_node`` naming no node), 400
        ``ProcessUnsupported`` (a process the backend does not offer) or 404 ``CollectionNotFound``.
    """
    if not isinstance(process_graph, dict) or not process_graph:
        raise GraphError(400, "ProcessGraphInvalid", f"The {where} must be a non-empty object of nodes")
    results = []
    for node_id, node in process_graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("process_id"), str):
            raise GraphError(400, "ProcessGraphInvalid", f"Node {node_id!r} of the {where} has no 'process_id'")
        arguments = node.get("arguments", {})
        if not isinstance(arguments, dict):
            raise GraphError(400, "ProcessGraphInvalid", f"The arguments of node {node_id!r} must be an object")
        process_id = node["process_id"]
        if process_id not in processes:
            raise GraphError(
                400,
                "ProcessUnsupported",
                f"Process {process_id!r} (node {node_id!r}) is not available; GET /processes lists those that are",
            )
        if node.get("result") is True:
            results.append(node_id)
        for ref in _from_nodes(arguments):
            if ref not in process_graph:
                raise GraphError(
                    400, "ProcessGraphInvalid", f"Node {node_id!r} takes 'from_node' {ref!r}, which is no node"
                )
        for name, callback in _callbacks(arguments):
            check_graph(
                callback,
                processes=processes,
                collections=collections,
                where=f"callback {name!r} of node {node_id!r}",
            )
        collection = arguments.get("id")
        if process_id == "load_collection" and isinstance(collection, str) and collection not in collections:
            raise GraphError(
                404,
                "CollectionNotFound",
                f"Collection {collection!r} does not exist; available: {', '.join(sorted(collections))}",
            )
    if len(results) != 1:
        raise GraphError(
            400,
            "ProcessGraphInvalid",
            f'The {where} must have exactly one node with "result": true, it has {len(results)}',
        )


def with_save_result(process_graph: dict[str, Any]) -> dict[str, Any]:
    """The graph itself if it saves its result; else a copy that saves it with :data:`IMPLICIT_FORMAT`.

    Synchronous processing, as openeo-python-driver does it, saves a result the graph leaves unsaved:
    a raster cube as GTiff, a vector cube (``aggregate_spatial``) as JSON. The graph must have passed
    :func:`check_graph`.
    """
    if any(node["process_id"] == "save_result" for node in process_graph.values()):
        return process_graph
    result_id = next(node_id for node_id, node in process_graph.items() if node.get("result") is True)
    save_id = _free_id(process_graph, "saveresult")
    graph = {node_id: dict(node) for node_id, node in process_graph.items()}
    graph[result_id].pop("result")
    graph[save_id] = {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": result_id}, "format": IMPLICIT_FORMAT},
        "result": True,
    }
    return graph


def _free_id(graph: dict[str, Any], stem: str) -> str:
    n = 1
    while f"{stem}{n}" in graph:
        n += 1
    return f"{stem}{n}"


def _from_nodes(value: Any) -> Iterator[str]:
    """``from_node`` references in an argument value, not descending into callbacks."""
    if isinstance(value, dict):
        if "process_graph" in value:
            return
        if set(value) == {"from_node"}:
            yield str(value["from_node"])
            return
        for item in value.values():
            yield from _from_nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _from_nodes(item)


def _callbacks(arguments: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(argument name, callback graph)`` of every ``{"process_graph": ...}`` among the arguments."""

    def walk(name: str, value: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict):
            if "process_graph" in value:
                yield name, value["process_graph"]
                return
            for item in value.values():
                yield from walk(name, item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(name, item)

    for name, value in arguments.items():
        yield from walk(name, value)
