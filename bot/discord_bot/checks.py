"""Who may do what, and how often: the per-user question cooldown, the channel filter and
the moderator check for moderators' commands."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.settings import Settings

T = TypeVar("T")


class CooldownHit(app_commands.CheckFailure):
    """A member asked too often; `retry_after` seconds until the next question."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"You're asking too quickly; try again in {retry_after:.0f} s.")
        self.retry_after = retry_after


class NotModerator(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__("Only moderators (Manage Server or a moderator role) can use this command.")


def _user_id(source: discord.Message | discord.Interaction) -> int:
    return source.author.id if isinstance(source, discord.Message) else source.user.id


class QuestionCooldown:
    """At most `count` questions per `seconds` per member, shared by mentions and /ask."""

    def __init__(self, settings: Settings) -> None:
        cooldown = commands.Cooldown(settings.question_cooldown_count, settings.question_cooldown_seconds)
        self._mapping: commands.CooldownMapping[discord.Message | discord.Interaction] = commands.CooldownMapping(
            cooldown if settings.question_cooldown_seconds > 0 else None, _user_id
        )

    def retry_after(self, source: discord.Message | discord.Interaction) -> float | None:
        """Seconds the member must wait, or None when the question may go ahead (and counts)."""
        bucket = self._mapping.get_bucket(source)
        return bucket.update_rate_limit() if bucket is not None else None


def member_is_moderator(member: discord.Member | discord.User | None, moderator_role_ids: Collection[int]) -> bool:
    """The owner, Administrator or Manage Server (from their roles, or from an interaction's
    resolved permissions), or one of the moderator roles. Moderators run /source and see every
    source."""
    if not isinstance(member, discord.Member):
        return False
    for perms in (member.guild_permissions, member.resolved_permissions):
        if perms is not None and (perms.administrator or perms.manage_guild):
            return True
    return any(role.id in moderator_role_ids for role in member.roles)


def is_moderator(interaction: discord.Interaction, settings: Settings) -> bool:
    """Manage Server in this channel, or a moderator as `member_is_moderator` says."""
    return interaction.permissions.manage_guild or member_is_moderator(interaction.user, settings.moderator_role_ids)


def channel_allowed(channel: discord.abc.Messageable, settings: Settings) -> bool:
    if not settings.allowed_channel_ids:
        return True
    ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
    return bool(ids & set(settings.allowed_channel_ids))


def moderator_only() -> Callable[[T], T]:
    """A moderators' slash command: hidden from members by default (Manage Server), never in
    DMs, and checked again when run (server admins may have overridden the default)."""

    def predicate(interaction: discord.Interaction) -> bool:
        if not is_moderator(interaction, interaction.client.settings):  # type: ignore[attr-defined]
            raise NotModerator()
        return True

    def decorate(command: T) -> T:
        command = app_commands.check(predicate)(command)
        command = app_commands.guild_only()(command)
        return app_commands.default_permissions(manage_guild=True)(command)

    return decorate


class NotHost(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__(
            "Only the bot's host can reload the shared sources. "
            "Moderators manage this server's own sources with /source."
        )


def host_only() -> Callable[[T], T]:
    """The host's command (the shared sources): OWNER_IDS or the application's owner."""

    async def predicate(interaction: discord.Interaction) -> bool:
        client = interaction.client
        if interaction.user.id in client.settings.owner_ids or await client.is_owner(interaction.user):  # type: ignore[attr-defined]
            return True
        raise NotHost()

    return app_commands.check(predicate)
