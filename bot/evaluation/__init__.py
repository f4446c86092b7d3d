"""Measuring the bot: answer/citation quality (`eval`) and speed/memory (`bench`), each
side by side with a stock LangChain baseline."""
