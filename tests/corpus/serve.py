"""Serve a corpus entry on 127.0.0.1 (port 0): its documents, with the server's address filled in, and real files.

Every request is logged (``xr_openeo.testing``'s request log); files support ``Range`` and ``HEAD``.
Query strings (signatures, ``expires``) are accepted and ignored, as a signing backend's would be
for valid ones.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.utils import send_file
from werkzeug.wrappers import Response

from xr_openeo.testing.requestlog import RecordingMiddleware, RequestLog, RequestRecord

from .files import write
from .model import Entry

INDEX = "_index"  # a document served at a path that is also a folder (…/results and …/results/assets/…)


def materialize(entry: Entry, root: Path, address: str = "") -> None:
    """Write ``entry``'s documents (``{root}`` replaced by ``address``) and files under the folder ``root``.

    Served entries put a document at ``root/<path>/_index`` and a file at ``root/<path>``; an entry
    on disk puts both at ``root/<path>``.
    """
    for template, path in entry.documents.items():
        target = root / path.lstrip("/")
        if not entry.on_disk:
            target = target / INDEX
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry.template(template).replace("{root}", address))
    for file in entry.files:
        write(entry.cube, file, root / file.path.lstrip("/"))


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class CorpusServer:
    """A static server of one folder, with a request log. Use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = RequestLog()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CorpusServer:
        app = RecordingMiddleware(self._app, self.log, lambda path: 0.0)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def requests(self) -> list[RequestRecord]:
        return self.log.records()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        relative = environ.get("PATH_INFO", "/").lstrip("/")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            return Response("outside the corpus", status=403)(environ, start_response)
        if path.is_dir() and (path / INDEX).is_file():
            return send_file(path / INDEX, environ, mimetype="application/json", conditional=True)(
                environ, start_response
            )
        if not path.is_file():
            return Response(f"no such file: {relative}", status=404)(environ, start_response)
        return send_file(path, environ, mimetype="application/octet-stream", conditional=True, max_age=None)(
            environ, start_response
        )
