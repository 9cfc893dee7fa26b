"""Storage adapters: the SQL database (SQLAlchemy 2 async + Alembic) and Redis."""
