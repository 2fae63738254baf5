"""Project-specific `scrapy` commands (COMMANDS_MODULE)."""
