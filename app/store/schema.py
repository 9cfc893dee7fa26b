"""The one SQLAlchemy ``MetaData`` every table module registers its tables on."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
