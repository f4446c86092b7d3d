"""Who may see a source, and which sources one reply may draw on.

A moderator gives each source of a server's base a `Visibility`: everyone in the server (the
default), some channels (with their threads and forum posts), or some roles. A reply may use
a source only if everyone who can read the reply may see it; the front end says who can read
a reply with an `Audience` (Discord's channel permissions, a private thread's members, the
asker alone for an ephemeral reply: `bot.discord_bot.audience`). Visibilities are kept in the
source's registry options, so they survive restarts and reloads. The shared (host) base is
public: its sources are never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.rag.holdings import covered_names
from bot.state import SourceRow

VisibilityKind = Literal["everyone", "channels", "roles"]
_OPTION = "visibility"
NO_ROLE = 0  # a role id no member holds (Discord ids are never 0)


@dataclass(frozen=True)
class Visibility:
    """Who may see a source: everyone, members reading some channels, or members holding a role."""

    kind: VisibilityKind = "everyone"
    ids: frozenset[int] = field(default_factory=frozenset)  # channel or role ids

    def __post_init__(self) -> None:
        if self.kind not in ("everyone", "channels", "roles"):
            raise ValueError(f"unknown visibility {self.kind!r}")
        if (self.kind == "everyone") != (not self.ids):
            raise ValueError("channels and roles visibilities name at least one id; everyone names none")

    @classmethod
    def everyone(cls) -> Visibility:
        return cls()

    @classmethod
    def channels(cls, ids: Iterable[int]) -> Visibility:
        return cls("channels", frozenset(int(i) for i in ids))

    @classmethod
    def roles(cls, ids: Iterable[int]) -> Visibility:
        return cls("roles", frozenset(int(i) for i in ids))

    def describe(self, names: Mapping[int, str] | None = None) -> str:
        """"everyone", "channels #a, #b" or "roles @A" with `names` (id -> name), else Discord
        mentions ("channels <#1>", "roles <@&3>"), which Discord shows as names without pinging."""
        if self.kind == "everyone":
            return "everyone"
        sign, mention = ("#", "<#{}>") if self.kind == "channels" else ("@", "<@&{}>")
        names = names or {}
        return f"{self.kind} " + ", ".join(f"{sign}{names[i]}" if i in names else mention.format(i) for i in sorted(self.ids))

    @classmethod
    def of(cls, row: SourceRow) -> Visibility:
        """A registered source's visibility (everyone when none was set)."""
        return cls.from_option(row.options.get(_OPTION))

    @classmethod
    def from_option(cls, value: Any) -> Visibility:
        """The stored option read back: none stored is everyone; one that cannot be read is
        moderators only (a role no member holds), never more than was meant."""
        if value is None or (isinstance(value, Mapping) and value.get("kind") == "everyone"):
            return cls()
        try:
            return cls(value["kind"], frozenset(int(i) for i in value["ids"]))
        except (TypeError, KeyError, ValueError):
            return cls("roles", frozenset({NO_ROLE}))

    def as_option(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": sorted(self.ids)}

    def with_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """`options` with this visibility in them."""
        return {**options, _OPTION: self.as_option()}


class Audience(Protocol):
    """Everyone who can read one reply, as far as sources go."""

    def allows(self, visibility: Visibility) -> bool: ...


@dataclass(frozen=True)
class Everyone:
    """A reply anyone in the server may read: only sources visible to everyone."""

    def allows(self, visibility: Visibility) -> bool:
        return visibility.kind == "everyone"


@dataclass(frozen=True)
class Readers:
    """Who can read one reply (`bot.discord_bot.audience` works it out from Discord).
    `guild_id` None: a DM. `channel_ids`: the reply's channel and, for a thread or forum
    post, its parent. `public`: a member holding no role can read it. `reader_roles`: the
    kinds of the other readers, moderators aside: the role ids every reader of one kind holds
    (who views a channel thanks to role R holds R). A source visible to some roles is allowed
    when every kind holds one of them. `asker_id`: the member the reply answers; documents of a
    Discord channel source holding their own messages are left out of it (nobody is quoted to
    themselves)."""

    guild_id: int | None
    channel_ids: frozenset[int] = frozenset()
    public: bool = False
    reader_roles: tuple[frozenset[int], ...] = ()
    asker_id: int | None = None  # whose own messages (in channel sources) the reply leaves out

    @classmethod
    def dm(cls) -> Readers:
        return cls(None)

    @property
    def only_moderators(self) -> bool:
        """Only moderators read it (an ephemeral reply to one, a channel only they can view)."""
        return self.guild_id is not None and not self.public and not self.reader_roles

    def allows(self, visibility: Visibility) -> bool:
        if self.guild_id is None:
            return False  # a DM: the shared sources only
        if self.only_moderators or visibility.kind == "everyone":
            return True
        if visibility.kind == "channels":
            return bool(self.channel_ids & visibility.ids)
        everyone_role = self.guild_id in visibility.ids
        return everyone_role or (not self.public and all(kind & visibility.ids for kind in self.reader_roles))


EVERYONE = Everyone()


def hidden_sources(rows: Iterable[SourceRow], indexed: Iterable[str], audience: Audience,
                   unregistered: Visibility | None = None) -> frozenset[str]:
    """The indexed source names (a crawl's pages under its name) a reply for `audience` must
    not use. An indexed name no row covers has the `unregistered` visibility (None: everyone)."""
    names = list(indexed)
    hidden: set[str] = set()
    covered: set[str] = set()
    asker = getattr(audience, "asker_id", None)
    for row in rows:
        mine = set(covered_names(row, names))
        covered |= mine
        if not audience.allows(Visibility.of(row)):
            hidden |= mine
        elif asker is not None:
            hidden |= mine & authored_by(row, asker)
    if unregistered is not None and not audience.allows(unregistered):
        hidden.update(n for n in names if n not in covered)
    return frozenset(hidden)


AUTHORS_OPTION = "authors"  # a Discord channel source's {file in its folder: [author ids]}


def authored_by(row: SourceRow, user_id: int) -> set[str]:
    """The indexed names of `row`'s documents holding a message `user_id` wrote (channel sources)."""
    authors = row.options.get(AUTHORS_OPTION) or {}
    wanted = str(user_id)
    return {f"{row.name}/{file}" for file, ids in authors.items() if wanted in {str(i) for i in ids}}


# A server's indexed source with no registry row (an add undone mid-way, a file put in its
# folder by hand while the bot keeps a registry) is for moderators only until it has one.
UNREGISTERED = Visibility("roles", frozenset({NO_ROLE}))
