"""The ``api_tokens`` queries of the SQL stores (the same SQL in SQLite and PostgreSQL).

A mixin of :class:`~escalade.runtime.store.sql.SQLStore`, kept apart so each module
stays small: it runs through the store's ``_row``, ``_rows`` and ``_exec`` hooks.
Rows are revoked, never deleted, so a store that ever had a token keeps knowing it;
``n`` keeps the order they were created in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from escalade.runtime.store import ApiToken

TOKEN_COLUMNS = "id, principal, role, secret_hash, created_at, created_by, revoked_at, revoked_by"  # noqa: S105 (column names)
_TOKEN_MARKS = ", ".join("?" for _ in TOKEN_COLUMNS.split(", "))


class _Queries(Protocol):
    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...


def _token_of(row: Sequence[Any]) -> ApiToken:
    token_id, principal, role, secret_hash, created_at, created_by, revoked_at, revoked_by = row
    return ApiToken(
        str(token_id),
        str(principal),
        str(role),
        str(secret_hash),
        int(created_at),
        str(created_by),
        None if revoked_at is None else int(revoked_at),
        None if revoked_by is None else str(revoked_by),
    )


class TokenTable:
    """The token methods of :class:`~escalade.runtime.store.Store`, in shared SQL."""

    def add_token(self: _Queries, token: ApiToken) -> None:
        self._exec(
            f"INSERT INTO api_tokens({TOKEN_COLUMNS}) VALUES ({_TOKEN_MARKS})",
            (
                token.id,
                token.principal,
                token.role,
                token.secret_hash,
                token.created_at,
                token.created_by,
                token.revoked_at,
                token.revoked_by,
            ),
        )

    def token(self: _Queries, token_id: str) -> ApiToken | None:
        row = self._row(f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,))
        return None if row is None else _token_of(row)

    def tokens(self: _Queries) -> list[ApiToken]:
        rows = self._rows(f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY n")
        return [_token_of(r) for r in rows]

    def revoke_token(self: _Queries, token_id: str, at: int, by: str) -> bool:
        active = self._row(
            "SELECT 1 FROM api_tokens WHERE id = ? AND revoked_at IS NULL", (token_id,)
        )
        if active is None:
            return False
        self._exec(
            "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?",
            (at, by, token_id),
        )
        return True
