"""The Discord layer: a thin discord.py front end over `bot.rag.service.RagService`."""
