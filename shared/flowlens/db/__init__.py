"""Database access: named SQL queries from .sql files behind one access class."""

from flowlens.db.database import Database, DatabaseUnavailable, Tx
from flowlens.db.queries import QUERIES, load_queries

__all__ = ["QUERIES", "Database", "DatabaseUnavailable", "Tx", "load_queries"]
