"""The sdctl command line (Typer commands and rich presenters)."""
