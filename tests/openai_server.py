"""A local OpenAI-compatible HTTP server for tests: chat completions (plain and SSE
streaming) and embeddings, with fault injection.

The HTTP layer, the `openai` client and LangChain's ChatOpenAI are all real; the model is
not, because no chat model can run in CI here. By default it answers *from the numbered
excerpts it receives*: the excerpt sharing the most words with the question, first
sentence, cited by its number — or NOT_IN_SOURCES when no excerpt shares a content word.
So a test checks that the prompt carried the right chunks. Asked to rewrite a follow-up
(the condense prompt), it puts the last question's subject in place of the first pronoun.
Tests may set `server.reply`.
Faults: `delay`, `fail_next` (status, retry-after), `malformed` (invalid JSON body),
`truncate_stream` (the SSE stream stops mid-answer, without [DONE]).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

Reply = Callable[[list[dict[str, Any]]], str]
_STOP = set("a an the of to in on and or is was were who what when where which how why did do does has have had for by with as at from that this it its".split())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def rewrite_follow_up(prompt: str) -> str:
    """The stand-in's rewrite of a follow-up: its pronouns replaced by the subject of the
    conversation's last question (the words after its first verb), on one line."""
    follow_up = re.search(r"Follow-up question: (.*)", prompt)
    asked = re.findall(r"^Member: (.*)$", prompt, re.M)
    question = follow_up.group(1).strip() if follow_up else ""
    if not asked:
        return question
    subject = re.sub(r"^\W*(who|what|which|when|where|how|why)\s+\w+\s+", "", asked[-1], flags=re.I).rstrip("?")
    return re.sub(r"\b(he|she|they|it|that|this)\b", lambda _: subject, question, count=1, flags=re.I)


def answer_from_excerpts(messages: list[dict[str, Any]]) -> str:
    """A stand-in model that reads the prompt: the best-overlapping excerpt's first sentence
    (or, asked to make a follow-up standalone, a rewrite of it)."""
    prompt = messages[-1]["content"]
    if "Standalone question:" in prompt:
        return rewrite_follow_up(prompt)
    question = prompt.rsplit("Question:", 1)[-1]
    excerpts = re.findall(r"^\[(\d+)\] \(.*?\)\n(.*?)(?=\n\n\[\d+\] \(|\n\nQuestion:)", prompt, re.M | re.S)
    scored = sorted(((len(_words(question) & _words(text)), int(n), text) for n, text in excerpts), reverse=True)
    if not scored or scored[0][0] == 0:
        return "NOT_IN_SOURCES"
    _, number, text = scored[0]
    best = max(re.split(r"(?<=[.!?])\s+", text), key=lambda sentence: len(_words(question) & _words(sentence)))
    return f"According to the sources, {best.rstrip('.')} [{number}]."


def embed_text(text: str, dims: int = 64) -> list[float]:
    """A deterministic bag-of-words embedding (hashing trick), unit length."""
    vector = [0.0] * dims
    for word in _words(text):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class OpenAICompatibleServer:
    def __init__(self) -> None:
        self.reply: Reply = answer_from_excerpts
        self.delay = 0.0  # seconds to wait before answering (to test timeouts)
        self.status = 200  # set to 429/500 to fail every request
        self.fail_next: list[tuple[int, float | None]] = []  # (status, retry-after) for the next requests
        self.malformed = False  # answer with a body that is not JSON
        self.truncate_stream = False  # stop a stream half-way, without [DONE]
        self.stream_chunk_delay = 0.0  # seconds between streamed pieces
        self.json_schema = True  # False: answer response_format json_schema with HTTP 500, as llama.cpp does
        self.requests: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAICompatibleServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            status, retry_after = self.fail_next.pop(0)
            headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
            return web.json_response({"error": {"message": "injected failure", "type": "server_error"}}, status=status, headers=headers)
        if self.status != 200:
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error"}}, status=self.status)
        if self.malformed:
            return web.Response(text='{"id": "chatcmpl-test", "choices": [', content_type="application/json")
        text = self.reply(body["messages"])
        if (body.get("response_format") or {}).get("type") == "json_schema":
            if not self.json_schema:
                return web.json_response({"error": {"message": "json_schema not supported"}}, status=500)
            numbers = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
            text = json.dumps({"answerable": text != "NOT_IN_SOURCES", "answer": text if text != "NOT_IN_SOURCES" else "",
                               "citations": numbers})
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-test", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10 + len(text.split())},
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = text.split(" ")
        for i, word in enumerate(words):
            if self.truncate_stream and i == len(words) // 2:
                return response  # the connection ends without [DONE]
            if self.stream_chunk_delay:
                await asyncio.sleep(self.stream_chunk_delay)
            chunk = {
                "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created, "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": (" " if i else "") + word}, "finish_reason": None}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created, "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers)})
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": embed_text(t)} for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        })
