"""The operator console under `/console`: server-rendered pages for the people who run billing
(docs/console.md). Importing the page modules registers their routes on `router`."""

from fiscus.web.console import details, email_pages, files, lists, money_pages, pages, runs
from fiscus.web.console.routing import router

__all__ = ["details", "email_pages", "files", "lists", "money_pages", "pages", "router", "runs"]
