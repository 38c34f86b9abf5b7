"""Alembic environment for the spine store: always run through `SpineStore`, on its connection."""

from alembic import context

from stack.spine.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="spine_schema_version",
)
context.run_migrations()
