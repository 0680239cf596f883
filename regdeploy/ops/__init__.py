"""One module per command's use case; cli/ parses and prints, ops/ does."""
