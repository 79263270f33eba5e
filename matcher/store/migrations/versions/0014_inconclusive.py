"""The `inconclusive` verdict and candidate status (issue 21).

Face examiners label a comparison a candidate, no candidate, or inconclusive: the material at
hand cannot decide (a blurred or turned face, too many years between the photos). That is not
`needs_info`, which asks for more (another photo, the reporter called back) and stays open
until someone acts; an inconclusive comparison is closed for now, neither a match nor an
exclusion. Both CHECKs that list the words (`ck_candidates_status`, `ck_decisions_verdict`)
gain it.

SQLite cannot alter a CHECK in place: both tables are copied (batch mode, keeping the
AUTOINCREMENT of revision 0007). Going down, an inconclusive candidate or decision becomes
`needs_info`, the nearest word the older schema has (open, neither match nor exclusion).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

NO_ID_REUSE = {"sqlite_autoincrement": True}  # revision 0007: keep it through a table copy
STATUSES = ("pending", "confirmed", "rejected", "needs_info")
VERDICTS = ("match", "not_match", "needs_info")


def _check(table: str, column: str, words: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{word}'" for word in words)
    with op.batch_alter_table(table, table_kwargs=NO_ID_REUSE) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
        batch.create_check_constraint(column, f"{column} IN ({listed})")


def upgrade() -> None:
    _check("candidates", "status", (*STATUSES, "inconclusive"))
    _check("decisions", "verdict", (*VERDICTS, "inconclusive"))


def downgrade() -> None:
    op.execute("UPDATE candidates SET status = 'needs_info' WHERE status = 'inconclusive'")
    op.execute("UPDATE decisions SET verdict = 'needs_info' WHERE verdict = 'inconclusive'")
    _check("candidates", "status", STATUSES)
    _check("decisions", "verdict", VERDICTS)
