"""The server-rendered website."""
