"""The chat page of `pilotfish serve` in headless Chromium: a streamed answer with its citation chip and
passage, feedback stored in SQL, a conversation resumed after a reload, and a phone-width layout.

The server runs in this process over a real knowledge base; only the answering LLM is scripted.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from sqlalchemy import select

from pilotfish.knowledge.base import KnowledgeBase
from pilotfish.knowledge.store import FeedbackRow
from pilotfish.llms.fake import FakeLLM
from pilotfish.serve.app import create_app
from pilotfish.serve.config import ServeConfig
from pilotfish.serve.service import Service

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The artifact goes to the test's tmp folder; PILOTFISH_SCREENSHOT=PATH also writes it there (how the README's
# picture is refreshed), so a plain test run leaves the working tree clean.
SCREENSHOT = os.environ.get("PILOTFISH_SCREENSHOT", "")
QUESTION = "Who designed the Zorblat engine?"
REPLY = "Ada Lovelace designed the Zorblat engine in 1843 [1]."
PASSAGE = "It computed tide tables for the port of Bristol"

if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed: apt-get install chromium",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KnowledgeBase]]:
    """The app on a free loopback port, in a background thread; yields its URL and knowledge base."""
    tmp = tmp_path_factory.mktemp("serve-page")
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "zorblat.md").write_text("# The Zorblat engine\n\nThe Zorblat engine was designed by Ada Lovelace in "
                                     f"1843. {PASSAGE}.\n")
    (docs / "kansas.md").write_text("# University of Kansas\n\nThe University of Kansas is a public research "
                                    "university. Its main campus is in Lawrence, Kansas, on Mount Oread.\n")
    kb = KnowledgeBase.open(tmp / "kb", create=True, settings={"tokenizer": "words", "dense": False})
    kb.ingest([docs])
    cfg = ServeConfig(kb=str(tmp / "kb"), llm="fake")
    svc = Service(cfg, kb=kb, llms={"fake": FakeLLM(replies=[REPLY])})
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, service=svc), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", kb
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_ask_cite_feedback_and_resume(served: tuple[str, KnowledgeBase], browser: Any, tmp_path: Path) -> None:
    url, kb = served
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(20_000)
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or request.url))

    page.goto(url)
    expect(page.locator("#pipeline option")).to_have_count(1)
    expect(page.locator("#pipeline")).to_have_value("basic")
    page.locator("#question").fill(QUESTION)
    with page.expect_response(lambda r: r.url.endswith("/api/ask")) as asked:
        page.locator("#question").press("Enter")
    assert asked.value.status == 200
    assert asked.value.headers["content-type"].startswith("text/event-stream")

    answer = page.locator(".turn.assistant").first
    expect(answer.locator(".answer-text")).to_contain_text("Ada Lovelace designed the Zorblat engine in 1843",
                                                           timeout=20_000)
    expect(answer.locator(".answer-text")).not_to_contain_text("[1]")  # the marker became a chip
    chip = answer.get_by_role("button", name="Passage 1: The Zorblat engine")
    expect(chip).to_have_text("1")
    expect(answer.locator(".meta.cost")).to_contain_text("model fake")
    expect(answer.locator(".meta.cost")).to_contain_text("completion tokens")

    chip.click()
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".passage")).to_contain_text(PASSAGE)
    expect(panel).to_contain_text("The Zorblat engine")
    expect(panel).to_contain_text("default")  # the collection
    page.mouse.move(0, 0)  # no hover highlight in the screenshot
    page.screenshot(path=str(tmp_path / "serve-page.png"))
    assert (tmp_path / "serve-page.png").stat().st_size > 10_000
    if SCREENSHOT:
        shutil.copy(tmp_path / "serve-page.png", SCREENSHOT)

    answer.get_by_role("button", name="Thumbs down: a bad answer").click()
    expect(answer.locator(".saved")).to_contain_text("Feedback saved")
    expect(answer.get_by_role("button", name="Thumbs down: a bad answer")).to_have_attribute("aria-pressed", "true")
    with kb.store.reading() as session:
        rows = session.scalars(select(FeedbackRow)).all()
        assert [(r.rating, r.question, r.answer) for r in rows] == [(-1, QUESTION, REPLY)]
        assert rows[0].message_id is not None and rows[0].session_id is not None
        assert rows[0].pipeline == "basic" and rows[0].evidence and rows[0].evidence[0].endswith("zorblat.md::0")

    page.reload()
    expect(page.locator(".turn")).to_have_count(0)
    page.locator("#session-list button.session", has_text=QUESTION).click()
    expect(page.locator(".turn.user p")).to_have_text(QUESTION)
    resumed = page.locator(".turn.assistant .answer-text")
    expect(resumed).to_contain_text("Ada Lovelace designed the Zorblat engine in 1843")
    expect(page.locator(".turn.assistant button.chip")).to_have_count(1)

    assert hosts and set(hosts) == {"127.0.0.1"}, f"the page reached other hosts: {sorted(set(hosts))}"
    page.close()


def test_phone_width(served: tuple[str, KnowledgeBase], browser: Any) -> None:
    url, _ = served
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.set_default_timeout(20_000)
    page.goto(url)
    expect(page.locator("#pipeline option")).to_have_count(1)
    for target in ("#question", "#send"):
        expect(page.locator(target)).to_be_visible()
        box = page.locator(target).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, (target, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= 740, (target, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the screen
    expect(page.locator("#sessions")).to_be_hidden()  # the conversation list collapses
    page.get_by_role("button", name="Conversations").click()
    expect(page.get_by_role("button", name="+ New conversation")).to_be_visible()
    page.close()
