"""The operator console under `/console`: server-rendered pages for the people who run billing
(docs/console.md). Importing the page modules registers their routes on `router`."""

from fiscus.web.console import (
    access_pages,
    catalog_pages,
    details,
    edit_pages,
    email_pages,
    files,
    lists,
    money_pages,
    pages,
    pause_pages,
    runs,
    settings_pages,
)
from fiscus.web.console.routing import router

__all__ = [
    "access_pages",
    "catalog_pages",
    "details",
    "edit_pages",
    "email_pages",
    "files",
    "lists",
    "money_pages",
    "pages",
    "pause_pages",
    "router",
    "runs",
    "settings_pages",
]
