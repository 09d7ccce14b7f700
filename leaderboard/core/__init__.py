"""Settings, database engine, security and errors of the leaderboard app."""
