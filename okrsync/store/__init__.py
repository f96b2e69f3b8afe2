"""The store: SQLModel tables, engines and sessions, leases, Alembic migrations.

Tables kept in modules of their own are imported here, so that they are on the metadata wherever
any part of the store is (Alembic's environment and the schema checks compare against it).
"""

from okrsync.store import budget_rows as budget_rows
