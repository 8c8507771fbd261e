"""A protocol-level Streamlit client: one browser session without the browser.

It speaks Streamlit's websocket protocol (Streamlit 1.67, the version in the venv) the way its
frontend does, so the server does exactly the work a browser tab asks of it, while the client costs
next to no CPU. ``bench_browser.py --only sessions`` runs 20 of these against one server, because
in a class each browser runs on its own laptop and only the server is shared; twenty Chromium
tabs on the server's own cores would measure the tabs.

Protocol, as the frontend's connection code and the server's websocket handler do it:

- **Handshake.** A websocket to ``ws://host:port/_stcore/stream`` with the subprotocol list
  ``["streamlit", <auth token or placeholder>]`` (the server selects ``"streamlit"``; the second
  and an optional third entry, a session id to resume, are tokens, not protocols) and a
  same-origin ``Origin`` header. Every frame is a binary protobuf: ``BackMsg`` up, ``ForwardMsg``
  down.
- **A page open** is a ``BackMsg.rerun_script`` carrying a ``ClientState``: the query string (the
  address bar's, updated from every ``page_info_changed``), and either ``page_name`` (the first
  load: the path of the address, ``""`` for the default page) or ``page_script_hash`` (a click in
  the sidebar navigation: the hash of that page from the ``navigation`` message), plus the hashes
  of the messages this client has cached.
- **Message cache.** The server gives a hash to every ``ForwardMsg`` and marks large ``new_element``
  deltas ``metadata.cacheable``; the client keeps those, keyed by hash, and lists the hashes in its
  next ``rerun_script`` (``cached_message_hashes``). A message whose hash is listed is sent as a
  small reference (``ref_hash``) instead, which the client resolves from its cache. As in the
  frontend, an entry expires once ``new_session.config.max_cached_message_age`` successful script
  runs have gone by without it being sent or referenced.
- **The end of a run** is ``script_finished`` with any status but ``FINISHED_EARLY_FOR_RERUN``
  (then the script starts over, as after ``st.rerun()``, and the client keeps waiting), followed by
  ``session_status_changed`` (``script_is_running`` false). The figure of a page open is the
  time from sending ``rerun_script`` until ``script_finished``: what a browser waits for before
  drawing the last deltas (a browser's own drawing is not in it).

Each run records the errors it received (``exception`` elements that are not warnings, and
``st.error`` alerts: the app's panels show "Something went wrong ..." that way), and the case
fingerprint: the sidebar caption ``case xxxxxxxx`` that ``ui.case_builder`` draws on every page.

Usage (also ``python benchmarks/ws_client.py http://127.0.0.1:8501 [--query "?preset=ring"]``)::

    async with StreamlitClient(server_url) as client:
        first = await client.open(query="?preset=ring")            # first load, default page
        for page in client.pages[1:]:
            run = await client.open(page=page)                     # a sidebar click
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

STREAM_PATH = "/_stcore/stream"
#: the frontend's placeholder when it has neither a host auth token nor an XSRF cookie
AUTH_PLACEHOLDER = "PLACEHOLDER_AUTH_TOKEN"
FINGERPRINT = re.compile(r"^case ([0-9a-f]{8})$")
SIDEBAR = 1  # RootContainer.SIDEBAR: the first index of a sidebar delta's path
_STATUS = ForwardMsg.ScriptFinishedStatus
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Page:
    """One entry of the app's navigation (``st.Page``)."""

    title: str
    url_pathname: str
    script_hash: str


@dataclass
class PageRun:
    """What one page open received, and when."""

    page: str  #: the page's title ("" until the navigation message named it)
    seconds: float  #: from sending rerun_script until script_finished
    status: str  #: the ScriptFinishedStatus name ("TIMEOUT" / "DISCONNECTED" if none came)
    first_delta_s: float | None = None  #: until the first delta of the run
    messages: int = 0
    refs: int = 0  #: of them, references resolved from the client's message cache
    wire_bytes: int = 0  #: ForwardMsg bytes received (after websocket decompression)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)  #: "case xxxxxxxx" captions in the sidebar

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED_SUCCESSFULLY" and not self.errors


@dataclass
class _CacheEntry:
    payload: bytes
    run_count: int


class ProtocolError(RuntimeError):
    """The server sent something this client cannot follow (e.g. a reference it never cached)."""


class StreamlitClient:
    """One Streamlit session over a websocket; see the module docstring."""

    def __init__(self, server_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 locale: str = "en-US", timezone: str = "UTC") -> None:
        parts = urlsplit(server_url)
        self.http_url = f"{parts.scheme or 'http'}://{parts.netloc}"
        self.ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{STREAM_PATH}"
        self.timeout_s = timeout_s
        self.locale, self.timezone = locale, timezone
        self.pages: list[Page] = []
        self.current_hash = ""
        self.query_string = ""
        self.session_id = ""
        self.max_message_age = 2  # Streamlit's default; new_session.config says the server's
        self._cache: dict[str, _CacheEntry] = {}
        self._runs_done = 0  # successful script runs: the age clock of the cache
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._run: PageRun | None = None
        self._t0 = 0.0
        self._finished: asyncio.Future | None = None
        self._closed_error: BaseException | None = None

    # ---------------------------------------------------------------------------- connection

    async def __aenter__(self) -> StreamlitClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        self._ws = await connect(self.ws_url, subprotocols=["streamlit", AUTH_PLACEHOLDER],
                                 origin=self.http_url, max_size=None, proxy=None,
                                 open_timeout=self.timeout_s)
        self._reader = asyncio.create_task(self._read(), name="streamlit-client-reader")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass

    # ---------------------------------------------------------------------------- requests

    def page(self, title_or_path: str) -> Page:
        """The navigation entry with that title or URL path."""
        for p in self.pages:
            if title_or_path in (p.title, p.url_pathname):
                return p
        raise KeyError(f"no page {title_or_path!r}; the app has {[p.title for p in self.pages]}")

    async def open(self, page: Page | str | None = None, *, query: str | None = None) -> PageRun:
        """Open a page and wait until its script run finished.

        ``page=None``: the first load of the address (``page_name`` from its path: the default page);
        a :class:`Page` or its title / path: a click on it in the sidebar navigation.
        ``query``: the address's query string (``"?preset=ring"``); later opens keep the query
        string the server last set (bound widgets write their values there)."""
        if query is not None:
            self.query_string = query.lstrip("?")
        target = self.page(page) if isinstance(page, str) else page
        state = BackMsg()
        cs = state.rerun_script
        cs.query_string = self.query_string
        if target is None:
            cs.page_name = ""
        else:
            cs.page_script_hash = target.script_hash
        cs.cached_message_hashes.extend(self._cache)
        ctx = cs.context_info
        ctx.timezone, ctx.timezone_offset, ctx.locale = self.timezone, 0, self.locale
        ctx.url = f"{self.http_url}/{target.url_pathname if target else ''}" + (
            f"?{self.query_string}" if self.query_string else "")
        ctx.is_embedded = False
        self._run = PageRun(target.title if target else "", 0.0, "")
        self._finished = asyncio.get_running_loop().create_future()
        self._t0 = time.perf_counter()
        await self._ws.send(state.SerializeToString())
        try:
            await asyncio.wait_for(asyncio.shield(self._finished), self.timeout_s)
        except TimeoutError:
            self._run.status = "TIMEOUT"
            self._run.seconds = float("inf")
        run, self._run = self._run, None
        if not run.page and self.current_hash:
            run.page = next((p.title for p in self.pages if p.script_hash == self.current_hash), "")
        return run

    # ---------------------------------------------------------------------------- messages

    async def _read(self) -> None:
        try:
            async for payload in self._ws:
                self._handle(payload)
        except Exception as err:  # noqa: BLE001 - reported through the run waiting on it
            self._closed_error = err
        finally:
            if self._finished is not None and not self._finished.done() and self._run is not None:
                self._run.status = "DISCONNECTED"
                self._run.seconds = float("inf")
                if self._closed_error is not None:
                    self._run.errors.append(f"{type(self._closed_error).__name__}: {self._closed_error}"[:160])
                self._finished.set_result(None)

    def _handle(self, payload: bytes) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(payload)
        kind = msg.WhichOneof("type")
        run = self._run
        if kind == "ref_hash":
            entry = self._cache.get(msg.ref_hash)
            if entry is None:
                raise ProtocolError(f"the server referred to message {msg.ref_hash}, which this client never cached")
            entry.run_count = self._runs_done
            full = ForwardMsg()
            full.ParseFromString(entry.payload)
            full.metadata.CopyFrom(msg.metadata)
            msg, kind = full, full.WhichOneof("type")
            if run is not None:
                run.refs += 1
        elif msg.metadata.cacheable and msg.hash:
            entry = self._cache.get(msg.hash)
            if entry is None:
                self._cache[msg.hash] = _CacheEntry(payload, self._runs_done)
            else:
                entry.run_count = self._runs_done
        if run is not None:
            run.messages += 1
            run.wire_bytes += len(payload)
        if kind == "delta":
            self._on_delta(msg, run)
        elif kind == "navigation":
            self.pages = [Page(p.page_name, p.url_pathname, p.page_script_hash) for p in msg.navigation.app_pages]
            self.current_hash = msg.navigation.page_script_hash or self.current_hash
        elif kind == "new_session":
            self.session_id = msg.new_session.initialize.session_id or self.session_id
            self.max_message_age = msg.new_session.config.max_cached_message_age or self.max_message_age
            self.current_hash = msg.new_session.page_script_hash or self.current_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            if run is not None:
                run.errors.append("compile error: " + msg.session_event.script_compilation_exception.message[:120])
        elif kind == "script_finished":
            self._on_finished(msg.script_finished)

    def _on_delta(self, msg: ForwardMsg, run: PageRun | None) -> None:
        if run is None:
            return
        if run.first_delta_s is None:
            run.first_delta_s = time.perf_counter() - self._t0
        if msg.delta.WhichOneof("type") != "new_element":
            return
        el = msg.delta.new_element
        which = el.WhichOneof("type")
        if which == "exception":
            text = f"{el.exception.type}: {el.exception.message.splitlines()[0] if el.exception.message else ''}"
            (run.warnings if el.exception.is_warning else run.errors).append(text[:160])
        elif which == "alert" and el.alert.format == el.alert.ERROR:
            run.errors.append(el.alert.body.splitlines()[0][:160] if el.alert.body else "st.error")
        elif which == "markdown" and el.markdown.element_type == el.markdown.CAPTION:
            found = FINGERPRINT.match(el.markdown.body.strip())
            if found and msg.metadata.delta_path[:1] == [SIDEBAR]:
                run.fingerprints.append(found.group(1))

    def _on_finished(self, status: int) -> None:
        if status in (_STATUS.FINISHED_SUCCESSFULLY, _STATUS.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            self._runs_done += 1  # as the frontend: expire what the last runs did not use
            for h in [h for h, e in self._cache.items() if self._runs_done - e.run_count > self.max_message_age]:
                del self._cache[h]
        if status == _STATUS.FINISHED_EARLY_FOR_RERUN:
            return  # the script starts over (st.rerun): the page is not done
        run, done = self._run, self._finished
        if run is not None and done is not None and not done.done():
            run.seconds = time.perf_counter() - self._t0
            run.status = _STATUS.Name(status)
            done.set_result(None)


# -------------------------------------------------------------------------------- command line


async def _demo(url: str, query: str) -> None:
    async with StreamlitClient(url) as client:
        runs = [await client.open(query=query)]
        first = client.current_hash
        runs += [await client.open(page) for page in client.pages if page.script_hash != first]
        for r in runs:
            print(f"{r.page or '(first load)':<22} {r.seconds:7.3f} s  {r.status:<22} {r.messages:4d} msgs "
                  f"({r.refs} cached refs) {r.wire_bytes / 1e3:8.1f} kB  case {','.join(r.fingerprints) or '-'}"
                  + (f"  ERRORS {r.errors}" if r.errors else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Open every page of a served Streamlit app over its websocket.")
    ap.add_argument("url", help="the server, e.g. http://127.0.0.1:8501")
    ap.add_argument("--query", default="", help='query string of the first load, e.g. "?preset=ring"')
    args = ap.parse_args(argv)
    asyncio.run(_demo(args.url, args.query))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
