"""Making the live index of one index version: its lexical index (read from beside the version,
or built and saved there for the next process), the hybrid retriever over it and Chroma, and
the LCEL chain that answers from it."""

from __future__ import annotations

from bot.rag.answer.sentences import own_sentences
from bot.rag.components import Components
from bot.rag.index.lexical import LEXICAL_FORMAT, LexicalIndex
from bot.rag.index.live import LiveIndex
from bot.rag.index.retrieval import HybridRetriever
from bot.rag.index.scope import scoped_chain
from bot.rag.index.version import IndexVersion, save_derived


def live_index(version: IndexVersion, components: Components) -> LiveIndex:
    """Everything that answers from `version`, ready to serve."""
    settings = components.settings
    lexical = lexical_index(version)
    retriever = HybridRetriever(
        version=version,
        lexical=lexical,
        query_vector=lambda text: components.vectors.get([text], store=False)[0],
        k=settings.top_k,
        hybrid=settings.hybrid_search,
        sentence_vectors=lambda chunk: components.vectors.get(own_sentences(chunk) or [chunk.text]),
    )
    live = LiveIndex(version, lexical, retriever)
    live.chain = scoped_chain([live], components.answerer, settings.top_k)
    return live


def lexical_index(version: IndexVersion) -> LexicalIndex:
    """The version's lexical index: read from beside it, or built and saved there for the
    next process."""
    folder = version.derived_dir / f"lexical-{LEXICAL_FORMAT}" if version.derived_dir else None
    lexical = LexicalIndex.load(folder) if folder is not None else None
    if lexical is not None and len(lexical.ids) == len(version.catalogue):
        return lexical
    lexical = LexicalIndex.build(version.chunks.values())
    if folder is not None:
        save_derived(lambda: lexical.save(folder), "lexical index", version.name)
    return lexical
