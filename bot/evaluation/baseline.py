"""The stock LangChain recipe a newcomer would write, for comparison: the files' raw text,
RecursiveCharacterTextSplitter(1000, 200), Chroma with the same embeddings, plain
similarity top-4. It answers with the same extractive answerer, so differences in the
figures come from ingestion and retrieval alone."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from bot.rag.answer.base import Answerer
from bot.rag.embeddings import EmbeddingModel
from bot.rag.index.lexical import LexicalIndex, Pages
from bot.rag.ingest.sources import discover
from bot.rag.models import Answer, Chunk

CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200


def stock_text(path: Path) -> str:
    """A file's text as the stock loaders give it: the page's whole text for HTML (what
    BSHTMLLoader's get_text() returns, navigation included), pypdf's text for PDF
    (PyPDFLoader), the raw file otherwise."""
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        import lxml.html

        return lxml.html.fromstring(path.read_bytes()).text_content()
    if suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    if suffix in {".docx", ".pptx", ".xlsx"}:
        return ""  # no stock loader without extra packages: the baseline leaves them out
    return path.read_text(encoding="utf-8", errors="replace")


class BaselinePipeline:
    def __init__(self, sources_dir: Path, embeddings: EmbeddingModel, answerer: Answerer, k: int = 4,
                 persist_dir: Path | None = None) -> None:
        """Build the recipe over `sources_dir`; with `persist_dir`, its Chroma collection is
        kept there and reused when the same chunks were embedded before."""
        self._texts: dict[str, str] = {}
        documents: list[Document] = []
        for path in discover(sources_dir)[0]:
            name = path.relative_to(sources_dir).as_posix()
            self._texts[name] = stock_text(path)
            if not self._texts[name].strip():
                continue
            documents.append(Document(page_content=self._texts[name], metadata={"source": name}))
        splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True)
        self.documents = splitter.split_documents(documents)
        self.chunks: dict[str, Chunk] = {}
        ids = []
        for i, doc in enumerate(self.documents):
            chunk_id = f"baseline-{i}"
            start = int(doc.metadata["start_index"])
            self.chunks[chunk_id] = Chunk(chunk_id, doc.metadata["source"], i, start, start + len(doc.page_content), doc.page_content, "")
            doc.metadata["chunk_id"] = chunk_id
            ids.append(chunk_id)
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if persist_dir is None:
            client = chromadb.EphemeralClient(settings=chroma_settings)
            name = f"baseline_{uuid.uuid4().hex[:8]}"
        else:
            client = chromadb.PersistentClient(path=str(persist_dir), settings=chroma_settings)
            digest = hashlib.sha256("\x00".join(d.page_content for d in self.documents).encode()).hexdigest()[:16]
            name = f"baseline_{digest}"
        existing = {c.name for c in client.list_collections()}
        if name in existing:
            self.store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
        else:
            self.store = Chroma.from_documents(self.documents, embeddings, ids=ids, client=client, collection_name=name)
        self._lexical = LexicalIndex.build(list(self.chunks.values()))
        by_source: dict[str, list[str]] = {}
        for chunk in self.chunks.values():
            by_source.setdefault(chunk.source, []).append(chunk.id)
        self._pages = Pages(self._lexical, lambda source: by_source.get(source, []), self.source_text)
        self._answerer = answerer
        self._k = k

    def page_idf(self, source: str, term: str) -> float:
        return self._pages.idf(source, term)

    def mentions(self, term: str) -> bool:
        return self._lexical.mentions(term)

    def page_mentions(self, source: str, name: str) -> bool:
        return self._pages.mentions(source, name)

    def source_text(self, source: str) -> str:
        return self._texts[source]

    def retrieve(self, question: str) -> list[Chunk]:
        return [self.chunks[d.metadata["chunk_id"]] for d in self.store.similarity_search(question, k=self._k)]

    def ask(self, question: str, chunks: Sequence[Chunk] | None = None) -> Answer:
        return self._answerer.answer(question, chunks if chunks is not None else self.retrieve(question), self)
