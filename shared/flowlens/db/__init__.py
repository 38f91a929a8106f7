"""Database access: named SQL queries from .sql files behind one access class."""

from flowlens.db.database import (
    ConnectionLost,
    Database,
    DatabaseUnavailable,
    QueryTimedOut,
    Tx,
    first_line,
)
from flowlens.db.sql import QUERIES, load_queries

__all__ = [
    "QUERIES",
    "ConnectionLost",
    "Database",
    "DatabaseUnavailable",
    "QueryTimedOut",
    "Tx",
    "first_line",
    "load_queries",
]
