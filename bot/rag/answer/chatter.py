"""Is a message in a help channel something to answer? In a channel the bot answers without
being mentioned, most messages are not questions: "thanks!", "hi all", "lol", an emoji, "ok
that worked". The bot answers questions ("how do I …", "… ?") and requests for help ("my
csv has blank lines between rows", "explain …"), and stays quiet otherwise.
"""

from __future__ import annotations

import re

from bot.rag.text import words

_QUESTION_WORDS = {
    "who", "whom", "whose", "what", "whats", "when", "where", "why", "how", "which", "is", "are", "am",
    "can", "could", "does", "do", "did", "should", "will", "would", "may", "might", "shall", "was",
    "were", "has", "have", "any", "anyone", "anybody",
}
_REQUESTS = {"help", "explain", "tell", "show", "describe", "please", "pls", "plz", "need", "trying", "cant", "cannot", "getting"}
_CHATTER = {
    "thanks", "thank", "thx", "ty", "tysm", "cheers", "ok", "okay", "k", "kk", "cool", "nice", "great",
    "awesome", "perfect", "hi", "hello", "hey", "yo", "sup", "gm", "gn", "lol", "lmao", "haha", "yes",
    "no", "yep", "nope", "yeah", "sure", "got", "it", "that", "worked", "works", "you", "so", "much",
    "a", "lot", "all", "everyone", "guys", "again", "bye", "np", "welcome", "good", "morning", "night",
    "same", "agreed", "this", "wow", "oh", "ah", "i", "see", "now", "makes", "sense", "fixed",
}
PROBLEM_MIN_WORDS = 6  # a statement this long that is not chatter reads as a request for help


def is_question(text: str) -> bool:
    """Whether a message asks something (or asks for help) rather than chatting."""
    cleaned = re.sub(r"<a?:\w+:\d+>|<[@#][!&]?\d+>|https?://\S+", " ", text)  # emoji, mentions, links
    tokens = words(cleaned)
    if not tokens or all(t in _CHATTER for t in tokens):
        return False
    if "?" in cleaned:
        return True
    if tokens[0] in _QUESTION_WORDS or tokens[0] in _REQUESTS:
        return True
    return len(tokens) >= PROBLEM_MIN_WORDS
