"""The OpenAI (or any OpenAI-compatible server) back-end: the prompts in `prompts/` piped
into `ChatOpenAI` (LCEL), the reply's `[n]` markers checked against the retrieved chunks,
and each remaining citation given the sentence of its chunk closest to the answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import openai
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, ValidationError

from bot.rag.answer.base import AnswerEvent, Corpus
from bot.rag.answer.citations import (
    best_sentence,
    cited_numbers,
    format_context,
    renumber_markers,
    span_citation,
)
from bot.rag.embeddings import VectorCache
from bot.rag.errors import ModelError
from bot.rag.models import Answer, Chunk, Citation, Summary, SummaryBullet
from bot.rag.prompts import Prompts
from bot.settings import Settings

log = logging.getLogger(__name__)

REFUSAL_SENTINEL = "NOT_IN_SOURCES"  # the prompt asks for exactly this when the answer is absent
_UNCLOSED_MARKER = re.compile(r"\s*\[[\d,; ]*$")  # "[1" at the end of a partial reply
CHARS_PER_TOKEN = 4  # rough budget conversion; the budget is a ceiling, not an exact count


class GroundedAnswer(BaseModel):
    """The structured reply asked of servers that support JSON-schema output."""

    answerable: bool = Field(description="false when the excerpts do not contain the answer")
    answer: str = Field(description="the answer, with the [n] number of its excerpt after each fact")
    citations: list[int] = Field(description="numbers of the excerpts the answer uses")


# Statuses with which a server says it cannot do JSON-schema output (llama.cpp answers 500).
_NO_STRUCTURED_OUTPUT = {400, 404, 415, 422, 500, 501}


def build_chat_model(settings: Settings, retries: int | None = None) -> ChatOpenAI:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return ChatOpenAI(
        model=settings.openai_model,
        api_key=key,  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries if retries is None else retries,
        temperature=settings.temperature,
        max_completion_tokens=settings.max_output_tokens,
        # Some OpenAI-compatible servers ignore max_completion_tokens; send both.
        extra_body={"max_tokens": settings.max_output_tokens},
    )


def describe_model_error(exc: Exception, settings: Settings) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return f"The language model did not answer within {settings.request_timeout:g} s. Please try again."
    if isinstance(exc, openai.RateLimitError):
        return "The language model is busy (rate limited). Please try again in a minute."
    if isinstance(exc, openai.AuthenticationError):
        return "The language model rejected the API key; an admin needs to check OPENAI_API_KEY."
    if isinstance(exc, openai.APIConnectionError):
        return "The language model cannot be reached right now. Please try again later."
    if isinstance(exc, openai.APIStatusError):
        return f"The language model returned an error (HTTP {exc.status_code}). Please try again later."
    return f"The language model failed ({type(exc).__name__})."


@contextlib.contextmanager
def model_errors(settings: Settings) -> Iterator[None]:
    """Any failure of the model call becomes a ModelError with a plain message."""
    try:
        yield
    except ModelError:
        raise
    except openai.OpenAIError as exc:
        log.warning("model call failed: %s", type(exc).__name__)
        raise ModelError(describe_model_error(exc, settings)) from exc
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:  # cut-off stream, unreadable reply
        log.warning("model reply unreadable: %s", type(exc).__name__)
        raise ModelError("The language model's reply was cut off or unreadable. Please try again.") from exc


def within_budget(chunks: Sequence[Chunk], token_budget: int) -> list[Chunk]:
    """The leading chunks (best first) whose text fits the context budget (at least one)."""
    kept: list[Chunk] = []
    used = 0
    for chunk in chunks:
        cost = len(chunk.text) // CHARS_PER_TOKEN + 1
        if kept and used + cost > token_budget:
            break
        kept.append(chunk)
        used += cost
    return kept


class _Draft:
    """A streamed reply as it grows: what may be shown so far, and whether it finished."""

    def __init__(self, excerpts: int) -> None:
        self.reply = ""
        self.finished = False
        self._excerpts = excerpts

    def add(self, message: BaseMessageChunk) -> str | None:
        """Take one streamed piece; the cleaned text to show, or None to show nothing yet."""
        self.finished = self.finished or bool(message.response_metadata.get("finish_reason"))
        self.reply += message.text
        if REFUSAL_SENTINEL.startswith(self.reply.lstrip()[: len(REFUSAL_SENTINEL)]):
            return None  # may be the refusal sentinel: show nothing yet
        return renumber_markers(_UNCLOSED_MARKER.sub("", self.reply), self._excerpts)[0]

    def complete(self) -> str:
        if not self.finished:  # the stream ended without the model saying it was done
            log.warning("model stream ended without a finish reason")
            raise ModelError("The language model's answer was cut off. Please try again.")
        return self.reply.strip()


class OpenAIAnswerer:
    """Answers and summaries written by a chat model, grounded in numbered excerpts."""

    provider = "openai"

    def __init__(self, settings: Settings, prompts: Prompts, vectors: VectorCache) -> None:
        self._settings = settings
        self._prompts = prompts
        self._vectors = vectors
        model = build_chat_model(settings)
        self._answer_chain: Runnable = prompts.answer | model | StrOutputParser()
        self._answer_messages: Runnable = prompts.answer | model  # streamed: keeps finish_reason
        # JSON-schema output is tried first where the server supports it (one attempt, no
        # retries: a server that cannot do it falls back to the text protocol at once).
        self._structured_ok: bool | None = None if settings.openai_structured_output == "auto" else False
        self._structured_chain: Runnable = prompts.answer | build_chat_model(settings, retries=0).with_structured_output(
            GroundedAnswer, method="json_schema"
        )
        self._summary_chain: Runnable = prompts.summary | model | StrOutputParser()

    def _invoke(self, chain: Runnable, inputs: dict[str, object]) -> str:
        with model_errors(self._settings):
            return str(chain.invoke(inputs)).strip()

    def _citations(self, order: list[int], chunks: Sequence[Chunk], reference_text: str, corpus: Corpus) -> list[Citation]:
        reference = self._vectors.get([reference_text], store=False)[0] if reference_text else None
        citations = []
        for new, old in enumerate(order, start=1):
            chunk = chunks[old - 1]
            span = best_sentence(chunk, reference, self._vectors.get)
            citations.append(span_citation(new, chunk, span.start, span.end, corpus.source_text(chunk.source)))
        return citations

    def _inputs(self, question: str, chunks: Sequence[Chunk]) -> dict[str, object]:
        return {"question": question, "context": format_context(chunks, self._prompts.excerpt)}

    def answer(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer:
        chunks = within_budget(chunks, self._settings.context_token_budget)
        if not chunks:
            return Answer(question, self._prompts.refusal, False, [], self.provider)
        structured = self._try_structured(question, chunks)
        if structured is not None:
            if not structured.answerable:
                return Answer(question, self._prompts.refusal, False, [], self.provider)
            reply = structured.answer.strip()
            if not cited_numbers(reply):  # markers only in the list: put them after the text
                reply += " " + "".join(f"[{n}]" for n in dict.fromkeys(structured.citations))
            return self._finish(question, reply.strip(), chunks, corpus)
        reply = self._invoke(self._answer_chain, self._inputs(question, chunks))
        return self._finish(question, reply, chunks, corpus)

    def _try_structured(self, question: str, chunks: Sequence[Chunk]) -> GroundedAnswer | None:
        """The JSON-schema reply, or None to use the text protocol (unsupported or failed)."""
        if self._structured_ok is False:
            return None
        try:
            result = self._structured_chain.invoke(self._inputs(question, chunks))
        except openai.APIStatusError as exc:
            if exc.status_code in _NO_STRUCTURED_OUTPUT:
                log.info("the model server does not do JSON-schema output (HTTP %s): using text", exc.status_code)
                self._structured_ok = False
            return None
        except (openai.OpenAIError, httpx.HTTPError):
            return None  # timeouts, rate limits: the text path retries and reports
        except (OutputParserException, ValidationError, ValueError):
            log.info("the model server's JSON output was unusable: using text")
            self._structured_ok = False
            return None
        if not isinstance(result, GroundedAnswer):
            self._structured_ok = False
            return None
        self._structured_ok = True
        return result

    def stream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> Iterator[AnswerEvent]:
        """The answer as it is written (each item: the cleaned text so far), then the Answer."""
        if isinstance(prepared := self._prepare(question, chunks), Answer):
            yield prepared
            return
        chunks, draft = prepared
        with model_errors(self._settings):
            for message in self._answer_messages.stream(self._inputs(question, chunks)):
                if (visible := draft.add(message)) is not None:
                    yield visible
        yield self._finish(question, draft.complete(), chunks, corpus)

    async def astream(self, question: str, chunks: Sequence[Chunk], corpus: Corpus) -> AsyncIterator[AnswerEvent]:
        """`stream` on the event loop: the model's reply is read asynchronously."""
        if isinstance(prepared := self._prepare(question, chunks), Answer):
            yield prepared
            return
        chunks, draft = prepared
        with model_errors(self._settings):
            async for message in self._answer_messages.astream(self._inputs(question, chunks)):
                if (visible := draft.add(message)) is not None:
                    yield visible
        yield await asyncio.to_thread(self._finish, question, draft.complete(), chunks, corpus)

    def _prepare(self, question: str, chunks: Sequence[Chunk]) -> tuple[list[Chunk], _Draft] | Answer:
        """The excerpts that fit the budget and an empty draft, or the refusal when none do."""
        kept = within_budget(chunks, self._settings.context_token_budget)
        if not kept:
            return Answer(question, self._prompts.refusal, False, [], self.provider)
        return kept, _Draft(len(kept))

    def _finish(self, question: str, reply: str, chunks: Sequence[Chunk], corpus: Corpus) -> Answer:
        """The Answer for a complete reply: refusal, or text with its markers checked."""
        if not reply or REFUSAL_SENTINEL in reply:
            return Answer(question, self._prompts.refusal, False, [], self.provider)
        text, order = renumber_markers(reply, len(chunks))
        dropped = [n for n in cited_numbers(reply) if not 1 <= n <= len(chunks)]
        if dropped:
            log.info("dropped %d citation marker(s) naming no retrieved chunk", len(dropped))
        if not order:
            note = self._prompts.uncited_note
            return Answer(question, f"{text}\n{note}", True, [], self.provider, grounded=False)
        plain = re.sub(r"\s*\[\d+\]", "", text)
        return Answer(question, text, True, self._citations(order, chunks, plain, corpus), self.provider)

    def summarise(self, source: str | None, chunks: Sequence[Chunk], corpus: Corpus) -> Summary:
        chunks = within_budget(chunks, self._settings.context_token_budget)
        reply = self._invoke(
            self._summary_chain,
            {
                "scope": source or "all sources",
                "context": format_context(chunks, self._prompts.excerpt),
                "min_bullets": self._settings.summary_min_bullets,
                "max_bullets": self._settings.summary_max_bullets,
            },
        )
        lines = [line.strip()[1:].strip() for line in reply.splitlines() if line.strip()[:1] in "-*•"]
        if not lines:
            raise ModelError("The language model did not return a summary. Please try again.")
        text, order = renumber_markers("\n".join(lines[: self._settings.summary_max_bullets]), len(chunks))
        bullets = []
        for line in text.splitlines():
            numbers = [int(n) for n in re.findall(r"\[(\d+)\]", line)]
            bullets.append(SummaryBullet(re.sub(r"\s*\[\d+\]", "", line).strip(), numbers))
        return Summary(source, bullets, self._citations(order, chunks, re.sub(r"\s*\[\d+\]", "", text), corpus))
